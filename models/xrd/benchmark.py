"""Benchmarks of XRD phase identification and quantification (``labos bench xrd``) and of the
pattern simulator against real scans (``labos bench xrd-sim``).

Method (../shared/reference/XRD.md): one candidate library per pattern = every reference phase made
only of the elements of the true phases (always including the true ones); phases are matched by
reduced formula (the file names of the real scans give no space group); quantification errors are
taken over the union of true and predicted phases (a missed phase counts as predicted 0); the
A-Lab decision is "phase > 50 wt%" for every true phase. The baseline, run in the same invocation,
is the proposal step alone: peak-matched candidate profiles fitted by non-negative least squares
(no refinement, no model selection), phases above 3 wt% reported.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labos.domain import XRDPattern, parse_formula


@dataclass
class Case:
    name: str
    pattern: XRDPattern
    truth: dict[str, float]  # reduced formula → weight fraction (NaN when only presence is known)
    candidates: list  # CrystalPhase
    group: str
    strata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prediction:
    phases: dict[str, float]  # reduced formula → weight fraction
    seconds: float
    cpu_seconds: float


# ----------------------------------------------------------------------------------- methods
def run_refinement(case: Case) -> Prediction:
    from labos.models.xrd.analysis import analyze

    t0, c0 = time.perf_counter(), time.process_time()
    result = analyze(case.pattern, case.candidates)
    phases: dict[str, float] = {}
    for p in result.phases:
        phases[match_key(p.formula)] = phases.get(match_key(p.formula), 0.0) + p.weight_fraction
    return Prediction(phases, time.perf_counter() - t0, time.process_time() - c0)


def run_baseline(case: Case, *, min_fraction: float = 0.03) -> Prediction:
    """Peak matching + NNLS of fixed candidate profiles (no refinement, no model selection)."""
    from labos.models.xrd.analysis import _bin
    from labos.models.xrd.peaks import find_peaks, initial_state, match_phase
    from labos.models.xrd.physics import InstrumentProfile, PhaseCalc, phase_pattern, weights_from_scales
    from labos.models.xrd.refine import background_basis
    from scipy.optimize import nnls
    from threadpoolctl import threadpool_limits

    t0, c0 = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        x, y = _bin(case.pattern.x, case.pattern.y, 0.02)
        inst = InstrumentProfile(
            wavelengths=tuple(case.pattern.wavelengths), weights=tuple(case.pattern.wavelength_weights)
        )
        obs = find_peaks(x, y)
        cols, phases = [], []
        for p in case.candidates:
            calc = PhaseCalc.for_range(p, float(x[-1]), inst.wavelengths)
            m = match_phase(calc, inst, obs, (float(x[0]), float(x[-1])))
            col = phase_pattern(x, calc, initial_state(calc, m, 100.0), InstrumentProfile(zero_shift=m.zero))
            if col.max() > 0:
                cols.append(col)
                phases.append(p)
        out: dict[str, float] = {}
        if cols:
            sw = 1.0 / np.sqrt(np.maximum(y, 1.0))
            bg = background_basis(x, 10)
            # background by least squares first (NNLS cannot take free-sign terms), then phases
            a = np.column_stack(cols)
            coef_bg = np.linalg.lstsq(bg * sw[:, None], obs.background * sw, rcond=None)[0]
            net = (y - bg @ coef_bg) * sw
            norms = np.linalg.norm(a * sw[:, None], axis=0)
            sol, _ = nnls(a * sw[:, None] / norms, net)
            scales = sol / norms
            wf = weights_from_scales(scales, [p.zmv for p in phases])
            keep = wf >= min_fraction
            wf = np.where(keep, wf, 0.0)
            wf = wf / wf.sum() if wf.sum() > 0 else wf
            for p, w in zip(phases, wf, strict=True):
                if w > 0:
                    out[match_key(p.formula)] = out.get(match_key(p.formula), 0.0) + float(w)
    return Prediction(out, time.perf_counter() - t0, time.process_time() - c0)


# ----------------------------------------------------------------------------------- scoring
def score(cases: list[Case], preds: list[Prediction], threshold: float = 0.5) -> dict[str, Any]:
    tp = fp = fn = 0
    exact = 0
    errors: list[float] = []
    decisions = []
    dyield = []
    fp_small = 0
    for case, pred in zip(cases, preds, strict=True):
        true_set = set(case.truth)
        pred_set = {k for k, v in pred.phases.items() if v > 0}
        tp += len(true_set & pred_set)
        fp += len(pred_set - true_set)
        fn += len(true_set - pred_set)
        fp_small += sum(1 for k in pred_set - true_set if pred.phases[k] < 0.03)
        exact += true_set == pred_set
        quantified = all(not math.isnan(v) for v in case.truth.values())
        if quantified:
            for k in true_set | pred_set:
                errors.append(abs(pred.phases.get(k, 0.0) - case.truth.get(k, 0.0)))
            for k, v in case.truth.items():
                decisions.append((pred.phases.get(k, 0.0) > threshold) == (v > threshold))
                dyield.append(abs(pred.phases.get(k, 0.0) - v))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    secs = np.array([p.seconds for p in preds]) if preds else np.zeros(1)
    cpu = np.array([p.cpu_seconds for p in preds]) if preds else np.zeros(1)
    out: dict[str, Any] = {
        "patterns": len(cases),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "exact_set_accuracy": round(exact / len(cases), 4) if cases else None,
        "false_positives_below_3wt": fp_small,
        "median_s": round(float(np.median(secs)), 3),
        "p90_s": round(float(np.percentile(secs, 90)), 3),
        "median_cpu_s": round(float(np.median(cpu)), 3),
        "p90_cpu_s": round(float(np.percentile(cpu, 90)), 3),
    }
    if errors:
        e = np.array(errors) * 100
        out.update(
            wt_mae=round(float(e.mean()), 3),
            wt_rmse=round(float(np.sqrt((e**2).mean())), 3),
            wt_max=round(float(e.max()), 3),
            decision_accuracy=round(float(np.mean(decisions)), 4),
            mean_abs_yield_error=round(float(np.mean(dyield)) * 100, 3),
        )
    return out


def detection_by_fraction(cases: list[Case], preds: list[Prediction]) -> dict[str, Any]:
    """Recall of true phases binned by their true wt% (the detection limit)."""
    bins = [(0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, 0.3), (0.3, 1.01)]
    out = {}
    for lo, hi in bins:
        hits = [
            k in p.phases
            for c, p in zip(cases, preds, strict=True)
            for k, v in c.truth.items()
            if not math.isnan(v) and lo <= v < hi
        ]
        if hits:
            out[f"{int(lo * 100)}-{int(min(hi, 1) * 100)}wt%"] = {
                "n": len(hits),
                "recall": round(float(np.mean(hits)), 3),
            }
    return out


# ----------------------------------------------------------------------------------- data sets
def match_key(formula: str) -> str:
    """Reduced formula for matching; non-stoichiometric formulas (partial occupancies such as
    YBa2Cu3O6.91) are rounded to whole atoms so that two CIFs of one phase match."""
    from pymatgen.core import Composition

    comp = Composition(formula)
    if all(abs(v - round(v)) < 1e-6 for v in comp.values()):
        return comp.reduced_formula
    return Composition({el: max(round(v), 1) for el, v in comp.items()}).reduced_formula


def _elements(formulas: Iterable[str]) -> set[str]:
    from pymatgen.core import Composition

    return {e.symbol for f in formulas for e in Composition(f).elements}


def _file_truth(name: str) -> dict[str, float]:
    """``V2O5_0p3015-TiO2_0p6998--8min`` → {V2O5: 0.3015, TiO2: 0.6998} (reduced formulas)."""
    stem = name.split("--")[0]
    out = {}
    for m in re.finditer(r"([A-Za-z0-9().]+)_(\d+p\d+)", stem):
        out[match_key(parse_formula(m.group(1)))] = float(m.group(2).replace("p", "."))
    return out


def real_mixture_cases(data_dir: Path, library) -> list[Case]:
    from labos.models.xrd.io import read_pattern

    cases = []
    for f in sorted((data_dir / "xrd" / "precursor_mixtures").glob("*.xrdml")):
        truth = _file_truth(f.stem)
        cands = library.candidates(_elements(truth))
        scan = "fast" if "2min" in f.stem else "normal"
        cases.append(Case(f.stem, read_pattern(f), truth, cands, "real_mixtures", {"scan": scan}))
    return cases


def autoanalyzer_cases(data_dir: Path) -> list[Case]:
    from labos.models.xrd.io import read_pattern
    from labos.models.xrd.library import PhaseLibrary

    base = data_dir / "xrd" / "autoanalyzer_example"
    if not (base / "spectra").is_dir():
        return []
    library = PhaseLibrary.from_cif_dir(base / "references")
    cases = []
    for f in sorted((base / "spectra").glob("*.xy")):
        truth = {match_key(p): float("nan") for p in f.stem.split("+")}
        cands = library.candidates(_elements(truth))
        cases.append(Case(f.stem, read_pattern(f), truth, cands, "autoanalyzer", {"phases": len(truth)}))
    return cases


def synthetic_cases(library, n: int, seed: int = 0) -> list[Case]:
    """Patterns from the simulator stratified by number of phases (1–4), minor-phase fraction
    (1–30 wt%), counting time, texture, crystallite size, zero shift / displacement, and half of
    them with 10 % random errors of the reflection intensities (a structure model that is not quite
    the sample's, as with real CIFs)."""
    from labos.simulator.xrd import Instrument, SimPhase, synthesize

    rng = np.random.default_rng(seed)
    # one entry per (formula, space group): the reference for the truth; polymorphs stay candidates
    pool: dict[tuple[str, int], Any] = {}
    for p in library:
        pool.setdefault((p.formula, p.spacegroup_number), p)
    entries = [p for p in pool.values() if len(p.reflections().d) <= 700]
    cases = []
    for i in range(n):
        k = 1 + i % 4
        idx = rng.choice(len(entries), size=k, replace=False)
        chosen = [entries[j] for j in idx]
        if len({match_key(c.formula) for c in chosen}) < k:
            continue
        minor = float(np.exp(rng.uniform(math.log(0.01), math.log(0.30)))) if k > 1 else 1.0
        rest = rng.dirichlet(np.ones(k - 1)) * (1 - minor) if k > 1 else np.array([])
        fractions = [minor, *rest.tolist()] if k > 1 else [1.0]
        if k > 1 and min(rest) < minor:  # keep the drawn minor phase the smallest
            rest = np.maximum(rest, minor)
            fractions = [minor, *(rest / rest.sum() * (1 - minor)).tolist()]
        counting = float(rng.choice([3.1, 12.5]))
        textured = bool(rng.random() < 0.4)
        model_error = float(rng.choice([0.0, 0.1]))  # structure-model mismatch of real samples
        phases = {}
        for ph, w in zip(chosen, fractions, strict=True):
            phases[ph] = SimPhase(
                fraction=w,
                size_nm=float(np.exp(rng.uniform(math.log(20), math.log(300)))),
                microstrain=float(rng.uniform(0, 8e-4)),
                po_ratio=float(rng.uniform(0.7, 0.9)) if textured and w > 0.2 else 1.0,
                lattice_strain=float(rng.uniform(-0.004, 0.004)),
                intensity_jitter=model_error,
            )
        inst = Instrument(
            counting_time_s=counting,
            zero_shift=float(rng.uniform(-0.1, 0.1)),
            displacement_mm=float(rng.uniform(-0.2, 0.2)),
        )
        pattern = synthesize(phases, inst, seed=seed * 1000 + i)
        truth: dict[str, float] = {}
        for ph, w in zip(chosen, fractions, strict=True):
            truth[match_key(ph.formula)] = truth.get(match_key(ph.formula), 0.0) + w
        cands = library.candidates(_elements(truth))
        strata = {
            "phases": k,
            "minor_wt": round(minor, 4) if k > 1 else None,
            "counting_s": counting,
            "textured": textured,
            "model_error": model_error,
            "references": [ph.name for ph in chosen],
        }
        cases.append(Case(f"synthetic-{i}", pattern, truth, cands, "synthetic", strata))
    return cases


# ----------------------------------------------------------------------------------- runners
def evaluate(cases: list[Case], method: Callable[[Case], Prediction]) -> list[Prediction]:
    return [method(c) for c in cases]


def bench_xrd(
    *, n_synthetic: int = 40, seed: int = 0, baseline: bool = True, progress=None
) -> dict[str, Any]:
    """Every group the machine has data for; the baseline in the same run."""
    from labos.models.xrd.library import PhaseLibrary, reference_library

    from labos.config import get_settings

    data = get_settings().datasets
    groups: dict[str, list[Case]] = {}
    cif_dir = data / "xrd" / "cifs"
    t0 = time.perf_counter()
    if cif_dir.is_dir():
        library = PhaseLibrary.from_cif_dir(cif_dir).merged(reference_library())
    else:
        from labos.simulator.demo_chemistry import demo_structures

        library = PhaseLibrary.from_structures(demo_structures(), source="demo")
    for p in library:  # one-off cost, reported separately
        p.reflections()
    library_s = time.perf_counter() - t0
    groups["synthetic"] = synthetic_cases(library, n_synthetic, seed)
    if (data / "xrd" / "precursor_mixtures").is_dir():
        groups["real_mixtures"] = real_mixture_cases(data, library)
    groups["autoanalyzer"] = autoanalyzer_cases(data)
    out: dict[str, Any] = {
        "library_phases": len(library),
        "library_build_s": round(library_s, 2),
        "groups": {},
    }
    for name, cases in groups.items():
        if not cases:
            continue
        if progress:
            progress(f"{name}: {len(cases)} patterns")
        for c in cases[:1]:  # warm the reflection caches of this group's candidates
            run_refinement(c)
        preds = evaluate(cases, run_refinement)
        g: dict[str, Any] = {"refinement": score(cases, preds)}
        if name == "synthetic":
            g["detection_by_true_wt"] = detection_by_fraction(cases, preds)
            by_k = {}
            for k in (1, 2, 3, 4):
                sel = [i for i, c in enumerate(cases) if c.strata.get("phases") == k]
                if sel:
                    by_k[str(k)] = score([cases[i] for i in sel], [preds[i] for i in sel])
            g["by_phase_count"] = by_k
        if name == "real_mixtures":
            g["per_pattern"] = [
                {
                    "file": c.name,
                    "truth": {k: round(v, 4) for k, v in c.truth.items()},
                    "found": {k: round(v, 4) for k, v in p.phases.items()},
                    "seconds": round(p.seconds, 3),
                }
                for c, p in zip(cases, preds, strict=True)
            ]
        if baseline:
            base = evaluate(cases, run_baseline)
            b = score(cases, base)
            g["baseline_nnls"] = b
            r = g["refinement"]
            g["ratio_vs_baseline"] = {
                "f1": _ratio(r["f1"], b["f1"]),
                "wt_mae": _ratio(r.get("wt_mae"), b.get("wt_mae")),
                "median_s": _ratio(r["median_s"], b["median_s"]),
            }
        out["groups"][name] = g
    return out


def _ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return round(a / b, 3)


# ----------------------------------------------------------------------------------- simulator vs real
def bench_xrd_sim(*, progress=None) -> dict[str, Any]:
    """Simulate each real weighed mixture (same phases, same weights, default instrument) and compare
    with the real scan: peak positions and widths, background and noise, Rwp of a fit with the true
    phases, and the analysis' weight fractions on both."""
    from labos.models.xrd.analysis import analyze
    from labos.models.xrd.library import PhaseLibrary, reference_library
    from labos.models.xrd.peaks import find_peaks
    from labos.simulator.xrd import Instrument, synthesize

    from labos.config import get_settings
    from labos.errors import DataMissingError

    data = get_settings().datasets
    mix_dir = data / "xrd" / "precursor_mixtures"
    if not mix_dir.is_dir():
        raise DataMissingError(f"{mix_dir} is missing: the comparison needs the real weighed mixtures")
    library = PhaseLibrary.from_cif_dir(data / "xrd" / "cifs").merged(reference_library())
    rows = []
    for case in real_mixture_cases(data, library):
        if not case.name.endswith("8min"):
            continue
        real = case.pattern
        fit_real = analyze(real, case.candidates)
        # simulate what was identified in the real scan, at the true weights (the structures the fit chose)
        chosen = {d.formula: library[d.name] for d in fit_real.details}
        phases = {}
        for formula, w in case.truth.items():
            ref = chosen.get(formula) or library.find(formula)
            if ref is not None:
                phases[ref] = w
        inst = Instrument(
            two_theta_start=float(real.x[0]),
            two_theta_end=float(real.x[-1]),
            step=float(np.median(np.diff(real.x))),
            counting_time_s=float(real.counting_time_s or 12.5),
        )
        sim = synthesize(phases, inst, seed=1)
        fit_sim = analyze(sim, case.candidates)
        pr, ps = find_peaks(real.x, real.y), find_peaks(sim.x, sim.y)
        dpos, dwid = _peak_pairs(pr, ps)
        rows.append(
            {
                "file": case.name,
                "peaks_real": int(pr.position.size),
                "peaks_sim": int(ps.position.size),
                "matched_peaks": int(dpos.size),
                "median_abs_dpos_deg": round(float(np.median(np.abs(dpos))), 4) if dpos.size else None,
                "median_fwhm_ratio_sim_over_real": round(float(np.median(dwid)), 3) if dwid.size else None,
                "background_ratio_sim_over_real": round(
                    float(np.median(ps.background) / np.median(pr.background)), 3
                ),
                "noise_index_real": round(_noise_index(real.x, real.y), 3),
                "noise_index_sim": round(_noise_index(sim.x, sim.y), 3),
                "rwp_real": round(fit_real.rwp, 4),
                "rwp_sim": round(fit_sim.rwp, 4),
                "gof_real": round(fit_real.gof, 2),
                "gof_sim": round(fit_sim.gof, 2),
                "wt_real_fit": {d.name: round(d.weight_fraction, 4) for d in fit_real.details},
                "wt_sim_fit": {d.name: round(d.weight_fraction, 4) for d in fit_sim.details},
                "truth": case.truth,
            }
        )
        if progress:
            progress(case.name)
    summary = {
        "median_abs_dpos_deg": _median(r["median_abs_dpos_deg"] for r in rows),
        "median_fwhm_ratio": _median(r["median_fwhm_ratio_sim_over_real"] for r in rows),
        "median_background_ratio": _median(r["background_ratio_sim_over_real"] for r in rows),
        "median_noise_index_real": _median(r["noise_index_real"] for r in rows),
        "median_noise_index_sim": _median(r["noise_index_sim"] for r in rows),
        "median_rwp_real": _median(r["rwp_real"] for r in rows),
        "median_rwp_sim": _median(r["rwp_sim"] for r in rows),
    }
    return {"summary": summary, "patterns": rows}


def _median(values) -> float | None:
    v = [x for x in values if x is not None]
    return round(float(np.median(v)), 4) if v else None


def _peak_pairs(a, b, tol: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """Position differences and FWHM ratios (b/a) of peaks of b within tol of a peak of a."""
    if a.position.size == 0 or b.position.size == 0:
        return np.zeros(0), np.zeros(0)
    j = np.clip(np.searchsorted(b.position, a.position), 1, b.position.size - 1)
    left = np.abs(b.position[j - 1] - a.position) < np.abs(b.position[j] - a.position)
    j = np.where(left, j - 1, j)
    d = b.position[j] - a.position
    ok = np.abs(d) < tol
    strong = a.significance > 20
    ok &= strong
    return d[ok], b.fwhm[j][ok] / a.fwhm[ok]


def _noise_index(x: np.ndarray, y: np.ndarray) -> float:
    """Std of point-to-point differences over √counts in peak-free regions: ≈ 1 for Poisson noise."""
    from labos.models.xrd.peaks import estimate_background

    bg = estimate_background(x, y)
    quiet = np.abs(y - bg) < 3 * np.sqrt(np.maximum(bg, 1))
    d = np.diff(y)[quiet[1:] & quiet[:-1]]
    s = np.sqrt(np.maximum(y[1:], 1))[quiet[1:] & quiet[:-1]]
    return float(np.std(d / s) / math.sqrt(2)) if d.size > 10 else float("nan")
