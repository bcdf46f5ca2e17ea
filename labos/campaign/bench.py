"""The A-Lab-scale benchmark: whole campaigns in simulated worlds, our planner against baselines.

For each seed a world is drawn (hidden kinetics from the seed, chemistry from the whole
thermodynamic database) with its own A-Lab-like target set (``labos.simulator.targets``: oxides of
2–3 cations, stable in air, covered by the precursor shelf). Every planner then runs the *same*
campaign (targets, lab, budget, days) in that world, each on its own fresh database, through the
lab OS and the simulated devices; outcomes go through the XRD measurement model of
:mod:`labos.campaign.measure` (``truth`` mode: the benchmark's chemistry has no crystal structures
for most phases; ``labos bench measurement`` checks that model against real pattern analysis).
``chemistry="demo"`` runs the built-in demo chemistry instead (its six targets, structures for every
phase), where ``xrd="pattern"`` simulates and analyses every sample's pattern — the slow, faithful
path — so the same campaigns can be run through both measurement paths. Reported per planner and seed: targets made, success rate, experiments per
successful target, furnace utilisation, virtual days, wall-clock and CPU seconds; and the
comparison of our planner with the baselines (thermodynamics-only ranking without learning, random
precursor sets) in the same invocation.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OURS = "labos"
BASELINES = ("thermo", "random")


@dataclass(frozen=True)
class BenchSpec:
    targets: int = 58
    furnaces: int = 8
    furnace_slots: int = 4
    days: float = 17.0
    seeds: int = 5
    budget_per_target: int = 8
    planners: tuple[str, ...] = (OURS, *BASELINES)
    priors: bool = False
    workers: int = 1
    first_seed: int = 0
    chemistry: str = "full"  # "full" (whole thermodynamic database) or "demo" (has structures)
    xrd: str = "truth"  # "truth" (measurement model) or "pattern" (simulate + analyse every pattern)
    sigma: float | None = None  # measurement model; None: labos.campaign.measure defaults
    detection_limit: float | None = None

    def __post_init__(self) -> None:
        from labos.errors import ConfigError

        if self.chemistry not in ("full", "demo"):
            raise ConfigError(f"unknown chemistry {self.chemistry!r}; choose full or demo")
        if self.xrd not in ("truth", "pattern"):
            raise ConfigError(f"unknown xrd mode {self.xrd!r}; choose truth or pattern (analyse)")
        if self.xrd == "pattern" and self.chemistry != "demo":
            raise ConfigError(
                "xrd analysis needs crystal structures for every phase the world can form; the full "
                "chemistry has none (use --chemistry demo with --xrd analyse, or --xrd truth)"
            )
        if self.chemistry == "demo":
            from labos.simulator.demo_chemistry import DEMO_TARGETS

            if self.targets > len(DEMO_TARGETS):
                raise ConfigError(
                    f"the demo chemistry has {len(DEMO_TARGETS)} targets, {self.targets} asked "
                    f"(use --targets {len(DEMO_TARGETS)} or fewer)"
                )


def _thermo():
    from labos.models.thermo import ThermoDB

    return ThermoDB.default()


_POOL: dict[int, list[str]] = {}


def bench_targets(n: int, seed: int, thermo, inventory) -> list[str]:
    """``n`` targets for ``seed``: the simulator's eligible A-Lab-like oxides that also pass the
    campaign's own screening (hull, air stability at room temperature, shelf), drawn per seed."""
    from labos.models.thermo import screen
    from labos.simulator.chemistry.hidden import rng_for
    from labos.simulator.targets import TargetSelectionError, eligible_targets

    key = id(thermo)
    if key not in _POOL:
        pool = eligible_targets(thermo, inventory)
        verdicts = screen(pool, inventory, db=thermo, air_db=thermo)
        _POOL[key] = [v.formula for v in verdicts if v.accepted]
    pool = _POOL[key]
    if n > len(pool):
        raise TargetSelectionError(f"only {len(pool)} targets pass screening for this shelf, {n} asked")
    picks = rng_for("benchmark-targets", seed).choice(len(pool), size=n, replace=False)
    return [pool[int(i)] for i in sorted(picks)]


