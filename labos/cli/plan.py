"""``labos plan TARGET --inventory ...``: what to weigh and how to heat it, with the reasons.

Also registers ``labos bench replay`` (planners against recorded experiments) and ``labos bench
priors`` (the literature priors on a publication-year split).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from labos.cli.bench import bench_app
from labos.cli.common import console, emit_json, err_console, fail

app = typer.Typer(
    help="Plan syntheses: precursor sets, masses, heating, with explanations.",
    context_settings={"allow_interspersed_args": True},  # `labos plan TARGET --inventory ...`
)

INVENTORY_HELP = (
    "precursors on the shelf: comma-separated formulas (Li2CO3,MnO2), a file (.json list of formulas or "
    "of {formula, available_mg, purity}; .txt/.csv one formula per line, first column), or 'demo'"
)


def read_inventory(spec: str) -> list[Any]:
    """Precursors from a comma list, a file, or the demo shelf; clear errors for anything else."""
    from labos.domain import Precursor

    text = spec.strip()
    if not text:
        fail("--inventory is empty")
    if text == "demo":
        from labos.simulator.demo_chemistry import demo_inventory

        return demo_inventory()
    path = Path(text)
    if path.is_file():
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                fail(f"inventory file {path} is not valid JSON: {exc}")
            if not isinstance(data, list):
                fail(f"inventory file {path} must hold a JSON list")
            return [Precursor(formula=d) if isinstance(d, str) else Precursor.model_validate(d) for d in data]
        rows = [line.split(",")[0].strip() for line in path.read_text().splitlines()]
        rows = [r for r in rows if r and not r.startswith("#") and r.lower() != "formula"]
        return [Precursor(formula=r) for r in rows]
    if "/" in text or text.endswith((".json", ".txt", ".csv")):
        fail(f"inventory file {text} does not exist")
    return [Precursor(formula=f.strip()) for f in text.split(",") if f.strip()]


def load_thermo(kind: str):
    """mp (MP summary + experimental), exp (embedded experimental table), none, or auto (mp if present)."""
    if kind == "none":
        return None, "none"
    from labos.errors import DataMissingError
    from labos.models.thermo import ThermoDB

    if kind in ("auto", "mp"):
        try:
            return ThermoDB.with_mp(), "mp"
        except DataMissingError as exc:
            if kind == "mp":
                fail(str(exc))
            err_console.print(f"[yellow]note:[/] {exc}; using the embedded experimental table")
    if kind not in ("auto", "mp", "exp"):
        fail(f"--thermo must be auto, mp, exp or none, not {kind!r}")
    return ThermoDB.default(), "exp"


def load_priors(use: bool):
    """The trained literature priors, or None (and why) when the dataset is absent or disabled."""
    if not use:
        return None, "disabled (--no-priors)"
    from labos.models.literature import load_priors as _load

    priors, reason = _load()
    return priors, reason


@app.callback(invoke_without_command=True)
def plan(
    target: Annotated[str, typer.Argument(help="target formula, e.g. LiMn2O4")],
    inventory: Annotated[str, typer.Option("--inventory", "-i", help=INVENTORY_HELP)],
    planner: Annotated[str, typer.Option(help="labos, arrows3, thermo, bo or random")] = "labos",
    n: Annotated[
        int, typer.Option("-n", help="proposals to return (one per free furnace)", min=1, max=64)
    ] = 1,
    seed: Annotated[int, typer.Option(help="random seed (plans are deterministic per seed)")] = 0,
    max_size: Annotated[
        int | None, typer.Option(help="largest precursor set (default: elements + 1)")
    ] = None,
    batch_mg: Annotated[float, typer.Option(help="mg of product per sample", min=10, max=50_000)] = 1500.0,
    temperatures: Annotated[str | None, typer.Option(help="°C ladder, comma separated")] = None,
    atmosphere: Annotated[str, typer.Option(help="air, O2, N2, Ar")] = "air",
    thermo: Annotated[str, typer.Option(help="auto, mp, exp or none")] = "auto",
    priors: Annotated[bool, typer.Option("--priors/--no-priors", help="use the literature priors")] = True,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Propose the next experiment(s) for TARGET from the inventory, each with its explanation."""
    from pydantic import ValidationError

    from labos.errors import LabosError
    from labos.planners import get_planner

    try:
        stock = read_inventory(inventory)
        temps = [float(t) for t in temperatures.split(",") if t.strip()] if temperatures else None
        db, thermo_kind = load_thermo(thermo)
        lit, lit_note = load_priors(priors)
        pl = get_planner(
            planner,
            target,
            stock,
            db,
            lit,
            seed=seed,
            max_size=max_size,
            batch_mg=batch_mg,
            temperatures_c=temps,
            atmosphere=atmosphere,
        )
        proposals = pl.ask_batch(n)
    except ValueError as exc:
        if isinstance(exc, ValidationError | LabosError):
            fail(str(exc))
        fail(f"bad value: {exc}")
    except LabosError as exc:
        fail(str(exc))
    if json_out:
        emit_json(
            {
                "target": target,
                "planner": planner,
                "thermo": thermo_kind,
                "priors": lit_note,
                "candidate_sets": len({c.set_key for c in pl.cells}),
                "cells": len(pl.cells),
                "proposals": [p.model_dump(mode="json") for p in proposals],
            }
        )
        return
    console.print(
        f"[bold]{target}[/]: {len({c.set_key for c in pl.cells})} candidate sets, {len(pl.cells)} cells "
        f"(thermo: {thermo_kind}; priors: {lit_note})"
    )
    for i, p in enumerate(proposals, 1):
        doses = ", ".join(f"{d.precursor} {d.mass_mg:.1f} mg" for d in p.recipe.doses)
        console.print(f"\n[bold]{i}.[/] {doses}; {p.temperature_c:.0f} °C for {p.dwell_min / 60:.1f} h")
        console.print(f"   expected target fraction {p.expected_yield:.2f}")
        console.print(f"   [dim]{p.explanation}[/]")


