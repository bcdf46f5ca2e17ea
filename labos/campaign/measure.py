"""How a campaign's samples are measured: what the simulated diffractometer writes, and the analyzer
that turns that file into an :class:`~labos.domain.Outcome` (the lab calls it in its ``analyze`` task).

* ``pattern`` mode: the true phases become a realistic powder pattern (``labos.simulator.xrd``)
  written as .xrdml; the analyzer reads the file and identifies and quantifies the phases
  (``labos.models.xrd.analyze``) among the reference structures. Success is judged from that
  analysis, never from the simulator's truth. Needs a structure for every phase the world can make
  (true of the demo chemistry).
* ``truth`` mode: for chemistries without structures (the A-Lab-scale benchmark draws targets from
  the whole thermodynamic database) the file holds the true weight fractions and the analyzer adds
  a quantification error: Gaussian σ on each weight fraction (``DEFAULT_SIGMA`` = 0.03, from the
  XRD analysis' error on real scans) and a detection limit (``DEFAULT_DETECTION_LIMIT`` = 1 wt%),
  deterministic per experiment. ``labos bench measurement`` runs the same demo syntheses through
  both paths and reports how well they agree (and calibrates σ and the limit from the analysis).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from labos.domain import Experiment, Outcome, PhaseResult, parse_formula

Analyzer = Callable[[str, Experiment, str | None], Outcome]

# The model's defaults, calibrated with ``labos bench measurement`` (labos.campaign.agreement): on the
# demo chemistry the model's decisions agree with analysing the simulated patterns, whose errors are
# smaller (σ ≈ 0.005) than on real scans; σ is therefore set from the XRD analysis' per-phase wt MAE
# on real scans (2.5 wt%, ``labos bench xrd``): σ = 0.025·√(π/2) ≈ 0.03. Detection limit: 1 wt%, the
# usual lab-XRD limit (the simulated scans reach ~0.3 wt%, see the benchmark).
DEFAULT_SIGMA = 0.03
DEFAULT_DETECTION_LIMIT = 0.01
Writer = Callable[[dict[str, float], Path, str], Path]


def _seed_of(*parts: Any) -> int:
    return zlib.crc32("|".join(str(p) for p in parts).encode())


_CAMPAIGN_PART = re.compile(r"^(exp|smp)-[0-9a-f]{12}-(\d+)$")


def _run_key(object_id: str) -> str:
    """The id without its campaign part (``exp-<campaign>-00012`` → ``exp--00012``): campaign ids are
    random, so measurements keyed on the rest repeat on a rerun of the same seed, and replicates
    (other sequence numbers) still differ."""
    m = _CAMPAIGN_PART.match(object_id)
    return f"{m.group(1)}--{m.group(2)}" if m else object_id


def phase_library(structures: Mapping[str, Any]):
    """A PhaseLibrary built once from name → pymatgen Structure (analysis reuses its phases)."""
    from labos.models.xrd.library import PhaseLibrary

    return PhaseLibrary.from_structures(dict(structures))


def pattern_writer(library, seed: int = 0, realistic: bool = True) -> Writer:
    """The diffractometer's file: a simulated scan of the true phases, as .xrdml.

    ``realistic``: every sample gets its own microstructure and mounting errors (see
    :func:`sample_effects`), so the analysis meets what it meets in a real lab rather than ideal
    powders; off, every phase is an ideal 70 nm untextured powder on a perfect instrument."""

    def write(phases: dict[str, float], out_dir: Path, sample_id: str) -> Path:
        from labos.models.xrd.io import write_xrdml
        from labos.simulator.xrd import synthesize

        total = sum(v for v in phases.values() if v > 0) or 1.0
        mix: dict[str, Any] = {name: v / total for name, v in phases.items() if v / total >= 1e-4}
        s = _seed_of(seed, _run_key(sample_id))
        instrument = None
        if realistic:
            mix, instrument = sample_effects(mix, np.random.default_rng(s))
        pattern = synthesize(mix, instrument, seed=s, library=library)
        return write_xrdml(pattern, Path(out_dir) / f"{sample_id}.xrdml", sample_id=sample_id)

    return write


def sample_effects(fractions: Mapping[str, float], rng: np.random.Generator):
    """Per-sample departures from an ideal powder, drawn over the ranges the XRD benchmark's
    synthetic cases use (``labos.models.xrd.benchmark.synthetic_cases``; its F1 and wt% errors are
    measured on them): crystallite size 20–300 nm (log-uniform), microstrain up to 8e-4, lattice
    strain ±0.4 %, March–Dollase texture 0.7–0.9 on major phases of 40 % of samples, 10 % random
    reflection-intensity errors in half of them (reference structure ≠ the sample's), zero shift
    ±0.1° and sample displacement ±0.2 mm. Returns (phase → SimPhase, Instrument)."""
    from labos.simulator.xrd import Instrument, SimPhase

    textured = bool(rng.random() < 0.4)
    model_error = float(rng.choice([0.0, 0.1]))
    phases = {
        name: SimPhase(
            fraction=float(w),
            size_nm=float(np.exp(rng.uniform(np.log(20.0), np.log(300.0)))),
            microstrain=float(rng.uniform(0.0, 8e-4)),
            po_ratio=float(rng.uniform(0.7, 0.9)) if textured and w > 0.2 else 1.0,
            lattice_strain=float(rng.uniform(-0.004, 0.004)),
            intensity_jitter=model_error,
        )
        for name, w in fractions.items()
    }
    instrument = Instrument(
        zero_shift=float(rng.uniform(-0.1, 0.1)), displacement_mm=float(rng.uniform(-0.2, 0.2))
    )
    return phases, instrument


def truth_analyzer(
    threshold: float,
    sigma: float = DEFAULT_SIGMA,
    detection_limit: float = DEFAULT_DETECTION_LIMIT,
    seed: int = 0,
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
    rng = np.random.default_rng(_seed_of(seed, _run_key(exp.id)))
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