def run_one(spec: BenchSpec, planner: str, seed: int, workdir: str) -> dict[str, Any]:
    """One campaign: ``planner`` in the world of ``seed``."""
    from labos.campaign.config import CampaignConfig, LabSpec
    from labos.campaign.measure import DEFAULT_DETECTION_LIMIT, DEFAULT_SIGMA
    from labos.campaign.runner import CampaignRunner
    from labos.campaign.tracks import load_priors
    from labos.simulator.targets import benchmark_inventory
    from labos.simulator.world import World

    t0, c0 = time.perf_counter(), time.process_time()
    thermo = _thermo()
    if spec.chemistry == "demo":
        from labos.simulator.demo_chemistry import DEMO_TARGETS, demo_inventory

        inventory = demo_inventory()
        targets = list(DEMO_TARGETS[: spec.targets])
        world = World.demo(seed, thermo=thermo)
    else:
        inventory = benchmark_inventory(thermo)
        targets = bench_targets(spec.targets, seed, thermo, inventory)
        world = World(seed, thermo=thermo)
    priors, note = load_priors(spec.priors)
    cfg = CampaignConfig(
        name=f"bench {planner} seed {seed}",
        targets=targets,
        budget_per_target=spec.budget_per_target,
        days=spec.days,
        planner=planner,
        seed=seed,
        chemistry=spec.chemistry,
        use_priors=spec.priors,
        reuse_knowledge=False,
        lab=LabSpec(
            furnaces=spec.furnaces,
            furnace_slots=spec.furnace_slots,
            xrd=spec.xrd,
            measurement_sigma=DEFAULT_SIGMA if spec.sigma is None else spec.sigma,
            detection_limit=DEFAULT_DETECTION_LIMIT if spec.detection_limit is None else spec.detection_limit,
            persist_world=False,
        ),
    )
    home = Path(workdir) / f"{planner}-{seed}"
    home.mkdir(parents=True, exist_ok=True)
    setup_s = time.perf_counter() - t0
    runner = CampaignRunner(
        cfg,
        db_url=f"sqlite:///{home / 'bench.sqlite'}",
        thermo=thermo,
        world=world,
        inventory=inventory,
        priors=priors,
        home=home,
    )
    report = runner.run()
    s = report.summary
    return {
        "planner": planner,
        "seed": seed,
        "targets": s.targets,
        "attempted": s.attempted,
        "succeeded": s.succeeded,
        "success_rate": s.success_rate,
        "experiments": s.experiments,
        "experiments_per_success": s.experiments_per_success,
        "furnace_utilisation": s.furnace_utilisation,
        "furnace_occupancy": s.furnace_occupancy,
        "mean_batch": s.mean_batch,
        "virtual_days": s.virtual_days,
        "status": report.status,
        "campaign_wall_s": round(s.wall_s, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        "setup_s": round(setup_s, 2),
        "cpu_s": round(time.process_time() - c0, 2),
        "priors": note,
    }


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.fmean(vals), 4) if vals else None


def _sd(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.stdev(vals), 4) if len(vals) > 1 else None


