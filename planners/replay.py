"""Replay benchmark: planners against the recorded outcomes of real (or simulated) experiments.

The action space is exactly the measured cells (precursor set, temperature); asking for a cell
returns its recorded products. A dataset is JSON (a contract shared with ``labos sim replay-dataset``)::

    {"target": "LiMn2O4", "atmosphere": "air", "hold_time_h": 4,
     "success": {"target_fraction_at_least": 0.5},
     "experiments": [{"precursors": ["Li2CO3", "MnO"], "temperature_c": 600,
                      "products": {"Li2MnO3": 0.4, "Mn3O4": 0.35, "Li2CO3": 0.25}}, ...]}

Documented fallbacks: product names are compared by composition (``La(OH)3`` = ``LaH3O3``); product
weight fractions are renormalised to sum to 1 (values summing to ~100 are read as percent); a cell
measured twice gets the mean of its products; unknown keys are ignored. Anything else that does not
fit is a :class:`ReplayFormatError` naming the experiment and the problem.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from labos.planners.candidates import set_key
from labos.planners.chemistry import canonical
from labos.planners.errors import ReplayFormatError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labos.domain import Outcome, PhaseResult
from labos.errors import FormulaError

BUDGETS = (10, 20, 50)
_ATMOSPHERES = {
    "air": "air",
    "o2": "O2",
    "oxygen": "O2",
    "n2": "N2",
    "nitrogen": "N2",
    "ar": "Ar",
    "argon": "Ar",
}


class ReplaySuccess(BaseModel):
    model_config = ConfigDict(extra="ignore")
    target_fraction_at_least: float = Field(default=0.5, gt=0, le=1)


class ReplayExperiment(BaseModel):
    model_config = ConfigDict(extra="ignore")
    precursors: list[str] = Field(min_length=1)
    temperature_c: float = Field(gt=-273.15, lt=3000)
    products: dict[str, float]

    @field_validator("precursors")
    @classmethod
    def _formulas(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                canonical(p)
            except FormulaError as exc:
                raise ValueError(f"precursor {p!r}: {exc}") from None
        if len(set_key(v)) != len(set(set_key(v))):
            raise ValueError(f"precursor set {v} lists the same compound twice")
        return v

    @field_validator("products")
    @classmethod
    def _products(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            try:
                canonical(name)
            except FormulaError as exc:
                raise ValueError(f"product {name!r} is not a chemical formula: {exc}") from None
            if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
                raise ValueError(f"product {name!r} has weight fraction {w!r}; it must be a number >= 0")
        return v


class ReplayDataset(BaseModel):
    model_config = ConfigDict(extra="ignore")
    target: str
    atmosphere: str = "air"
    hold_time_h: float | None = Field(default=None, gt=0)
    success: ReplaySuccess = Field(default_factory=ReplaySuccess)
    experiments: list[ReplayExperiment] = Field(min_length=1)

    @field_validator("target")
    @classmethod
    def _target(cls, v: str) -> str:
        try:
            canonical(v)
        except FormulaError as exc:
            raise ValueError(f"target {v!r}: {exc}") from None
        return v

    @field_validator("atmosphere")
    @classmethod
    def _atmosphere(cls, v: str) -> str:
        try:
            return _ATMOSPHERES[v.strip().lower()]
        except KeyError:
            raise ValueError(
                f"atmosphere {v!r} is not one of {', '.join(sorted(set(_ATMOSPHERES.values())))}"
            ) from None


def load_replay(source: str | Path | dict[str, Any]) -> ReplayDataset:
    """Read and validate a replay dataset; every problem becomes a ReplayFormatError naming it."""
    where = "replay dataset"
    if isinstance(source, dict):
        data = source
    else:
        path = Path(source)
        where = str(path)
        if not path.is_file():
            raise ReplayFormatError(f"replay dataset {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReplayFormatError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ReplayFormatError(
            f"{where}: the top level must be a JSON object with 'target' and 'experiments'"
        )
    try:
        return ReplayDataset.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ReplayFormatError(f"{where} does not follow the replay format: {problems}") from None


def _normalise(products: dict[str, float]) -> tuple[dict[str, float], bool]:
    merged: dict[str, float] = {}
    for name, w in products.items():
        key = canonical(name)
        merged[key] = merged.get(key, 0.0) + float(w)
    total = sum(merged.values())
    percent = 1.5 < total <= 105.0
    if total <= 0:
        return {}, False
    return {k: v / total for k, v in merged.items() if v > 0}, percent


class ReplayOracle:
    """The measured cells of a dataset; ``outcome`` answers one cell with its recorded products."""

    def __init__(self, dataset: ReplayDataset):
        self.dataset = dataset
        self.target_key = canonical(dataset.target)
        self.threshold = dataset.success.target_fraction_at_least
        self.notes: list[str] = []
        cells: dict[tuple[tuple[str, ...], float], list[dict[str, float]]] = {}
        names: dict[tuple[tuple[str, ...], float], list[str]] = {}
        for exp in dataset.experiments:
            key = (set_key(exp.precursors), round(float(exp.temperature_c), 1))
            products, percent = _normalise(exp.products)
            if percent:
                self.notes.append(
                    f"{'+'.join(exp.precursors)} at {exp.temperature_c} °C: fractions read as percent"
                )
            cells.setdefault(key, []).append(products)
            names.setdefault(key, list(exp.precursors))
        self.cells: dict[tuple[tuple[str, ...], float], dict[str, float]] = {}
        for key, runs in cells.items():
            if len(runs) > 1:
                self.notes.append(f"{'+'.join(key[0])} at {key[1]} °C measured {len(runs)} times: mean used")
            phases = sorted({p for r in runs for p in r})
            self.cells[key] = {p: float(np.mean([r.get(p, 0.0) for r in runs])) for p in phases}
        self._names = names

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    def target_fraction(self, key: tuple[tuple[str, ...], float]) -> float:
        return self.cells[key].get(self.target_key, 0.0)

    @property
    def success_keys(self) -> set[tuple[tuple[str, ...], float]]:
        return {k for k in self.cells if self.target_fraction(k) >= self.threshold - 1e-9}

    def space(self) -> list[tuple[list[str], float]]:
        return [(self._names[k], k[1]) for k in sorted(self.cells)]

    def outcome(self, precursors: Sequence[str], temperature_c: float, experiment_id: str) -> Outcome:
        key = (set_key(precursors), round(float(temperature_c), 1))
        if key not in self.cells:
            raise ReplayFormatError(
                f"{' + '.join(precursors)} at {temperature_c} °C was not measured in this dataset"
            )
        phases = self.cells[key]
        frac = phases.get(self.target_key, 0.0)
        return Outcome(
            experiment_id=experiment_id,
            phases=[
                PhaseResult(phase_id=p, formula=p, weight_fraction=min(w, 1.0)) for p, w in phases.items()
            ],
            target_formula=self.dataset.target,
            target_fraction=min(frac, 1.0),
            success=frac >= self.threshold - 1e-9,
            source="replay",
        )


# ---------------------------------------------------------------------- running planners


def random_expectation(n: int, k: int) -> dict[str, Any]:
    """Analytic random search without replacement: first success, all successes, within budgets."""
    if k == 0:
        return {"first": None, "all": None, **{f"within_{b}": 0.0 for b in BUDGETS}}
    return {
        "first": (n + 1) / (k + 1),
        "all": k * (n + 1) / (k + 1),
        **{f"within_{b}": min(b, n) * k / n for b in BUDGETS},
    }


def run_one(
    name: str,
    oracle: ReplayOracle,
    seed: int,
    thermo: Any = None,
    priors: Any = None,
    energy_noise_ev: float = 0.025,
    batch: int = 1,
    max_experiments: int | None = None,
) -> dict[str, Any]:
    """One planner, one seed: the experiment numbers (1-based) at which successes were found."""
    from labos.planners.registry import DETERMINISTIC, get_planner

    ds = oracle.dataset
    planner = get_planner(
        name,
        ds.target,
        None,
        thermo,
        priors,
        seed=seed,
        space=oracle.space(),
        atmosphere=ds.atmosphere,
        dwell_min=(ds.hold_time_h or 4.0) * 60.0,
        success_threshold=oracle.threshold,
        energy_noise_ev=energy_noise_ev if name in DETERMINISTIC else 0.0,
    )
    wanted = len(oracle.success_keys)
    limit = min(max_experiments or oracle.n_cells, oracle.n_cells)
    found: list[int] = []
    fractions: list[float] = []
    spent = 0.0
    count = 0
    while count < limit and len(found) < max(wanted, 1):
        t0 = time.perf_counter()
        proposals = planner.ask_batch(min(batch, limit - count))
        spent += time.perf_counter() - t0
        for p in proposals:
            count += 1
            out = oracle.outcome(p.precursors, p.temperature_c, f"replay-{seed}-{count}")
            t0 = time.perf_counter()
            planner.tell(p, out)
            spent += time.perf_counter() - t0
            fractions.append(out.target_fraction)
            if out.success:
                found.append(count)
        if wanted == 0 and count >= limit:
            break
    return {
        "seed": seed,
        "successes_at": found,
        "experiments": count,
        "seconds": spent,
        "fractions": fractions,
    }


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "q1": None, "q3": None, "mean": None}
    arr = np.asarray(values, dtype=float)
    return {
        "median": float(np.median(arr)),
        "q1": float(np.percentile(arr, 25)),
        "q3": float(np.percentile(arr, 75)),
        "mean": float(arr.mean()),
    }


def summarise(runs: list[dict[str, Any]], n: int, k: int) -> dict[str, Any]:
    """Median/IQR of experiments to first and all successes, successes within budgets, AUC."""
    firsts = [r["successes_at"][0] for r in runs if r["successes_at"]]
    alls = [r["successes_at"][k - 1] for r in runs if k and len(r["successes_at"]) >= k]
    out: dict[str, Any] = {
        "seeds": len(runs),
        "first_success": _stats(firsts),
        "all_successes": _stats(alls),
        "runs_without_success": sum(1 for r in runs if not r["successes_at"]),
    }
    for b in BUDGETS:
        counts = [sum(1 for x in r["successes_at"] if x <= b) for r in runs]
        out[f"within_{b}"] = _stats(counts)
    if k:
        # area under "share of successes found vs experiments" over the whole space (1 = instant)
        aucs = []
        for r in runs:
            found = np.zeros(n)
            for x in r["successes_at"]:
                found[x - 1 :] += 1
            aucs.append(float(found.sum() / (k * n)))
        out["auc"] = _stats(aucs)
    total_exp = sum(r["experiments"] for r in runs) or 1
    out["ms_per_experiment"] = 1000.0 * sum(r["seconds"] for r in runs) / total_exp
    return out


def benchmark(
    dataset: ReplayDataset,
    planners: Iterable[str],
    seeds: int = 100,
    thermo: Any = None,
    priors: Any = None,
    energy_noise_ev: float = 0.025,
    batch: int = 1,
    jobs: int = 1,
) -> dict[str, Any]:
    """Every planner over ``seeds`` seeds on the same oracle, beside the analytic random expectation.

    ``jobs`` > 1 runs seeds in forked processes (results are identical: every run is seeded).
    """
    oracle = ReplayOracle(dataset)
    n, k = oracle.n_cells, len(oracle.success_keys)
    thermo_view = None
    if thermo is not None:
        from labos.planners.energies import ThermoView

        thermo_view = ThermoView(thermo, dataset.atmosphere)
        thermo_view.note_phases({p for key in oracle.cells for p in key[0]} | {oracle.target_key})
    estimated = sorted(
        {p for phases in oracle.cells.values() for p in phases} | {oracle.target_key},
    )
    flagged = [p for p in estimated if thermo_view is not None and thermo_view.is_estimated(p)]
    result: dict[str, Any] = {
        "target": dataset.target,
        "cells": n,
        "successes": k,
        "threshold": oracle.threshold,
        "energy_noise_ev_per_atom": energy_noise_ev,
        "batch": batch,
        "thermo": thermo is not None,
        "priors": priors is not None,
        "estimated_energies": flagged,
        "notes": oracle.notes,
        "random_expectation": random_expectation(n, k),
        "planners": {},
    }
    for name in planners:
        t0 = time.perf_counter()
        args = [(name, oracle, s, thermo, priors, energy_noise_ev, batch) for s in range(seeds)]
        if jobs > 1 and seeds > 1:
            runs = _parallel(args, jobs)
        else:
            runs = [run_one(*a) for a in args]
        summary = summarise(runs, n, k)
        summary["wall_s"] = time.perf_counter() - t0
        result["planners"][name] = summary
    return result


_FORK_ARGS: list[tuple] = []


def _run_index(i: int) -> dict[str, Any]:
    return run_one(*_FORK_ARGS[i])


def _parallel(args: list[tuple], jobs: int) -> list[dict[str, Any]]:
    """Seeds in forked worker processes (they inherit the loaded thermo data and priors)."""
    import multiprocessing as mp

    global _FORK_ARGS
    _FORK_ARGS = args
    try:
        with mp.get_context("fork").Pool(jobs) as pool:
            return pool.map(_run_index, range(len(args)))
    finally:
        _FORK_ARGS = []
