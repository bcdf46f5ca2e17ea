"""``labos sim``: the simulated chemistry — synthesise in a hidden world, export replay datasets,
draw benchmark targets. Also ``labos bench sim-world`` (speed of the world, cold vs warm)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from labos.cli.bench import bench_app
from labos.cli.common import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="The simulated chemistry: synthesise, export replay datasets.")

CHEM_HELP = "demo (built-in, every phase has a structure), full (all the thermodynamic data), or auto"


def _guard(fn):
    from pydantic import ValidationError

    from labos.errors import LabosError

    try:
        return fn()
    except (LabosError, ValidationError) as exc:
        fail(str(exc))


def _world(seed: int, chemistry: str, target: str | None = None):
    from labos.domain import parse_formula
    from labos.simulator.demo_chemistry import DEMO_TARGETS
    from labos.simulator.world import World

    if chemistry not in ("auto", "demo", "full"):
        fail(f"chemistry must be auto, demo or full, not {chemistry!r}")
    if chemistry == "auto":
        demo = target is not None and parse_formula(target) in {parse_formula(t) for t in DEMO_TARGETS}
        chemistry = "demo" if demo else "full"
    return (World.demo(seed) if chemistry == "demo" else World(seed)), chemistry


def _parse_masses(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        name, sep, mass = item.partition("=")
        if not sep:
            fail(f"precursor {item!r} must be written FORMULA=MG, e.g. SrCO3=650")
        try:
            out[name.strip()] = float(mass)
        except ValueError:
            fail(f"mass in {item!r} is not a number of mg")
    return out


@app.command("synthesize")
def synthesize(
    precursor: list[str] = typer.Option(
        ..., "-p", "--precursor", help="FORMULA=MG, repeat for each precursor"
    ),
    temperature_c: float = typer.Option(..., "--temperature", "-T", help="dwell temperature, °C"),
    dwell_min: float = typer.Option(240.0, "--dwell-min", help="dwell time, min"),
    ramp: float = typer.Option(10.0, "--ramp", help="heating ramp, °C/min"),
    atmosphere: str = typer.Option("air", "--atmosphere", help="air, O2, N2, Ar, H2/Ar, vacuum"),
    seed: int = typer.Option(0, "--seed", help="world seed (hidden kinetics)"),
    chemistry: str = typer.Option("full", "--chemistry", help=CHEM_HELP),
    replicate: int = typer.Option(0, "--replicate", help="repeat number (new weighing and mixing noise)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Heat a powder mix in a hidden world and print what it really made."""
    from labos.domain import HeatSegment, HeatStep

    masses = _parse_masses(precursor)

    def run():
        world, _ = _world(seed, chemistry)
        heat = HeatStep(
            segments=[HeatSegment(ramp_c_per_min=ramp, target_c=temperature_c, dwell_min=dwell_min)],
            atmosphere=atmosphere,
        )
        return world.synthesize(masses, heat, replicate=replicate)

    out = _guard(run)
    if json_out:
        emit_json(out.model_dump())
        return
    for name, frac in out.phases.items():
        console.print(f"{name:<16} {100 * frac:6.2f} wt%")
    console.print(f"mass {out.mass_mg:.1f} mg (dosed {out.initial_mass_mg:.1f} mg)")
    for note in out.notes:
        console.print(f"[dim]{note}[/]")


@app.command("replay-dataset")
def replay_dataset(
    target: str = typer.Option(..., "--target", help="target formula, e.g. SrTiO3"),
    out: Path = typer.Option(..., "--out", help="JSON file to write"),
    seed: int = typer.Option(0, "--seed", help="world seed (hidden kinetics)"),
    chemistry: str = typer.Option("auto", "--chemistry", help=CHEM_HELP),
    temperatures: str = typer.Option(
        "600,700,800,900,1000,1100", "--temperatures", help="°C, comma separated"
    ),
    hold_h: float = typer.Option(4.0, "--hold-h", help="dwell time, hours"),
    max_size: int = typer.Option(None, "--max-size", help="largest precursor set (default: elements + 1)"),
    json_out: bool = typer.Option(False, "--json", help="print a JSON summary"),
) -> None:
    """Export a world's full grid of outcomes (every precursor set × temperature) for a target,
    in the planner's replay format."""
    from labos.simulator.replay import export_replay, summarize, write_replay

    try:
        temps = [float(t) for t in temperatures.split(",") if t.strip()]
    except ValueError:
        fail(f"temperatures must be numbers separated by commas, got {temperatures!r}")

    def run():
        world, chem = _world(seed, chemistry, target)
        if chem == "demo":
            from labos.simulator.demo_chemistry import demo_inventory

            inventory = demo_inventory()
        else:
            from labos.simulator.targets import benchmark_inventory

            inventory = benchmark_inventory(world.thermo)
        data = export_replay(
            world, target, inventory, temperatures_c=temps, hold_time_h=hold_h, max_size=max_size
        )
        write_replay(data, out)
        return {**summarize(data), "chemistry": chem, "seed": seed, "out": str(out)}

    summary = _guard(run)
    if json_out:
        emit_json(summary)
        return
    console.print(
        f"wrote {summary['cells']} cells for {summary['target']} ({summary['successes']} successes) to {out}"
    )


@app.command("targets")
def targets(
    n: int = typer.Option(10, "--n", help="how many targets"),
    seed: int = typer.Option(0, "--seed", help="draw seed"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Draw A-Lab-like benchmark targets (air-stable oxides of 2–3 cations the shelf covers)."""
    from labos.simulator.targets import benchmark_inventory, benchmark_targets

    def run():
        return benchmark_targets(n, seed), [p.formula for p in benchmark_inventory()]

    picks, inventory = _guard(run)
    if json_out:
        emit_json({"targets": picks, "inventory": inventory})
        return
    for t in picks:
        console.print(t)


@bench_app.command("sim-world")
def bench_sim_world(
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Speed of the simulated chemistry: a demo replay grid run cold (empty caches) then warm.
    Baseline: the cold run in the same invocation."""
    from labos.simulator.demo_chemistry import DEMO_TARGETS, demo_inventory
    from labos.simulator.replay import export_replay, summarize
    from labos.simulator.world import World

    world = World.demo(seed)
    temps = (700.0, 900.0, 1100.0)

    def grid() -> tuple[float, int, dict]:
        t0 = time.perf_counter()
        n, stats = 0, {}
        for target in DEMO_TARGETS:
            data = export_replay(world, target, demo_inventory(), temperatures_c=temps)
            n += len(data["experiments"])
            s = summarize(data)
            stats[target] = {"cells": s["cells"], "successes": s["successes"]}
        return time.perf_counter() - t0, n, stats

    cold_s, n, stats = grid()
    warm_s, _, _ = grid()
    out = {
        "benchmark": "sim-world",
        "seed": seed,
        "syntheses": n,
        "cold_ms_per_synthesis": 1e3 * cold_s / n,
        "warm_ms_per_synthesis": 1e3 * warm_s / n,
        "warm_over_cold": warm_s / cold_s,
        "grid": stats,
    }
    if json_out:
        emit_json(out)
        return
    console.print(out)
