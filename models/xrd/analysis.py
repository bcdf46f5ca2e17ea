"""Phase identification and quantification of a powder pattern.

1. Preparation: crop, bin to ~0.02° steps (sums counts, so Poisson statistics hold), SNIP
   background and peak list for the proposal step.
2. Proposal: every candidate's sticks are matched to the observed peaks over a grid of lattice
   strains and zero shifts (peak matching), then rendered as a full profile at a few crystallite
   sizes. A projection onto the current residual gives, for all candidates at once, how much each
   would lower χ² if added (linear screening).
3. Greedy search with whole-pattern refinement: the best few screened candidates are each
   co-refined with the phases already accepted (variable-projection least squares: scales and
   background linear, lattice, size, zero shift and displacement nonlinear); the best is kept only
   if its χ² drop, in units of the reduced χ², is significant. Then every accepted phase is tested
   for removal, and a final refinement adds microstrain and, where the fit is poor, March–Dollase
   preferred orientation.
4. Quantification by Hill–Howard with uncertainties from the full Jacobian; residual peaks not
   explained by any phase lower the confidence and mark the result "unexplained".
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from labos.models.xrd.crystal import CrystalPhase, phase_for
from labos.models.xrd.peaks import (
    ObservedPeaks,
    count_scale,
    find_peaks,
    initial_state,
    match_alignments,
    size_for_width,
)
from labos.models.xrd.physics import InstrumentProfile, PhaseCalc, PhaseState, phase_pattern
from labos.models.xrd.refine import FitPhase, FitResult, WholePatternFit, background_basis

from labos.domain import Outcome, PhaseResult, XRDPattern, parse_formula
from labos.errors import LabosError

SMALL_SIZE_NM = 6.0  # crystallites this small make peaks broad enough to mimic background


def _cluster(phase: CrystalPhase) -> tuple[str, int]:
    """Entries of one phase (same formula and space group, e.g. two CIFs of ZnO) share a cluster:
    a model holds at most one of them."""
    return (phase.formula, phase.spacegroup_number)


class XRDAnalysisError(LabosError, ValueError):
    """A pattern or candidate list that cannot be analysed at all."""


@dataclass
class AnalysisOptions:
    max_phases: int = 5
    add_significance: float = 100.0  # Δχ² / χ²_red needed to add a phase
    keep_significance: float = 40.0  # ... needed to keep it in the final model
    min_weight_fraction: float = 0.004
    points_per_fwhm: float = 3.0  # patterns with finer steps are binned (counts summed) to about this
    max_bin_step: float = 0.04  # deg
    two_theta_min: float = 8.0
    two_theta_max: float = 140.0
    bg_order: int = 10
    lattice_bound: float = 0.015
    sizes_nm: tuple[float, ...] = (400.0, 60.0, 15.0)
    top_k: int = 2  # trial fits per batch
    max_trials: int = 6  # per added phase
    screen_fraction: float = (
        0.3  # candidates whose screened χ² drop is below this × add_significance are skipped
    )
    hull_prior: float = 20.0  # χ²ᵣ units per 25 meV/atom above the hull
    search_nfev: int = 8
    final_nfev: int = 25
    # Model error of real-data quantification (microabsorption, texture, structure models), added in
    # quadrature to the statistical σ as systematic_wt·2·√(W(1−W)) (3.5 wt% at W = 0.5): with it about
    # 70 % of the errors on the real weighed mixtures of ../shared/data/xrd fall within 1σ, 87 % within 2σ.
    systematic_wt: float = 0.035
    try_texture: bool = True
    texture_gof: float = 1.6  # try preferred orientation only when GoF exceeds this
    instrument: InstrumentProfile | None = None


@dataclass
class PhaseDetail:
    name: str
    formula: str
    spacegroup: str
    weight_fraction: float
    uncertainty: float  # statistical ⊕ systematic (see AnalysisOptions.systematic_wt)
    statistical_sigma: float
    scale: float
    significance: float
    lattice: tuple[float, ...]
    size_nm: float
    microstrain: float
    po_ratio: float
    po_axis: tuple[int, int, int]
    ticks: list[float] = field(default_factory=list)


@dataclass
class AnalysisResult:
    """Phases and weight fractions of one pattern, with fit statistics and a confidence."""

    phases: list[PhaseResult]
    details: list[PhaseDetail]
    rwp: float | None
    rexp: float | None
    gof: float | None
    confidence: float
    explained: bool
    unexplained_fraction: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    zero_shift: float = 0.0
    displacement_mm: float = 0.0
    n_candidates: int = 0
    source: str | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # curves for plots (on the analysed, possibly binned, grid)
    x: np.ndarray | None = field(default=None, repr=False)
    observed: np.ndarray | None = field(default=None, repr=False)
    calculated: np.ndarray | None = field(default=None, repr=False)
    background: np.ndarray | None = field(default=None, repr=False)
    phase_curves: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def target_fraction(self, formula: str) -> float:
        """Weight fraction of all phases with this formula (any polymorph)."""
        want = parse_formula(formula)
        return float(sum(p.weight_fraction for p in self.phases if parse_formula(p.formula) == want))

    def target_uncertainty(self, formula: str) -> float:
        want = parse_formula(formula)
        return float(
            math.sqrt(sum(p.uncertainty**2 for p in self.phases if parse_formula(p.formula) == want))
        )

    def decision_confidence(self, formula: str, threshold: float = 0.5) -> float:
        """Probability that the call 'target above/below threshold' is right, times the fit confidence."""
        w = self.target_fraction(formula)
        sigma = max(self.target_uncertainty(formula), 0.01)
        z = abs(w - threshold) / sigma
        p = 0.5 * (1 + math.erf(z / math.sqrt(2)))
        return float(np.clip(p * self.confidence, 0.0, 1.0))

    def to_outcome(self, experiment_id: str, target_formula: str | None, threshold: float = 0.5) -> Outcome:
        frac = self.target_fraction(target_formula) if target_formula else 0.0
        conf = self.decision_confidence(target_formula, threshold) if target_formula else self.confidence
        return Outcome(
            experiment_id=experiment_id,
            phases=list(self.phases),
            target_formula=target_formula,
            target_fraction=min(max(frac, 0.0), 1.0),
            success=bool(target_formula) and frac > threshold,
            confidence=conf,
            rwp=self.rwp,
            source="xrd",
        )

    def to_dict(self, *, target: str | None = None, threshold: float = 0.5) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.source,
            "phases": [
                {
                    "name": d.name,
                    "formula": d.formula,
                    "spacegroup": d.spacegroup,
                    "weight_fraction": round(d.weight_fraction, 5),
                    "uncertainty": round(d.uncertainty, 5),
                }
                for d in self.details
            ],
            "rwp": None if self.rwp is None else round(self.rwp, 5),
            "gof": None if self.gof is None else round(self.gof, 3),
            "confidence": round(self.confidence, 3),
            "explained": self.explained,
            "unexplained_fraction": round(self.unexplained_fraction, 4),
            "target_fraction": None,
            "success": None,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }
        if target:
            frac = self.target_fraction(target)
            out["target"] = parse_formula(target)
            out["target_fraction"] = round(frac, 5)
            out["success"] = frac > threshold
            out["decision_confidence"] = round(self.decision_confidence(target, threshold), 3)
        return out

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        from labos.models.xrd.plot import plot_result

        return plot_result(self, path, title=title)


# ------------------------------------------------------------------------------------------ API
def analyze(
    pattern: XRDPattern,
    candidates: Any,
    *,
    elements: Iterable[str] | str | None = None,
    options: AnalysisOptions | None = None,
) -> AnalysisResult:
    """Identify and quantify the phases of ``pattern`` among ``candidates``.

    ``candidates``: a PhaseLibrary, CrystalPhases, pymatgen Structures, or a name → Structure map.
    ``elements`` restricts them to phases made only of those elements.
    """
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    phases = _as_phases(candidates, elements)
    if not isinstance(pattern, XRDPattern):
        raise XRDAnalysisError(f"expected an XRDPattern, got {type(pattern).__name__}")
    with threadpool_limits(limits=1, user_api="blas"):
        result = _Analysis(pattern, phases, options or AnalysisOptions()).run()
    result.seconds = time.perf_counter() - t0
    result.source = pattern.metadata.get("file")
    return result


def _as_phases(candidates: Any, elements) -> list[CrystalPhase]:
    from labos.models.xrd.library import PhaseLibrary, _element_set

    if candidates is None:
        raise XRDAnalysisError("no candidate phases given")
    if isinstance(candidates, PhaseLibrary):
        phases = list(candidates)
    elif isinstance(candidates, Mapping):
        phases = [phase_for(s, name) for name, s in candidates.items()]
    else:
        phases = []
        for c in candidates:
            phases.append(c if isinstance(c, CrystalPhase) else phase_for(c))
    allowed = _element_set(elements)
    if allowed is not None:
        phases = [p for p in phases if p.elements <= allowed]
    if not phases:
        where = f" made only of {','.join(sorted(allowed))}" if allowed is not None else ""
        raise XRDAnalysisError(
            f"no candidate phases{where}: add reference structures (CIFs) for this chemistry"
        )
    return phases


def _bin(x: np.ndarray, y: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    dx = float(np.median(np.diff(x)))
    k = int(round(step / dx)) if dx > 0 else 1
    if k <= 1:
        return x, y
    n = x.size // k * k
    return x[:n].reshape(-1, k).mean(1), y[:n].reshape(-1, k).sum(1)


class _Analysis:
    def __init__(self, pattern: XRDPattern, phases: list[CrystalPhase], opts: AnalysisOptions):
        self.opts = opts
        self.phases = phases
        x, y = pattern.x, pattern.y
        keep = (x >= opts.two_theta_min) & (x <= opts.two_theta_max)
        if keep.sum() < 50:
            raise XRDAnalysisError(
                f"pattern covers {x[0]:.1f}–{x[-1]:.1f}° 2θ: fewer than 50 points within "
                f"{opts.two_theta_min}–{opts.two_theta_max}°"
            )
        x, y = x[keep], y[keep]
        if np.mean(y < 0) > 0.05:
            raise XRDAnalysisError(
                "pattern has many negative counts: give raw counts, not background-subtracted data"
            )
        y = np.maximum(y, 0.0)
        self.notes: list[str] = []
        k = count_scale(x, y)
        if not 0.67 <= k <= 1.5:  # not raw counts (normalised, cps, smoothed): give Poisson-like weights
            y = y * k
            self.notes.append(f"intensities scaled by {k:.3g} so that their scatter is Poisson-like")
        self.y_scale = k if not 0.67 <= k <= 1.5 else 1.0
        raw_peaks = find_peaks(x, y)
        step = opts.max_bin_step
        if raw_peaks.position.size:
            strongest = np.argsort(raw_peaks.significance)[::-1][:12]  # noise wiggles are narrow: skip them
            sharp = float(np.percentile(raw_peaks.fwhm[strongest], 25))
            step = min(max(sharp / opts.points_per_fwhm, 0.0), opts.max_bin_step)
        self.x, self.y = _bin(x, y, step)
        base = opts.instrument or InstrumentProfile()
        self.inst = replace(
            base,
            wavelengths=tuple(pattern.wavelengths),
            weights=tuple(pattern.wavelength_weights),
            radius_mm=float(pattern.metadata.get("goniometer_radius_mm", base.radius_mm)),
        )
        self.bg_basis = background_basis(self.x, opts.bg_order)
        self.timings: dict[str, float] = {}
        self._last_sig = 0.0
        self._t = time.perf_counter()

    # ------------------------------------------------------------------ helpers
    def _fit(
        self,
        fps: list[FitPhase],
        inst: InstrumentProfile,
        nfev: int,
        sigma: bool = False,
        shifts: bool = True,
        profile: bool = False,
        ftol: float = 1e-3,
    ) -> FitResult:
        fit = WholePatternFit(
            self.x,
            self.y,
            inst,
            fps,
            bg_basis=self.bg_basis,
            refine_zero=shifts,
            refine_displacement=shifts,
            refine_asymmetry=profile,
            refine_width=profile,
        )
        return fit.run(max_nfev=nfev, with_sigma=sigma, ftol=ftol)

    def _with_sigma(self, fit: FitResult) -> FitResult:
        """Uncertainties at the refined parameters (no further refinement)."""
        fitter = WholePatternFit(
            self.x,
            self.y,
            fit.inst,
            fit.phases,
            bg_basis=self.bg_basis,
            refine_asymmetry=True,
            refine_width=True,
        )
        return fitter.result(fitter.x0, with_sigma=True)

    def _linear(self, fps: list[FitPhase], inst: InstrumentProfile) -> FitResult:
        """Scales and background only, the nonlinear parameters held."""
        fit = WholePatternFit(
            self.x,
            self.y,
            inst,
            [
                replace(fp, refine_lattice=False, refine_size=False, refine_strain=False, refine_po=False)
                for fp in fps
            ],
            bg_basis=self.bg_basis,
            refine_zero=False,
            refine_displacement=False,
        )
        return fit.run(with_sigma=False)

    def _empty_fit(self) -> FitResult:
        return WholePatternFit(
            self.x,
            self.y,
            self.inst,
            [],
            bg_basis=self.bg_basis,
            refine_zero=False,
            refine_displacement=False,
        ).run()

    @staticmethod
    def _red(fit: FitResult, n: int) -> float:
        return max(fit.chi2 / max(n - fit.n_params, 1), 1.0)

    # ------------------------------------------------------------------ main
    def run(self) -> AnalysisResult:
        opts = self.opts
        x, y = self.x, self.y
        obs = find_peaks(x, y)
        if obs.position.size == 0:
            return self._no_peaks()
        rng = (float(x[0]), float(x[-1]))
        calcs = {id(p): PhaseCalc.for_range(p, rng[1], self.inst.wavelengths) for p in self.phases}
        matches = {
            id(p): match_alignments(calcs[id(p)], self.inst, obs, rng, strain_bound=opts.lattice_bound)
            for p in self.phases
        }
        # candidate columns (proposal profiles) at each proposed alignment, with a crystallite size
        # matching the widths of the peaks its sticks landed on
        cand_cols: dict[int, list[tuple[np.ndarray, PhaseState, float]]] = {}
        for p in self.phases:
            cols = []
            for m in matches[id(p)]:
                if m.score < 0.15:
                    continue
                inst = replace(self.inst, zero_shift=m.zero)
                sizes = opts.sizes_nm
                if m.fwhm is not None and m.at is not None:
                    sizes = (size_for_width(self.inst, m.at, m.fwhm),)
                for size in sizes:
                    st = initial_state(calcs[id(p)], m, size)
                    col = phase_pattern(x, calcs[id(p)], st, inst)
                    if col.max() > 0:
                        cols.append((col, st, m.zero))
            if cols:
                cand_cols[id(p)] = cols
        if not cand_cols:
            return self._unexplained(obs, "no candidate phase matches the observed peaks")

        self._lap("proposal")
        self.calcs, self.cand_cols = calcs, cand_cols
        self.by_id = {id(p): p for p in self.phases}
        signif: dict[int, float] = {}
        current, fit = self._search([], self._empty_fit(), signif)
        if not current:
            return self._unexplained(obs, "no candidate phase improves the fit significantly")
        self._lap("search")
        current, fit = self._prune(current, fit, signif)  # phases made redundant by later ones
        self._lap("prune")
        fit = self._final(current, fit)
        self._lap("final")
        if opts.try_texture and fit.gof > opts.texture_gof:
            textured = self._texture(fit)
            self._lap("texture")
            if textured is not fit:
                # with texture modelled, a minor phase hidden in the misfit may now stand out
                more, fit2 = self._search(textured.phases, textured, signif)
                if len(more) > len(textured.phases):
                    more, fit2 = self._prune(more, fit2, signif)
                    textured = self._final(more, fit2)
                self._lap("second search")
            fit = textured
        fit = self._with_sigma(fit)
        self._lap("uncertainty")
        result = self._result(fit, obs, signif)
        result.timings = self.timings
        return result

    def _final(self, current: list[FitPhase], fit: FitResult) -> FitResult:
        """Everything free, microstrain on, more iterations."""
        final_fps = [
            replace(
                fp,
                refine_lattice=True,
                refine_size=True,
                refine_strain=True,
                refine_po=fp.state.po_ratio != 1.0,
            )
            for fp in current
        ]
        return self._fit(final_fps, fit.inst, self.opts.final_nfev, profile=True, ftol=1e-4)

    def _search(
        self, current: list[FitPhase], fit: FitResult, signif: dict[int, float]
    ) -> tuple[list[FitPhase], FitResult]:
        """Greedy forward selection from ``current``: add the candidate that clearly improves the fit
        most, until none does (see the module docstring)."""
        opts, x = self.opts, self.x
        calcs, cand_cols, by_id = self.calcs, self.cand_cols, self.by_id
        for _ in range(opts.max_phases - len(current)):
            taken = {_cluster(fp.phase) for fp in current}
            red0 = self._red(fit, x.size)
            ranked = [
                t
                for t in self._screen(fit, current, cand_cols)
                if _cluster(by_id[t[1]]) not in taken
                and t[0] / red0 >= opts.screen_fraction * opts.add_significance
            ]
            added = None
            rejected: list[str] = []
            # Trial fits move only the new phase (the first one also the zero shift, displacement,
            # asymmetry and instrument width): cheap and enough to rank; the winner is then refined
            # with everything free. When the best of a batch fails, the next batch is tried.
            frozen = [
                replace(fp, refine_lattice=False, refine_size=False, refine_strain=False, refine_po=False)
                for fp in current
            ]
            for start in range(0, min(len(ranked), opts.max_trials), opts.top_k):
                trials = []
                for _, pid, st, zero in ranked[start : start + opts.top_k]:
                    new = FitPhase(by_id[pid], calcs[pid], st, lattice_bound=opts.lattice_bound)
                    if current:
                        trial = self._fit(frozen + [new], fit.inst, opts.search_nfev, shifts=False)
                    else:
                        trial = self._fit(
                            [new], replace(self.inst, zero_shift=zero), opts.search_nfev, profile=True
                        )
                    trials.append((trial, pid))
                best, pid = min(trials, key=lambda t: t[0].chi2 + self._prior_penalty(by_id[t[1]], t[0]))
                if current and (fit.chi2 - best.chi2) / self._red(best, x.size) > 0.3 * opts.add_significance:
                    thawed = [
                        replace(fp, refine_lattice=True, refine_size=True, refine_po=fp.state.po_ratio != 1.0)
                        for fp in best.phases
                    ]
                    best = self._fit(thawed, best.inst, opts.search_nfev)
                verdict = self._verdict(fit, best)
                if verdict is None:
                    added = (best, pid)
                    break
                rejected.append(f"{by_id[pid].name} not added: {verdict}")
            if added is None:
                self.notes.extend(r for r in rejected if "only under peaks" in r or "below" in r)
                break
            fit, pid = added
            current = fit.phases
            signif[pid] = self._last_sig
        return current, fit

    def _lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._t, 4)
        self._t = now

    def _verdict(self, old: FitResult, new: FitResult) -> str | None:
        """None when the newest phase of ``new`` is supported; else why not."""
        opts = self.opts
        red = self._red(new, self.x.size)
        sig = (old.chi2 - new.chi2) / red
        own = self._own_evidence(old, new) / red
        wf = new.weight_fractions[-1] if new.weight_fractions.size else 0.0
        tiny = new.phases[-1].state.size_nm < SMALL_SIZE_NM  # a very broad phase can mimic background
        need = opts.add_significance * (3.0 if tiny else 1.0)
        self._last_sig = sig
        if sig < need:
            return f"χ² drop {sig:.0f} χ²ᵣ, below {need:.0f}"
        if own < 0.5 * need:
            return "it lowers χ² only under peaks of other phases"
        if wf < opts.min_weight_fraction:
            return f"below {opts.min_weight_fraction:.1%}"
        return None

    def _prior_penalty(self, phase: CrystalPhase, fit: FitResult) -> float:
        """Stability prior: χ² cost of a phase known to lie above the convex hull (breaks near-ties
        between candidates in favour of the stable one)."""
        if phase.e_above_hull is None or phase.e_above_hull <= 0:
            return 0.0
        return self.opts.hull_prior * phase.e_above_hull / 0.025 * self._red(fit, self.x.size)

    def _own_evidence(self, old: FitResult, new: FitResult) -> float:
        """χ² drop over the points where the newest phase carries most of the diffracted intensity:
        a phase that only absorbs misfit under other phases' peaks has little of it."""
        sw = np.sqrt(1.0 / np.maximum(self.y, 1.0))
        r_old = (self.y - old.calc) * sw
        r_new = (self.y - new.calc) * sw
        curves = new.phase_curves()
        total = curves.sum(axis=1)
        share = np.divide(curves[:, -1], total, out=np.zeros_like(total), where=total > 0)
        gain = r_old * r_old - r_new * r_new
        return float(gain[share > 0.5].sum())

    def _screen(
        self, fit: FitResult, current: list[FitPhase], cand_cols
    ) -> list[tuple[int, PhaseState, float]]:
        """χ² drop of adding each candidate (best of its sizes), by projection on the residual."""
        sw = np.sqrt(1.0 / np.maximum(self.y, 1.0))
        cols = [fit.columns[:, i] for i in range(fit.columns.shape[1]) if fit.scales[i] > 0]
        a = np.column_stack(cols + [self.bg_basis]) * sw[:, None] if cols else self.bg_basis * sw[:, None]
        q, _ = np.linalg.qr(a)
        r = (self.y - fit.calc) * sw
        in_fit = {id(fp.phase) for fp in current}
        ranked = []
        for pid, options in cand_cols.items():
            if pid in in_fit:
                continue
            best = (0.0, None, 0.0)
            for col, st, zero in options:
                u = col * sw
                u_perp = u - q @ (q.T @ u)
                num = float(r @ u_perp)
                den = float(u_perp @ u_perp)
                if num <= 0 or den <= 0:
                    continue
                gain = num * num / den
                if gain > best[0]:
                    best = (gain, st, zero)
            if best[1] is not None:
                ranked.append((best[0], pid, best[1], best[2]))
        ranked.sort(key=lambda t: -t[0])
        return ranked

    def _prune(self, current: list[FitPhase], fit: FitResult, signif: dict[int, float]):
        """Drop phases the fit does not need. Each is tested by re-solving scales and background
        without it (nonlinear parameters held): an upper bound of its χ² contribution, so a phase
        that fails this test would fail a full refit too."""
        opts = self.opts
        n = self.x.size
        while len(current) > 1:
            red = self._red(fit, n)
            tests = []
            for i in range(len(current)):
                f2 = self._linear(current[:i] + current[i + 1 :], fit.inst)
                tests.append(((f2.chi2 - fit.chi2) / red, i))
            for sig, i in tests:
                signif[id(current[i].phase)] = sig
            sig, i = min(tests, key=lambda t: t[0])
            if sig >= opts.keep_significance and fit.weight_fractions[i] >= opts.min_weight_fraction:
                break
            self.notes.append(
                f"removed {current[i].phase.name}: the fit does not need it (Δχ²/χ²ᵣ = {sig:.0f})"
            )
            signif.pop(id(current[i].phase), None)
            current = current[:i] + current[i + 1 :]
            fit = self._fit(current, fit.inst, opts.search_nfev)
        return current, fit

    def _texture(self, fit: FitResult) -> FitResult:
        """Try March–Dollase along the principal axes for the major phases, moving only the ratio
        (everything else held); what clearly helps is then refined with everything free."""
        n = self.x.size
        held = [
            replace(fp, refine_lattice=False, refine_size=False, refine_strain=False) for fp in fit.phases
        ]
        changed = False
        for i, fp in enumerate(fit.phases):
            if fit.weight_fractions[i] < 0.08:
                continue
            axes = [(0, 0, 1), (1, 0, 0)] if fp.phase.system != "cubic" else [(1, 1, 1), (1, 0, 0)]
            if fp.phase.system in ("orthorhombic", "monoclinic", "triclinic"):
                axes.append((0, 1, 0))
            best = None
            for axis in axes:
                trial_fps = list(held)
                trial_fps[i] = replace(
                    held[i], refine_po=True, state=replace(fp.state, po_axis=axis, po_ratio=0.85)
                )
                trial = self._fit(trial_fps, fit.inst, 5, shifts=False)
                if best is None or trial.chi2 < best.chi2:
                    best = trial
            if best is not None and (fit.chi2 - best.chi2) / self._red(best, n) > self.opts.add_significance:
                st = best.phases[i].state
                self.notes.append(
                    f"preferred orientation of {fp.phase.name} along {st.po_axis}: r = {st.po_ratio:.2f}"
                )
                held[i] = replace(held[i], state=st)
                changed = True
        if not changed:
            return fit
        free = [
            replace(
                h,
                refine_lattice=True,
                refine_size=True,
                refine_strain=True,
                refine_po=h.state.po_ratio != 1.0,
            )
            for h in held
        ]
        return self._fit(free, fit.inst, self.opts.search_nfev, profile=True)

    # ------------------------------------------------------------------ results
    def _unexplained_fraction(self, fit: FitResult, obs: ObservedPeaks) -> float:
        """Share of the diffracted intensity in residual peaks where no phase of the model has a
        peak (intensity misfit under a modelled peak is texture or a structure model, not an
        unexplained phase)."""
        from scipy.signal import find_peaks as _find
        from scipy.signal import savgol_filter

        resid = self.y - fit.calc
        step = float(np.median(np.diff(self.x)))
        win = max(5, int(round(0.05 / step)) | 1)
        sm = savgol_filter(resid, win, 2) if resid.size > win + 2 else resid
        noise = np.sqrt(np.maximum(self.y, 1.0))
        idx, props = _find(sm, height=5 * noise, prominence=5 * noise, width=1)
        net_total = float(np.sum(np.maximum(fit.calc - fit.background, 0.0)))
        if idx.size == 0 or net_total <= 0:
            return 0.0
        net_calc = np.maximum(fit.calc - fit.background, 0.0)
        alone = net_calc[idx] < 0.5 * sm[idx]  # the model has (almost) nothing there
        idx = idx[alone]
        left = np.floor(props["left_ips"][alone]).astype(int)
        right = np.ceil(props["right_ips"][alone]).astype(int)
        unexplained = 0.0
        for lo, hi in zip(left, right, strict=True):
            w = hi - lo + 1
            seg = slice(max(lo - w, 0), min(hi + w + 1, resid.size))
            unexplained += float(np.sum(np.maximum(sm[seg], 0.0)))
        return min(unexplained / (net_total + unexplained), 1.0)

    def _result(self, fit: FitResult, obs: ObservedPeaks, signif: dict[int, float]) -> AnalysisResult:
        unexpl = self._unexplained_fraction(fit, obs)
        details: list[PhaseDetail] = []
        phases: list[PhaseResult] = []
        for i, fp in enumerate(fit.phases):
            wf = float(fit.weight_fractions[i])
            if wf <= 0:
                continue
            sig = float(signif.get(id(fp.phase), 0.0))
            stat = float(fit.weight_sigma[i])
            total_sigma = math.hypot(stat, self.opts.systematic_wt * 2 * math.sqrt(max(wf * (1 - wf), 0.0)))
            lat = fp.phase.lattice_model.lattice(np.asarray(fp.state.lattice)) if fp.state.lattice else ()
            ticks = _ticks(fp, fit.inst, (float(self.x[0]), float(self.x[-1])))
            details.append(
                PhaseDetail(
                    name=fp.phase.name,
                    formula=fp.phase.formula,
                    spacegroup=fp.phase.spacegroup,
                    weight_fraction=wf,
                    uncertainty=total_sigma,
                    statistical_sigma=stat,
                    scale=float(fit.scales[i]),
                    significance=sig,
                    lattice=tuple(round(v, 5) for v in lat),
                    size_nm=float(fp.state.size_nm),
                    microstrain=float(fp.state.microstrain),
                    po_ratio=float(fp.state.po_ratio),
                    po_axis=fp.state.po_axis,
                    ticks=ticks,
                )
            )
            phases.append(
                PhaseResult(
                    phase_id=fp.phase.name,
                    formula=fp.phase.formula,
                    spacegroup=fp.phase.spacegroup,
                    weight_fraction=min(wf, 1.0),
                    uncertainty=total_sigma,
                )
            )
        explained = unexpl < 0.10
        conf = float(np.clip(1.0 - 3.0 * max(unexpl - 0.02, 0.0), 0.05, 1.0))
        if details:
            weakest = min(d.significance for d in details)
            conf *= float(1.0 - math.exp(-max(weakest, 0.0) / self.opts.add_significance))
        if not explained:
            self.notes.append(
                f"{unexpl:.0%} of the diffracted intensity is not explained by the candidate phases"
            )
        curves = {fp.phase.name: fit.columns[:, i] * fit.scales[i] for i, fp in enumerate(fit.phases)}
        return AnalysisResult(
            phases=phases,
            details=details,
            rwp=fit.rwp,
            rexp=fit.rexp,
            gof=fit.gof,
            confidence=float(np.clip(conf, 0.0, 1.0)),
            explained=explained,
            unexplained_fraction=unexpl,
            seconds=0.0,
            notes=self.notes,
            zero_shift=float(fit.inst.zero_shift),
            displacement_mm=float(fit.inst.displacement_mm),
            n_candidates=len(self.phases),
            x=self.x,
            observed=self.y / self.y_scale,
            calculated=fit.calc / self.y_scale,
            background=fit.background / self.y_scale,
            phase_curves={k: v / self.y_scale for k, v in curves.items()},
        )

    def _no_peaks(self) -> AnalysisResult:
        return self._no_phases(
            "no diffraction peaks above the noise: amorphous, empty holder or failed measurement",
            confidence=0.1,
            unexplained_fraction=0.0,
        )

    def _unexplained(self, obs: ObservedPeaks, why: str) -> AnalysisResult:
        return self._no_phases(why, confidence=0.05, unexplained_fraction=1.0)

    def _no_phases(self, why: str, *, confidence: float, unexplained_fraction: float) -> AnalysisResult:
        """A result that reports no phase (background only), with the reason in its notes."""
        fit = self._empty_fit()
        self.notes.append(why)
        return AnalysisResult(
            phases=[],
            details=[],
            rwp=fit.rwp,
            rexp=fit.rexp,
            gof=fit.gof,
            confidence=confidence,
            explained=False,
            unexplained_fraction=unexplained_fraction,
            seconds=0.0,
            notes=self.notes,
            n_candidates=len(self.phases),
            x=self.x,
            observed=self.y / self.y_scale,
            calculated=fit.calc / self.y_scale,
            background=fit.background / self.y_scale,
        )


def _ticks(fp: FitPhase, inst: InstrumentProfile, rng: tuple[float, float]) -> list[float]:
    d = fp.calc.d_spacings(fp.state.lattice)
    s = inst.wavelengths[0] / (2 * d)
    ok = s < 1
    tt = np.degrees(2 * np.arcsin(s[ok])) + inst.zero_shift
    tt = tt[(tt >= rng[0]) & (tt <= rng[1])]
    return [round(float(v), 4) for v in tt]