def aggregate(runs: list[dict[str, Any]], planners: tuple[str, ...]) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for p in planners:
        rs = [r for r in runs if r["planner"] == p]
        if not rs:
            continue
        made = sum(r["succeeded"] for r in rs)
        exps = sum(r["experiments"] for r in rs)
        per[p] = {
            "campaigns": len(rs),
            "targets_made_mean": _mean([r["succeeded"] for r in rs]),
            "targets_made_sd": _sd([r["succeeded"] for r in rs]),
            "success_rate_mean": _mean([r["success_rate"] for r in rs]),
            "experiments_mean": _mean([r["experiments"] for r in rs]),
            "experiments_per_success": round(exps / made, 3) if made else None,
            "furnace_utilisation_mean": _mean([r["furnace_utilisation"] for r in rs]),
            "furnace_utilisation_min": min((r["furnace_utilisation"] or 0.0) for r in rs),
            "virtual_days_mean": _mean([r["virtual_days"] for r in rs]),
            "wall_s_mean": _mean([r["wall_s"] for r in rs]),
            "wall_s_max": max(r["wall_s"] for r in rs),
            "cpu_s_mean": _mean([r["cpu_s"] for r in rs]),
            "cpu_s_max": max(r["cpu_s"] for r in rs),
        }
    out: dict[str, Any] = {"planners": per}
    if OURS in per:
        ours = per[OURS]
        cmp: dict[str, Any] = {}
        for b in planners:
            if b == OURS or b not in per:
                continue
            base = per[b]
            paired = [
                (r["succeeded"], q["succeeded"])
                for r in runs
                if r["planner"] == OURS
                for q in runs
                if q["planner"] == b and q["seed"] == r["seed"]
            ]
            cmp[b] = {
                "targets_made_ratio": _ratio(ours["targets_made_mean"], base["targets_made_mean"]),
                "experiments_per_success_ratio": _ratio(
                    ours["experiments_per_success"], base["experiments_per_success"]
                ),
                "seeds_won": sum(1 for a, c in paired if a > c),
                "seeds_tied": sum(1 for a, c in paired if a == c),
                "seeds_lost": sum(1 for a, c in paired if a < c),
            }
        out["vs_baselines"] = cmp
        out["criteria"] = {
            "more_targets_than_every_baseline": all(
                (v["targets_made_ratio"] or 0) > 1.0 and v["seeds_lost"] == 0 for v in cmp.values()
            )
            if cmp
            else None,
            "fewer_experiments_per_success": all(
                v["experiments_per_success_ratio"] is not None and v["experiments_per_success_ratio"] < 1.0
                for v in cmp.values()
            )
            if cmp
            else None,
            "furnace_utilisation_at_least_85pct": ours["furnace_utilisation_min"] >= 0.85,
            "campaign_under_5_min_wall": ours["wall_s_max"] < 300.0,
            "campaign_under_5_min_cpu": ours["cpu_s_max"] < 300.0,
        }
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def run_bench(spec: BenchSpec, progress=None) -> dict[str, Any]:
    """Every planner × seed campaign; ``workers`` > 1 runs campaigns in parallel processes."""
    t0 = time.perf_counter()
    jobs = [(p, s) for s in range(spec.first_seed, spec.first_seed + spec.seeds) for p in spec.planners]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="labos-bench-") as work:
        if spec.workers <= 1:
            for p, s in jobs:
                runs.append(run_one(spec, p, s, work))
                if progress:
                    progress(runs[-1])
        else:
            with ProcessPoolExecutor(max_workers=spec.workers) as pool:
                futs = [pool.submit(run_one, spec, p, s, work) for p, s in jobs]
                for f in futs:
                    runs.append(f.result())
                    if progress:
                        progress(runs[-1])
    from labos.campaign.measure import DEFAULT_DETECTION_LIMIT, DEFAULT_SIGMA

    sigma = DEFAULT_SIGMA if spec.sigma is None else spec.sigma
    dl = DEFAULT_DETECTION_LIMIT if spec.detection_limit is None else spec.detection_limit
    if spec.chemistry == "demo":
        chemistry = "demo (World.demo(seed); the demo targets; crystal structures for every phase)"
    else:
        chemistry = "full (World(seed) over ThermoDB.default(); benchmark_targets per seed)"
    if spec.xrd == "pattern":
        xrd = "pattern: every sample's pattern simulated (.xrdml) and analysed (phase ID + quantification)"
    else:
        xrd = f"truth + measurement model (sigma {sigma}, detection limit {dl})"
    result = {
        "benchmark": "campaign",
        "spec": {
            "targets": spec.targets,
            "furnaces": spec.furnaces,
            "furnace_slots": spec.furnace_slots,
            "days": spec.days,
            "seeds": spec.seeds,
            "budget_per_target": spec.budget_per_target,
            "planners": list(spec.planners),
            "priors": spec.priors,
            "workers": spec.workers,
            "chemistry": chemistry,
            "xrd": xrd,
        },
        "runs": runs,
        **aggregate(runs, spec.planners),
        "total_wall_s": round(time.perf_counter() - t0, 2),
        "cpu_count": os.cpu_count(),
    }
    return result
