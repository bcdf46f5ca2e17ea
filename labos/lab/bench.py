"""``labos bench scheduler --json``: what the lab OS costs and how well it schedules.

* scheduling overhead per task: wall time the dispatcher spends deciding, per started task
  (target ≤ 10 ms; its CPU time too, which a busy machine does not inflate), and the whole lab
  OS's wall time per task (dispatch, journal, state);
* throughput: tasks per second through the engine on SQLite and on PostgreSQL (a throwaway
  server from ``tests/pg.py`` when ``pg_ctl`` exists), resource-booking tasks on virtual time;
* a batch of experiments on the simulated lab: makespan and furnace utilisation against the
  lower bound of :mod:`labos.lab.metrics`, for our scheduler (furnace batching) and, as the
  baseline in the same invocation, the same dispatcher without batching (one crucible per run).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import typer

from labos.cli.bench import bench_app
from labos.cli.common import emit_json


def _recipe(rng: random.Random, temp_c: float):
    from labos.domain import DoseStep, GrindStep, HeatSegment, HeatStep, MixStep, Recipe, XRDStep

    doses = [
        DoseStep(precursor=p, mass_mg=round(rng.uniform(200, 1500), 1))
        for p in rng.sample(["Li2CO3", "MnO2", "Fe2O3", "ZnO"], 2)
    ]
    heat = HeatStep(
        segments=[HeatSegment(ramp_c_per_min=5, target_c=temp_c, dwell_min=rng.choice([240, 480, 720]))]
    )
    return Recipe(steps=[*doses, MixStep(), heat, GrindStep(), XRDStep()])


def _batch(url: str, n: int, furnaces: int, batching: bool, seed: int) -> dict:
    from labos.domain import Experiment, Target
    from labos.lab.config import Batching
    from labos.lab.simlab import SimLab

    rng = random.Random(seed)
    inv = {p: 1e9 for p in ("Li2CO3", "MnO2", "Fe2O3", "ZnO")}
    sim = SimLab.build(
        url,
        inventory=inv,
        furnaces=furnaces,
        furnace_slots=4,
        crucible_rack=24,
        batching=Batching(enabled=batching),
    )
    temps = [700.0, 800.0, 900.0]
    for _ in range(n):
        recipe = _recipe(rng, rng.choice(temps))
        sim.lab.submit(Experiment(target=Target(formula="LiMn2O4"), recipe=recipe))
    c0, t0 = time.process_time(), time.perf_counter()
    sim.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    m = sim.lab.metrics()
    dispatch_cpu = sim.lab.engine.dispatch_cpu_s
    sim.close()
    return {
        "experiments": m.experiments,
        "completed": m.completed,
        "makespan_h": m.makespan_h,
        "lower_bound_h": m.lower_bound_h,
        "makespan_over_bound": m.makespan_over_bound,
        "furnace_utilisation": m.furnace_utilisation,
        "slot_utilisation": m.slot_utilisation,
        "furnace_occupancy": m.furnace_occupancy,
        "furnace_runs": m.furnace_runs,
        "mean_batch": m.mean_batch,
        "tasks": m.tasks_started,
        "dispatch_ms_per_task": m.scheduling_ms_per_task,
        "dispatch_cpu_ms_per_task": round(1000 * dispatch_cpu / max(m.tasks_started, 1), 3),
        "lab_os_ms_per_task": round(1000 * wall / max(m.tasks_started, 1), 3),
        "cpu_ms_per_task": round(1000 * cpu / max(m.tasks_started, 1), 3),
        "wall_s": round(wall, 3),
    }


def _throughput(url: str, n_tasks: int, seed: int) -> dict:
    """Resource-booking tasks (1-2 of 8 devices each, in small DAGs) through one engine."""
    import networkx as nx

    from labos.domain import DoseStep, Experiment, Recipe, Target
    from labos.lab.config import lab_config_from_dict
    from labos.lab.runtime import Lab

    rng = random.Random(seed)
    cfg = lab_config_from_dict(
        {
            "name": "bench",
            "devices": [{"name": f"dev_{i}", "kind": "bench", "lab": {"role": "bench"}} for i in range(1, 9)],
        }
    )
    lab = Lab(cfg, url, {})
    per = 10
    for e in range(max(1, n_tasks // per)):
        g = nx.DiGraph()
        for i in range(per):
            devs = rng.sample([f"dev_{j}" for j in range(1, 9)], rng.randint(1, 2))
            g.add_node(f"h{i}", kind="hold", params={"devices": devs, "duration_min": rng.uniform(0.5, 5)})
            if i and rng.random() < 0.5:
                g.add_edge(f"h{rng.randrange(i)}", f"h{i}")
        exp = Experiment(
            id=f"exp-bench-{e:05d}",
            target=Target(formula="ZnO"),
            recipe=Recipe(steps=[DoseStep(precursor="ZnO", mass_mg=1.0)]),
        )
        lab.submit(exp, graph=g)
    c0, t0 = time.process_time(), time.perf_counter()
    lab.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done = lab.engine.tasks_started
    lab.close()
    return {
        "tasks": done,
        "tasks_per_s": round(done / wall, 2),
        "wall_s": round(wall, 3),
        "cpu_ms_per_task": round(1000 * cpu / max(done, 1), 3),
        "dispatch_ms_per_task": round(1000 * lab.engine.dispatch_s / max(done, 1), 3),
    }


def _postgres():
    """A throwaway PostgreSQL server (tests/pg.py), or (None, reason)."""
    root = Path(__file__).resolve().parents[2]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from tests.pg import ThrowawayPostgres, find_pg_ctl
    except ImportError as exc:  # pragma: no cover - a checkout always has tests/
        return None, f"tests/pg.py not importable: {exc}"
    if find_pg_ctl() is None:
        return None, "pg_ctl not found (apt-get install postgresql)"
    server = ThrowawayPostgres()
    server.start()
    return server, None


@bench_app.command("scheduler")
def scheduler(
    experiments: int = typer.Option(48, help="experiments in the makespan batch"),
    furnaces: int = typer.Option(8, help="furnaces of the simulated lab"),
    tasks: int = typer.Option(1000, help="tasks in the throughput runs"),
    postgres: bool = typer.Option(True, help="also measure PostgreSQL (needs pg_ctl)"),
    seed: int = typer.Option(0),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Scheduling overhead per task, throughput on SQLite/PostgreSQL, makespan vs a lower bound."""
    from labos.domain import parse_formula

    parse_formula("ZnO")  # import pymatgen before timing anything
    tmp = Path(tempfile.mkdtemp(prefix="labos-bench-"))
    os.environ.setdefault("LABOS_HOME", str(tmp / "home"))
    from labos.config import reset_settings

    reset_settings()
    ours = _batch(f"sqlite:///{tmp / 'ours.sqlite'}", experiments, furnaces, True, seed)
    base = _batch(f"sqlite:///{tmp / 'base.sqlite'}", experiments, furnaces, False, seed)
    thr = {"sqlite": _throughput(f"sqlite:///{tmp / 'thr.sqlite'}", tasks, seed)}
    if postgres:
        server, why = _postgres()
        if server is None:
            thr["postgres"] = {"skipped": why}
        else:
            try:
                thr["postgres"] = _throughput(server.create_database("bench"), tasks, seed)
            finally:
                server.stop()
    result = {
        "benchmark": "scheduler",
        "scheduling_overhead_ms_per_task": ours["dispatch_ms_per_task"],
        "scheduling_overhead_cpu_ms_per_task": ours["dispatch_cpu_ms_per_task"],
        "target_ms_per_task": 10.0,
        "within_target": ours["dispatch_ms_per_task"] is not None and ours["dispatch_ms_per_task"] <= 10.0,
        "throughput": thr,
        "batch": {
            "ours": ours,
            "baseline_no_batching": base,
            "makespan_ratio_ours_over_baseline": round(ours["makespan_h"] / base["makespan_h"], 4)
            if base["makespan_h"]
            else None,
            "utilisation_gain": round(ours["furnace_utilisation"] - base["furnace_utilisation"], 4),
        },
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if json_out:
        emit_json(result)
        return
    from rich.console import Console

    c = Console()
    c.print(
        f"dispatch overhead: {ours['dispatch_ms_per_task']} ms/task (target ≤ 10), "
        f"lab OS total {ours['lab_os_ms_per_task']} ms/task"
    )
    for k, v in thr.items():
        c.print(f"throughput {k}: {v}")
    for name, r in (("ours", ours), ("no batching", base)):
        c.print(
            f"{name}: makespan {r['makespan_h']} h (bound {r['lower_bound_h']} h, x{r['makespan_over_bound']}), "
            f"furnace utilisation {r['furnace_utilisation']:.0%}, runs {r['furnace_runs']}"
        )
