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


DIFFICULTY_HELP = "easy, alab (A-Lab-like, the default) or hard"


def _world(seed: int, chemistry: str, target: str | None = None, difficulty: str = "alab"):
    from labos.domain import parse_formula
    from labos.simulator.demo_chemistry import DEMO_TARGETS
    from labos.simulator.world import World

    if chemistry not in ("auto", "demo", "full"):
        fail(f"chemistry must be auto, demo or full, not {chemistry!r}")
    if chemistry == "auto":
        demo = target is not None and parse_formula(target) in {parse_formula(t) for t in DEMO_TARGETS}
        chemistry = "demo" if demo else "full"
    if chemistry == "demo":
        return World.demo(seed, difficulty=difficulty), chemistry
    return World(seed, difficulty=difficulty), chemistry


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
    difficulty: str = typer.Option("alab", "--difficulty", help=DIFFICULTY_HELP),
    replicate: int = typer.Option(0, "--replicate", help="repeat number (new weighing and mixing noise)"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Heat a powder mix in a hidden world and print what it really made."""
    from labos.domain import HeatSegment, HeatStep

    masses = _parse_masses(precursor)

    def run():
        world, _ = _world(seed, chemistry, difficulty=difficulty)
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
    difficulty: str = typer.Option("alab", "--difficulty", help=DIFFICULTY_HELP),
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
        world, chem = _world(seed, chemistry, target, difficulty)
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


@app.command("serve-lab")
def serve_lab(
    config: Path | None = typer.Option(
        None, "--config", help="lab layout to emulate (sim_* devices; default: the simulated layout)"
    ),
    write_config: Path = typer.Option(
        ..., "--write-config", help="write the lab configuration of the served devices here"
    ),
    time_scale: float = typer.Option(500.0, "--time-scale", min=1.0, help="emulator clock speed-up"),
    furnaces: int = typer.Option(1, "--furnaces", min=1, help="furnaces of the default layout"),
    seed: int = typer.Option(0, "--seed", help="world seed (hidden kinetics)"),
    scan_s: float = typer.Option(600.0, "--scan-s", min=1.0, help="diffractometer scan time, clock s"),
    workdir: Path | None = typer.Option(None, "--workdir", help="folder of the diffractometer's files"),
    summary: Path | None = typer.Option(
        None, "--summary", help="on exit, write what the hidden world saw (JSON) here"
    ),
) -> None:
    """Serve emulated hardware (every device as its wire-level emulator, the hidden demo chemistry
    behind them) until stopped, and write a lab configuration pointing at it for `labos campaign run
    --lab`. Prints one JSON line when ready."""
    import json
    import signal
    import threading

    from labos.lab.emulated import EmulatedLab, serve_config

    cfg = _guard(lambda: serve_config(config, furnaces))
    lab = _guard(
        lambda: EmulatedLab(cfg, time_scale=time_scale, seed=seed, workdir=workdir, scan_s=scan_s).start()
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        lab.write_config(write_config)
        print(
            json.dumps({"ready": True, "config": str(write_config), "devices": len(lab.entries)}), flush=True
        )
        while not stop.wait(0.5):
            pass
    finally:
        lab.stop()
        if summary is not None:
            ph = lab.physics
            summary.write_text(
                json.dumps(
                    {"errors": lab.bridge.errors, "objects": ph.state["objects"], "log": ph.state["log"]},
                    default=str,
                )
            )


@bench_app.command("sim-world")
def bench_sim_world(
    seed: int = typer.Option(0, "--seed", help="world seed of the speed run"),
    difficulty: str = typer.Option(
        "alab", "--difficulty", help="difficulty levels to measure, comma separated (easy, alab, hard)"
    ),
    targets: int = typer.Option(58, "--targets", help="benchmark targets to measure (0: none)"),
    target_seed: int = typer.Option(0, "--target-seed", help="seed of the benchmark target draw"),
    world_seeds: str = typer.Option("0,1,2", "--world-seeds", help="world seeds, comma separated"),
    demo: bool = typer.Option(True, "--demo/--no-demo", help="also measure the demo targets"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Speed and difficulty of the simulated chemistry.

    Speed: a demo replay grid run cold (empty caches) then warm; baseline: the cold run in the same
    invocation. Difficulty: for every target (demo targets with the demo world, ``--targets``
    benchmark targets with the full world), the share of (balanced precursor set, temperature
    600–1100 °C, 4 h) cells that succeed (target > 50 wt%), over ``--world-seeds``."""
    from labos.simulator.chemistry.hidden import DIFFICULTIES
    from labos.simulator.demo_chemistry import DEMO_TARGETS, demo_inventory
    from labos.simulator.difficulty import measure
    from labos.simulator.replay import export_replay, summarize
    from labos.simulator.targets import benchmark_inventory, benchmark_targets
    from labos.simulator.world import World

    levels = [d.strip() for d in difficulty.split(",") if d.strip()]
    bad = [d for d in levels if d not in DIFFICULTIES]
    if not levels or bad:
        fail(f"difficulty must be among {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    try:
        seeds = [int(x) for x in world_seeds.split(",") if x.strip()]
    except ValueError:
        fail(f"world seeds must be integers separated by commas, got {world_seeds!r}")
    if not seeds:
        fail("give at least one world seed")
    if targets < 0:
        fail(f"number of targets must be 0 or more, got {targets}")

    world = World.demo(seed, difficulty=levels[0])
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
        "difficulty": {},
    }

    def run_difficulty():
        thermo = world.thermo
        picks = benchmark_targets(targets, target_seed, thermo) if targets else []
        inventory = benchmark_inventory(thermo)
        for level in levels:
            rep: dict = {}
            if demo:
                rep["demo"] = measure(
                    lambda s, lv=level: World.demo(s, thermo, lv), DEMO_TARGETS, demo_inventory(), seeds
                )
            if picks:
                rep["benchmark"] = measure(
                    lambda s, lv=level: World(s, thermo=thermo, difficulty=lv), picks, inventory, seeds
                ) | {"target_seed": target_seed}
            out["difficulty"][level] = rep

    _guard(run_difficulty)
    if json_out:
        emit_json(out)
        return
    console.print(
        f"speed: {out['cold_ms_per_synthesis']:.1f} ms/synthesis cold, "
        f"{out['warm_ms_per_synthesis']:.1f} ms warm ({n} syntheses)"
    )
    for level, rep in out["difficulty"].items():
        for kind, r in rep.items():
            console.print(f"[bold]{level} / {kind}[/]: {r['summary']}")
            for t, d in r["targets"].items():
                console.print(
                    f"  {t:<12} {d['sets']:>2} sets  {100 * d['success_share']:5.1f} % cells  {d['bin']}"
                )