# ---------------------------------------------------------------------- benchmarks


@bench_app.command("replay")
def bench_replay(
    dataset: Annotated[Path, typer.Argument(help="replay dataset (JSON, see labos.planners.replay)")],
    planner: Annotated[
        str, typer.Option(help="a planner name, or 'all' (every planner and baseline)")
    ] = "all",
    seeds: Annotated[int, typer.Option(help="seeds per planner", min=1, max=10_000)] = 100,
    noise: Annotated[
        float, typer.Option(help="energy noise for deterministic planners, eV/atom", min=0)
    ] = 0.025,
    batch: Annotated[int, typer.Option(help="experiments per ask (furnaces)", min=1, max=64)] = 1,
    thermo: Annotated[str, typer.Option(help="auto, mp, exp or none")] = "auto",
    priors: Annotated[bool, typer.Option("--priors/--no-priors", help="use the literature priors")] = True,
    jobs: Annotated[int, typer.Option(help="worker processes for the seeds", min=1, max=64)] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Planners against the recorded outcomes of a dataset: experiments to first/all successes.

    Baseline: random search (analytic expectation and the planner) and random-forest BO, same oracle."""
    from labos.errors import LabosError
    from labos.planners import PLANNERS
    from labos.planners.replay import benchmark, load_replay

    names = list(PLANNERS) if planner == "all" else [p.strip() for p in planner.split(",") if p.strip()]
    unknown = [p for p in names if p not in PLANNERS]
    if unknown:
        fail(f"unknown planner(s) {', '.join(unknown)}; choose from {', '.join(PLANNERS)} or 'all'")
    try:
        data = load_replay(dataset)
        db, thermo_kind = load_thermo(thermo)
        lit, lit_note = load_priors(priors)
        result = benchmark(
            data, names, seeds=seeds, thermo=db, priors=lit, energy_noise_ev=noise, batch=batch, jobs=jobs
        )
    except LabosError as exc:
        fail(str(exc))
    result["dataset"] = str(dataset)
    result["thermo_source"] = thermo_kind
    result["priors_note"] = lit_note
    base = result["random_expectation"]
    for summary in result["planners"].values():
        first = summary["first_success"]["median"]
        summary["first_success_vs_random"] = (
            None if first is None or base["first"] is None else round(first / base["first"], 3)
        )
    if json_out:
        emit_json(result)
        return
    console.print(
        f"{result['target']}: {result['cells']} cells, {result['successes']} successes; random expects "
        f"first at {base['first'] or float('nan'):.1f}, all at {base['all'] or float('nan'):.1f}"
    )
    for name, s in result["planners"].items():
        f, a = s["first_success"], s["all_successes"]
        console.print(
            f"  {name:<8} first {f['median']} (IQR {f['q1']}–{f['q3']}), all {a['median']} "
            f"(IQR {a['q1']}–{a['q3']}), within 10/20/50: {s['within_10']['mean']:.2f}/"
            f"{s['within_20']['mean']:.2f}/{s['within_50']['mean']:.2f}, {s['ms_per_experiment']:.1f} ms/exp"
        )


@bench_app.command("priors")
def bench_priors(
    split_year: Annotated[
        int, typer.Option(help="train on papers up to this year, test on later ones")
    ] = 2016,
    seeds: Annotated[
        int, typer.Option(min=1, help="also retrain the recommender with seeds 1.. and report the spread")
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Literature priors on a publication-year split: top-k exact match, temperature MAE vs baseline."""
    from labos.errors import LabosError
    from labos.models.literature.evaluate import evaluate

    try:
        result = evaluate(split_year=split_year, seeds=seeds)
    except (LabosError, ValueError) as exc:  # no dataset, or a split year that leaves a side empty
        fail(str(exc))
    if json_out:
        emit_json(result)
        return
    console.print_json(json.dumps(result, default=str))
