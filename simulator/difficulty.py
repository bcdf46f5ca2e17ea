"""How hard a world is: the share of (precursor set, temperature) cells that make each target.

A planner benchmark only means something if the world is neither trivial nor hopeless. For each
target, every balanced precursor set from the inventory (``labos.planners.candidates.enumerate_sets``
through :func:`labos.simulator.replay.export_replay`) is synthesised at every temperature of a
ladder, in worlds of several seeds; a cell succeeds when the target exceeds 50 wt%. The A-Lab
(Szymanski et al., Nature 2023) made 41 of 58 targets with 355 recipes, most targets after a few
tries: a typical target there has a minority of good cells, some have none.

Reported per target (mean over world seeds): the success share of cells, how many sets ever
succeed, and the share of sets that the single best temperature makes succeed ("one temperature
makes every set work" means precursor choice does not matter — an easy world).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from labos.domain import Precursor, parse_formula
from labos.errors import LabosError

from .replay import DEFAULT_HOLD_H, DEFAULT_TEMPERATURES_C, export_replay

#: Bins of the per-target success share (upper bounds, inclusive) used in the summary.
BINS: tuple[tuple[str, float], ...] = (
    ("none", 0.0),
    ("very_hard_lt5pct", 0.05),
    ("typical_5_30pct", 0.30),
    ("moderate_30_60pct", 0.60),
    ("easy_gt60pct", 1.0),
)


@dataclass
class TargetGrid:
    """One target in one world: the success grid over precursor sets × temperatures."""

    target: str
    seed: int
    temperatures_c: list[float]
    sets: list[list[str]]
    success: list[list[bool]]  # [set][temperature]
    best_fraction: list[float]  # best target fraction of each set over the temperatures

    @property
    def cells(self) -> int:
        return len(self.sets) * len(self.temperatures_c)

    @property
    def successes(self) -> int:
        return sum(sum(row) for row in self.success)

    @property
    def success_share(self) -> float:
        return self.successes / self.cells if self.cells else 0.0

    @property
    def sets_succeeding(self) -> int:
        return sum(any(row) for row in self.success)

    @property
    def best_temperature_set_share(self) -> float:
        """Share of sets that succeed at the single temperature where most sets succeed."""
        if not self.sets:
            return 0.0
        cols = [sum(row[j] for row in self.success) for j in range(len(self.temperatures_c))]
        return max(cols) / len(self.sets)

    def per_temperature(self) -> dict[str, int]:
        return {f"{t:g}": sum(row[j] for row in self.success) for j, t in enumerate(self.temperatures_c)}


def target_grid(
    world,
    target: str,
    inventory: Iterable[Precursor | str],
    *,
    temperatures_c: Sequence[float] = DEFAULT_TEMPERATURES_C,
    hold_time_h: float = DEFAULT_HOLD_H,
    max_size: int | None = None,
    threshold: float = 0.5,
) -> TargetGrid:
    """Synthesise every balanced set × temperature for ``target`` in ``world``."""
    data = export_replay(
        world,
        target,
        list(inventory),
        temperatures_c=temperatures_c,
        hold_time_h=hold_time_h,
        max_size=max_size,
        success_fraction=threshold,
    )
    want = parse_formula(target)
    temps = [float(t) for t in temperatures_c]
    rows: dict[tuple[str, ...], dict[float, float]] = {}
    for exp in data["experiments"]:
        frac = sum(v for k, v in exp["products"].items() if parse_formula(k) == want)
        rows.setdefault(tuple(exp["precursors"]), {})[float(exp["temperature_c"])] = frac
    sets = [list(k) for k in rows]
    success = [[rows[tuple(s)][t] > threshold for t in temps] for s in sets]
    best = [max(rows[tuple(s)].values()) for s in sets]
    return TargetGrid(target, int(world.seed), temps, sets, success, best)


@dataclass
class TargetDifficulty:
    """A target's difficulty over several world seeds (means over the seeds)."""

    target: str
    sets: int
    cells_per_seed: int
    success_share: float
    success_share_min: float
    success_share_max: float
    sets_succeeding: float
    best_temperature_set_share: float
    per_seed: list[float] = field(default_factory=list)

    def bin(self) -> str:
        return bin_of(self.success_share)


def bin_of(share: float) -> str:
    for name, upper in BINS:
        if share <= upper + 1e-12:
            return name
    return BINS[-1][0]


def summarize_grids(grids: Sequence[TargetGrid]) -> TargetDifficulty:
    g0 = grids[0]
    shares = [g.success_share for g in grids]
    return TargetDifficulty(
        target=g0.target,
        sets=len(g0.sets),
        cells_per_seed=g0.cells,
        success_share=statistics.fmean(shares),
        success_share_min=min(shares),
        success_share_max=max(shares),
        sets_succeeding=statistics.fmean(g.sets_succeeding for g in grids),
        best_temperature_set_share=statistics.fmean(g.best_temperature_set_share for g in grids),
        per_seed=[round(s, 4) for s in shares],
    )


def measure(
    make_world: Callable[[int], Any],
    targets: Sequence[str],
    inventory: Sequence[Precursor | str],
    seeds: Sequence[int] = (0, 1, 2),
    *,
    temperatures_c: Sequence[float] = DEFAULT_TEMPERATURES_C,
    hold_time_h: float = DEFAULT_HOLD_H,
    max_size: int | None = None,
) -> dict[str, Any]:
    """Difficulty report (JSON-ready) of the worlds ``make_world(seed)`` over ``targets``.

    Targets that no inventory set balances to are listed under ``skipped`` with the reason."""
    worlds = {s: make_world(s) for s in seeds}
    per_target: list[TargetDifficulty] = []
    skipped: dict[str, str] = {}
    cells = 0
    t0 = time.perf_counter()
    for target in targets:
        grids = []
        try:
            for s in seeds:
                grids.append(
                    target_grid(
                        worlds[s],
                        target,
                        inventory,
                        temperatures_c=temperatures_c,
                        hold_time_h=hold_time_h,
                        max_size=max_size,
                    )
                )
        except LabosError as exc:
            skipped[target] = str(exc)
            continue
        cells += sum(g.cells for g in grids)
        per_target.append(summarize_grids(grids))
    elapsed = time.perf_counter() - t0
    return {
        "seeds": list(seeds),
        "temperatures_c": [float(t) for t in temperatures_c],
        "hold_time_h": hold_time_h,
        "syntheses": cells,
        "seconds": round(elapsed, 2),
        "summary": distribution(per_target),
        "targets": {d.target: _rounded(asdict(d)) | {"bin": d.bin()} for d in per_target},
        "skipped": skipped,
    }


def distribution(per_target: Sequence[TargetDifficulty]) -> dict[str, Any]:
    """How the targets spread over difficulty bins, plus quantiles of the success share."""
    if not per_target:
        return {"targets": 0}
    shares = sorted(d.success_share for d in per_target)
    counts = {name: 0 for name, _ in BINS}
    for d in per_target:
        counts[d.bin()] += 1
    q = statistics.quantiles(shares, n=4) if len(shares) > 1 else [shares[0]] * 3
    return {
        "targets": len(per_target),
        "bins": counts,
        "success_share_mean": round(statistics.fmean(shares), 4),
        "success_share_quartiles": [round(x, 4) for x in q],
        "targets_made_in_some_cell": sum(d.sets_succeeding > 0 for d in per_target),
        "one_temperature_makes_every_set": sum(
            d.best_temperature_set_share >= 0.999 and d.sets > 1 for d in per_target
        ),
        "multi_set_targets": sum(d.sets > 1 for d in per_target),
    }


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
