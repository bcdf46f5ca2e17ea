"""How a campaign's samples are measured: what the simulated diffractometer writes, and the analyzer
that turns that file into an :class:`~labos.domain.Outcome` (the lab calls it in its ``analyze`` task).

* ``pattern`` mode: the true phases become a realistic powder pattern (``labos.simulator.xrd``)
  written as .xrdml; the analyzer reads the file and identifies and quantifies the phases
  (``labos.models.xrd.analyze``) among the reference structures. Success is judged from that
  analysis, never from the simulator's truth. Needs a structure for every phase the world can make
  (true of the demo chemistry).
* ``truth`` mode: for chemistries without structures (the A-Lab-scale benchmark draws targets from
  the whole thermodynamic database) the file holds the true weight fractions and the analyzer adds
  a quantification error: Gaussian σ on each weight fraction (default 0.02, the size of the
  systematic floor ``SYSTEMATIC_WT_SIGMA`` = 0.03 used by the XRD analysis for >50 wt% decisions)
  and a detection limit (default 1 wt%), deterministic per experiment.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labos.domain import Experiment, Outcome, PhaseResult, parse_formula

Analyzer = Callable[[str, Experiment, str | None], Outcome]
Writer = Callable[[dict[str, float], Path, str], Path]


def _seed_of(*parts: Any) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def phase_library(structures: Mapping[str, Any]):
    """A PhaseLibrary built once from name → pymatgen Structure (analysis reuses its phases)."""
    from labos.models.xrd.library import PhaseLibrary

    return PhaseLibrary.from_structures(dict(structures))


def pattern_writer(library, seed: int = 0) -> Writer:
    """The diffractometer's file: a simulated scan of the true phases, as .xrdml."""

    def write(phases: dict[str, float], out_dir: Path, sample_id: str) -> Path:
        from labos.models.xrd.io import write_xrdml
        from labos.simulator.xrd import synthesize

        total = sum(v for v in phases.values() if v > 0) or 1.0
        mix = {name: v / total for name, v in phases.items() if v / total >= 1e-4}
        pattern = synthesize(mix, seed=_seed_of(seed, sample_id), library=library)
        return write_xrdml(pattern, Path(out_dir) / f"{sample_id}.xrdml", sample_id=sample_id)

    return write


def truth_analyzer(
    threshold: float, sigma: float = 0.02, detection_limit: float = 0.01, seed: int = 0
) -> Analyzer:
    """The simulator's phases through a quantification-error model (see the module docstring)."""

    def analyze(path: str, exp: Experiment, sample_id: str | None) -> Outcome:
        data = json.loads(Path(path).read_text())
        return noisy_outcome(data["phases"], exp, threshold, sigma, detection_limit, seed)

    return analyze


def noisy_outcome(
    phases: Mapping[str, float],
    exp: Experiment,
    threshold: float,
    sigma: float,
    detection_limit: float,
    seed: int = 0,
) -> Outcome:
    rng = np.random.default_rng(_seed_of(seed, exp.id))
    names = sorted(phases)
    true = np.array([max(float(phases[n]), 0.0) for n in names])
    measured = np.clip(true + rng.normal(0.0, sigma, len(true)) * (true > 0), 0.0, None)
    measured[measured < detection_limit] = 0.0
    total = measured.sum()
    if total <= 0:  # nothing detectable: report the strongest phase alone
        measured = (true == true.max()).astype(float)
        total = measured.sum()
    measured /= total
    target = parse_formula(exp.target.formula)
    found = [(n, float(w)) for n, w in zip(names, measured, strict=True) if w > 0]
    frac = sum(w for n, w in found if _reduced(n) == target)
    return Outcome(
        experiment_id=exp.id,
        phases=[
            PhaseResult(phase_id=n, formula=n, weight_fraction=round(min(w, 1.0), 6), uncertainty=sigma)
            for n, w in sorted(found, key=lambda kv: -kv[1])
        ],
        target_formula=exp.target.formula,
        target_fraction=round(min(frac, 1.0), 6),
        success=frac > threshold,
        confidence=1.0,
        source="simulator",
    )


def _reduced(formula: str) -> str:
    try:
        return parse_formula(formula)
    except Exception:  # a phase label that is not a formula never matches the target
        return formula
