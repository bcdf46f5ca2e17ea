"""Export a world's full grid of outcomes as a replay dataset (the planner's replay format).

Every candidate precursor set for the target (``labos.planners.candidates.enumerate_sets`` over
the inventory, or the sets given) × every temperature is synthesised once in the world, with the
same hold time and ramp, and its true products recorded::

    {"target": "SrTiO3", "atmosphere": "air", "hold_time_h": 4,
     "success": {"target_fraction_at_least": 0.5},
     "experiments": [{"precursors": ["SrCO3", "TiO2"], "temperature_c": 600,
                      "products": {"SrCO3": 0.65, "TiO2": 0.35}}, ...]}

so the planner's replay benchmark can run on simulated worlds of many chemistries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from labos.domain import HeatSegment, HeatStep, Precursor, parse_formula
from labos.errors import LabosError

DEFAULT_TEMPERATURES_C: tuple[float, ...] = (600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0)
DEFAULT_HOLD_H = 4.0
DEFAULT_RAMP_C_PER_MIN = 10.0
DEFAULT_BATCH_MG = 1000.0
PRODUCT_DIGITS = 4


class ReplayExportError(LabosError, ValueError):
    """A replay export that cannot be made (no precursor set, bad temperatures, ...)."""


def _heat(temperature_c: float, hold_h: float, ramp: float, atmosphere: str) -> HeatStep:
    return HeatStep(
        segments=[HeatSegment(ramp_c_per_min=ramp, target_c=temperature_c, dwell_min=hold_h * 60.0)],
        atmosphere=atmosphere,
    )


def candidate_sets(
    target: str,
    inventory: Iterable[Precursor | str],
    precursor_sets: Sequence[Sequence[str]] | None = None,
    max_size: int | None = None,
    batch_mg: float = DEFAULT_BATCH_MG,
    atmosphere: str = "air",
) -> list[tuple[tuple[str, ...], dict[str, float]]]:
    """(precursors, masses in mg) of each set to replay, from the planner's enumeration."""
    from labos.planners.candidates import enumerate_sets, make_candidate

    if precursor_sets is None:
        cands = enumerate_sets(
            target, list(inventory), max_size=max_size, batch_mg=batch_mg, atmosphere=atmosphere
        )
    else:
        cands = []
        for ps in precursor_sets:
            cand = make_candidate(target, list(ps), batch_mg, atmosphere, allow_nonunique=True)
            if cand is None or cand.reaction is None:
                raise ReplayExportError(f"precursors {', '.join(ps)} cannot be balanced to {target}")
            cands.append(cand)
    return [(tuple(c.precursors), dict(c.masses_mg)) for c in cands]


def export_replay(
    world,
    target: str,
    inventory: Iterable[Precursor | str] | None = None,
    *,
    precursor_sets: Sequence[Sequence[str]] | None = None,
    temperatures_c: Sequence[float] = DEFAULT_TEMPERATURES_C,
    hold_time_h: float = DEFAULT_HOLD_H,
    ramp_c_per_min: float = DEFAULT_RAMP_C_PER_MIN,
    atmosphere: str = "air",
    batch_mg: float = DEFAULT_BATCH_MG,
    max_size: int | None = None,
    success_fraction: float = 0.5,
) -> dict[str, Any]:
    """The replay dataset (a JSON-ready dict) of ``world`` for ``target``."""
    target = target.strip()
    parse_formula(target)
    temps = [float(t) for t in temperatures_c]
    if not temps:
        raise ReplayExportError("at least one temperature is needed")
    if any(t < 20 or t > 1200 for t in temps):
        raise ReplayExportError(f"temperatures must lie between 20 and 1200 °C, got {temps}")
    if not 0 < hold_time_h <= 7 * 24:
        raise ReplayExportError(f"hold time must be between 0 and 168 h, got {hold_time_h}")
    if not 0 < success_fraction <= 1:
        raise ReplayExportError(f"success fraction must be in (0, 1], got {success_fraction}")
    if inventory is None and precursor_sets is None:
        raise ReplayExportError("give an inventory or explicit precursor sets")
    sets = candidate_sets(target, inventory or [], precursor_sets, max_size, batch_mg, atmosphere)
    experiments = []
    for precursors, masses in sets:
        for t in temps:
            out = world.synthesize(masses, _heat(t, hold_time_h, ramp_c_per_min, atmosphere), atmosphere)
            products = {
                k: round(v, PRODUCT_DIGITS) for k, v in out.phases.items() if round(v, PRODUCT_DIGITS) > 0
            }
            experiments.append({"precursors": list(precursors), "temperature_c": t, "products": products})
    return {
        "target": target,
        "atmosphere": atmosphere,
        "hold_time_h": hold_time_h,
        "success": {"target_fraction_at_least": success_fraction},
        "experiments": experiments,
    }


def write_replay(dataset: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataset, indent=1) + "\n", encoding="utf-8")
    return path


def summarize(dataset: dict[str, Any]) -> dict[str, Any]:
    """Cells, successes and the best cell of a replay dataset (for the CLI)."""
    target = parse_formula(dataset["target"])
    thr = dataset["success"]["target_fraction_at_least"]
    best, n_ok = None, 0
    for exp in dataset["experiments"]:
        frac = sum(v for k, v in exp["products"].items() if parse_formula(k) == target)
        n_ok += frac >= thr
        if best is None or frac > best[0]:
            best = (frac, exp)
    return {
        "target": dataset["target"],
        "cells": len(dataset["experiments"]),
        "successes": n_ok,
        "best": None if best is None else {**best[1], "target_fraction": round(best[0], 4)},
    }
