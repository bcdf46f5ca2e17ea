"""Whole-pattern refinement by variable projection.

Scale factors and background coefficients enter the model linearly; for any value of the
nonlinear parameters (zero shift, sample displacement, per-phase lattice offsets, crystallite
size, microstrain, March–Dollase ratio) they are solved exactly by weighted linear least squares
(scales kept non-negative). ``scipy.optimize.least_squares`` then moves only the nonlinear
parameters. The Jacobian is taken by finite differences that recompute only the phase a parameter
belongs to, which is what keeps a fit of a few phases well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
from labos.models.xrd.crystal import CrystalPhase
from labos.models.xrd.physics import (
    RAD,
    InstrumentProfile,
    PhaseCalc,
    PhaseState,
    chebyshev_basis,
    phase_pattern,
    phase_peaks,
    render_derivative,
    render_peaks,
    weights_from_scales,
)
from scipy.optimize import least_squares

ZERO_BOUND = 0.3  # deg
ASYM_BOUND = 0.5
DISPLACEMENT_BOUND = 0.6  # mm
ANGLE_BOUND = 1.0  # deg, free cell angles
MIN_SIZE_NM, MAX_SIZE_NM = 3.0, 3000.0
MAX_STRAIN = 0.01
PO_BOUNDS = (0.4, 1.6)


@dataclass
class FitPhase:
    """A phase in a fit: what is fixed and what may move."""

    phase: CrystalPhase
    calc: PhaseCalc
    state: PhaseState
    refine_lattice: bool = True
    refine_size: bool = True
    refine_strain: bool = False
    refine_po: bool = False
    lattice_bound: float = 0.015  # relative


@dataclass
class FitResult:
    phases: list[FitPhase]
    inst: InstrumentProfile
    scales: np.ndarray
    scale_sigma: np.ndarray
    weight_fractions: np.ndarray
    weight_sigma: np.ndarray
    background: np.ndarray
    columns: np.ndarray  # (N, P) unit-scale phase patterns
    calc: np.ndarray
    chi2: float
    rwp: float
    rexp: float
    n_params: int
    nfev: int = 0
    extras: dict = field(default_factory=dict)

    @property
    def gof(self) -> float:
        return self.rwp / self.rexp if self.rexp > 0 else float("inf")

    def phase_curves(self) -> np.ndarray:
        return self.columns * self.scales[None, :]


def background_basis(x: np.ndarray, order: int) -> np.ndarray:
    """Chebyshev terms plus a 1/sin²θ term for low-angle air scatter (columns scaled to unit max)."""
    cheb = chebyshev_basis(x, order)
    air = 1.0 / np.sin(np.radians(x / 2)) ** 2
    basis = np.column_stack([cheb, air / air.max()])
    return basis


class WholePatternFit:
    """Refine ``phases`` against (x, y). Build once per phase set; call :meth:`run`."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        inst: InstrumentProfile,
        phases: list[FitPhase],
        *,
        bg_basis: np.ndarray,
        refine_zero: bool = True,
        refine_displacement: bool = True,
        refine_asymmetry: bool = False,
        refine_width: bool = False,
        weights: np.ndarray | None = None,
    ):
        self.x, self.y = x, y
        self.inst = inst
        self.phases = phases
        self.bg = bg_basis
        self.w = weights if weights is not None else 1.0 / np.maximum(y, 1.0)
        self.sw = np.sqrt(self.w)
        self.yw = y * self.sw
        self.bgw = bg_basis * self.sw[:, None]
        self.sum_wy2 = float(np.sum(self.w * y * y))
        self._bgtbg = self.bgw.T @ self.bgw
        self._bgty = self.bgw.T @ self.yw
        # parameter layout
        self.slots: list[tuple[int, str, int]] = []  # (phase index or -1, kind, sub-index)
        lo, hi, x0 = [], [], []
        if refine_zero:
            self.slots.append((-1, "zero", 0))
            lo.append(-ZERO_BOUND), hi.append(ZERO_BOUND), x0.append(inst.zero_shift)
        if refine_displacement:
            self.slots.append((-1, "disp", 0))
            lo.append(-DISPLACEMENT_BOUND), hi.append(DISPLACEMENT_BOUND), x0.append(inst.displacement_mm)
        if refine_asymmetry:
            self.slots.append((-1, "asym", 0))
            lo.append(0.0), hi.append(ASYM_BOUND), x0.append(inst.asymmetry)
        if refine_width:  # instrument Gaussian W (deg²)
            self.slots.append((-1, "gw", 0))
            lo.append(1e-5), hi.append(0.05), x0.append(inst.W)
        for i, fp in enumerate(phases):
            lm = fp.phase.lattice_model
            lat = list(fp.state.lattice) or [0.0] * lm.n_free
            if fp.refine_lattice:
                names = _free_names(lm.system)
                for j, name in enumerate(names):
                    self.slots.append((i, "lat", j))
                    b = ANGLE_BOUND if name in ("angle", "alpha", "beta", "gamma") else fp.lattice_bound
                    lo.append(-b), hi.append(b), x0.append(float(np.clip(lat[j], -b * 0.999, b * 0.999)))
            if fp.refine_size:
                self.slots.append((i, "size", 0))
                lo.append(1.0 / MAX_SIZE_NM), hi.append(1.0 / MIN_SIZE_NM)
                x0.append(float(np.clip(1.0 / fp.state.size_nm, 1.0 / MAX_SIZE_NM, 1.0 / MIN_SIZE_NM)))
            if fp.refine_strain:
                self.slots.append((i, "strain", 0))
                (
                    lo.append(0.0),
                    hi.append(MAX_STRAIN),
                    x0.append(float(np.clip(fp.state.microstrain, 0, MAX_STRAIN))),
                )
            if fp.refine_po:
                self.slots.append((i, "po", 0))
                (
                    lo.append(PO_BOUNDS[0]),
                    hi.append(PO_BOUNDS[1]),
                    x0.append(float(np.clip(fp.state.po_ratio, *PO_BOUNDS))),
                )
        self.lo, self.hi = np.array(lo), np.array(hi)
        self.x0 = np.clip(np.array(x0), self.lo + 1e-12, self.hi - 1e-12) if x0 else np.zeros(0)
        self.nfev = 0
        self._col_cache: list[dict] = [{} for _ in phases]
        self._cache_p: np.ndarray | None = None
        self._cache_cols: np.ndarray | None = None

    # ------------------------------------------------------------------ model pieces
    def states(self, p: np.ndarray) -> tuple[InstrumentProfile, list[PhaseState]]:
        inst = self.inst
        zero, disp, asym, gw = inst.zero_shift, inst.displacement_mm, inst.asymmetry, inst.W
        lat = [list(fp.state.lattice) or [0.0] * fp.phase.lattice_model.n_free for fp in self.phases]
        upd: list[dict] = [{} for _ in self.phases]
        for v, (i, kind, j) in zip(p, self.slots, strict=True):
            if kind == "zero":
                zero = v
            elif kind == "disp":
                disp = v
            elif kind == "asym":
                asym = v
            elif kind == "gw":
                gw = v
            elif kind == "lat":
                lat[i][j] = v
            elif kind == "size":
                upd[i]["size_nm"] = 1.0 / v
            elif kind == "strain":
                upd[i]["microstrain"] = v
            elif kind == "po":
                upd[i]["po_ratio"] = v
        inst = replace(
            inst, zero_shift=float(zero), displacement_mm=float(disp), asymmetry=float(asym), W=float(gw)
        )
        states = [replace(fp.state, lattice=tuple(lat[i]), **upd[i]) for i, fp in enumerate(self.phases)]
        return inst, states

    def _phase_key(self, p: np.ndarray, i: int) -> tuple:
        return tuple(float(v) for v, slot in zip(p, self.slots, strict=True) if slot[0] in (-1, i))

    def _phase_column(self, p: np.ndarray, i: int, inst=None, states=None) -> np.ndarray:
        """One phase's unit-scale pattern, reused while its own and the global parameters hold."""
        key = self._phase_key(p, i)
        hit = self._col_cache[i].get(key)
        if hit is not None:
            return hit
        if inst is None:
            inst, states = self.states(p)
        col = phase_pattern(self.x, self.phases[i].calc, states[i], inst)
        cache = self._col_cache[i]
        if len(cache) > 8:
            cache.pop(next(iter(cache)))
        cache[key] = col
        return col

    def columns(self, p: np.ndarray, only: int | None = None, base: np.ndarray | None = None) -> np.ndarray:
        inst, states = self.states(p)
        if only is not None and base is not None:
            cols = base.copy()
            cols[:, only] = self._phase_column(p, only, inst, states)
            return cols
        cols = np.empty((self.x.size, len(self.phases)))
        for i in range(len(self.phases)):
            cols[:, i] = self._phase_column(p, i, inst, states)
        return cols

    def solve(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Non-negative scales and free background by weighted linear least squares.

        Normal equations on column-scaled blocks: the background block is constant and prepared
        once, so a solve costs O(N·P·(P+nb)) for P phases.
        """
        n_ph = cols.shape[1]
        nb = self.bg.shape[1]
        aw_ph = cols * self.sw[:, None]
        m = np.empty((n_ph + nb, n_ph + nb))
        m[:n_ph, :n_ph] = aw_ph.T @ aw_ph
        m[:n_ph, n_ph:] = aw_ph.T @ self.bgw
        m[n_ph:, :n_ph] = m[:n_ph, n_ph:].T
        m[n_ph:, n_ph:] = self._bgtbg
        rhs = np.concatenate([aw_ph.T @ self.yw, self._bgty])
        active = np.ones(n_ph + nb, dtype=bool)
        coef = np.zeros(n_ph + nb)
        for _ in range(n_ph + 1):
            idx = np.flatnonzero(active)
            sub = m[np.ix_(idx, idx)]
            d = np.sqrt(np.maximum(np.diag(sub), 1e-300))
            subn = sub / np.outer(d, d)
            try:
                sol = np.linalg.solve(subn + 1e-12 * np.eye(idx.size), rhs[idx] / d) / d
            except np.linalg.LinAlgError:
                sol = np.linalg.lstsq(subn, rhs[idx] / d, rcond=None)[0] / d
            coef[:] = 0
            coef[idx] = sol
            neg = [i for i in range(n_ph) if active[i] and coef[i] < 0]
            if not neg:
                break
            active[min(neg, key=lambda i: coef[i])] = False
            coef[:] = 0
        resid = self.yw - aw_ph @ coef[:n_ph] - self.bgw @ coef[n_ph:]
        return coef, resid

    # ------------------------------------------------------------------ least squares plumbing
    def _cols_at(self, p: np.ndarray) -> np.ndarray:
        if self._cache_p is not None and np.array_equal(p, self._cache_p):
            return self._cache_cols
        cols = self.columns(p)
        self._cache_p, self._cache_cols = p.copy(), cols
        return cols

    def residual(self, p: np.ndarray) -> np.ndarray:
        self.nfev += 1
        return self.solve(self._cols_at(p))[1]

    def derivatives(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Columns, linear coefficients and V = Σ_k S_k ∂col_k/∂θ_j (unweighted), by the analytic
        profile derivatives and per-peak finite differences (no re-rendering per parameter)."""
        inst, states = self.states(p)
        rng = (float(self.x[0]), float(self.x[-1]))
        n_ph = len(self.phases)
        cols = np.empty((self.x.size, n_ph))
        peaks, renders = [], []
        moving = {i for i, _, _ in self.slots}
        for i, fp in enumerate(self.phases):
            if i not in moving and -1 not in moving:  # nothing of this phase moves: its column only
                cols[:, i] = self._phase_column(p, i, inst, states)
                peaks.append(None)
                renders.append(None)
                continue
            pk = phase_peaks(fp.calc, states[i], inst, rng)
            col, rend = render_peaks(self.x, pk, derivatives=True)
            cols[:, i] = col
            peaks.append(pk)
            renders.append(rend)
            self._col_cache[i][self._phase_key(p, i)] = col
        coef, _ = self.solve(cols)
        scales = coef[:n_ph]
        v = np.zeros((self.x.size, p.size))
        for j, (i, kind, _) in enumerate(self.slots):
            if kind in ("zero", "disp"):  # pure shifts: analytic
                for k in range(n_ph):
                    if scales[k] <= 0 or renders[k] is None:
                        continue
                    if kind == "zero":
                        dc = 1.0
                    else:  # sample displacement: Δ2θ = −2 s cosθ / R
                        dc = -2.0 * peaks[k].cos_theta / inst.radius_mm * RAD
                    v[:, j] += scales[k] * render_derivative(renders[k], d_center=dc)
                continue
            h = _step(kind, p[j])
            if p[j] + h > self.hi[j]:
                h = -h
            q = p.copy()
            q[j] += h
            inst_q, states_q = self.states(q)
            for k in range(n_ph) if i < 0 else (i,):
                if scales[k] <= 0 or renders[k] is None:
                    continue
                pk, fp = peaks[k], self.phases[k]
                pk2 = phase_peaks(fp.calc, states_q[k], inst_q, rng, mask=pk.mask)
                v[:, j] += scales[k] * render_derivative(
                    renders[k],
                    d_center=(pk2.center - pk.center) / h,
                    d_fwhm=(pk2.fwhm - pk.fwhm) / h,
                    d_eta=(pk2.eta - pk.eta) / h,
                    d_area_rel=(pk2.area - pk.area) / (h * np.maximum(pk.area, 1e-300)),
                    d_alpha=(np.asarray(pk2.asym) - np.asarray(pk.asym)) / h if kind == "asym" else 0.0,
                )
        return cols, coef, v

    def jacobian(self, p: np.ndarray) -> np.ndarray:
        """Variable-projection Jacobian (Kaufman): J = −P⊥ √w Σ_k S_k ∂col_k/∂θ."""
        cols, coef, v = self.derivatives(p)
        n_ph = cols.shape[1]
        live = coef[:n_ph] > 0
        a = np.column_stack([cols[:, live] * self.sw[:, None], self.bgw])
        q, _ = np.linalg.qr(a)
        vw = v * self.sw[:, None]
        return -(vw - q @ (q.T @ vw))

    def run(self, max_nfev: int = 40, ftol: float = 1e-4, with_sigma: bool = True) -> FitResult:
        p = self.x0
        if p.size:
            res = least_squares(
                self.residual,
                p,
                jac=self.jacobian,
                bounds=(self.lo, self.hi),
                method="trf",
                x_scale="jac",
                max_nfev=max_nfev,
                ftol=ftol,
                xtol=1e-6,
                gtol=1e-8,
            )
            p = res.x
        return self.result(p, with_sigma=with_sigma)

    # ------------------------------------------------------------------ results
    def result(self, p: np.ndarray, *, with_sigma: bool = True) -> FitResult:
        inst, states = self.states(p)
        cols = self._cols_at(p)
        coef, resid = self.solve(cols)
        n_ph = len(self.phases)
        scales = coef[:n_ph]
        bg = self.bg @ coef[n_ph:]
        calc = cols @ scales + bg
        chi2 = float(resid @ resid)
        n_params = p.size + coef.size
        dof = max(self.x.size - n_params, 1)
        rwp = math.sqrt(chi2 / self.sum_wy2) if self.sum_wy2 > 0 else float("inf")
        rexp = math.sqrt(dof / self.sum_wy2) if self.sum_wy2 > 0 else float("inf")
        zmv = np.array([fp.phase.zmv for fp in self.phases])
        wf = weights_from_scales(scales, zmv) if n_ph else np.zeros(0)
        s_sig = np.zeros(n_ph)
        w_sig = np.zeros(n_ph)
        if with_sigma and n_ph:
            s_sig, w_sig = self._uncertainties(p, cols, coef, chi2 / dof, zmv)
        phases = [replace(fp, state=st) for fp, st in zip(self.phases, states, strict=True)]
        return FitResult(
            phases=phases,
            inst=inst,
            scales=scales,
            scale_sigma=s_sig,
            weight_fractions=wf,
            weight_sigma=w_sig,
            background=bg,
            columns=cols,
            calc=calc,
            chi2=chi2,
            rwp=rwp,
            rexp=rexp,
            n_params=n_params,
            nfev=self.nfev,
        )

    def _uncertainties(self, p, cols, coef, red_chi2, zmv):
        """σ of the scales from the full Jacobian (nonlinear and linear parameters), scaled by the
        reduced χ², and propagated to Hill–Howard weight fractions with their covariances."""
        n_ph = cols.shape[1]
        scales = coef[:n_ph]
        lin = -np.column_stack([cols * self.sw[:, None], self.bgw])
        blocks = [lin]
        if p.size:
            _, _, v = self.derivatives(p)
            blocks.append(-v * self.sw[:, None])
        jac = np.column_stack(blocks)
        active = np.ones(jac.shape[1], dtype=bool)
        active[:n_ph] = scales > 0
        active &= np.any(jac != 0, axis=0)
        jt = jac[:, active]
        norms = np.sqrt(np.einsum("ij,ij->j", jt, jt))
        norms[norms == 0] = 1.0
        jn = jt / norms
        try:
            cov_n = np.linalg.pinv(jn.T @ jn, rcond=1e-12)
        except np.linalg.LinAlgError:
            return np.zeros(n_ph), np.zeros(n_ph)
        cov = cov_n / np.outer(norms, norms) * max(red_chi2, 1.0)
        full = np.zeros((jac.shape[1], jac.shape[1]))
        idx = np.flatnonzero(active)
        full[np.ix_(idx, idx)] = cov
        cs = full[:n_ph, :n_ph]
        s_sig = np.sqrt(np.maximum(np.diag(cs), 0.0))
        m = scales * zmv
        total = m.sum()
        if total <= 0:
            return s_sig, np.zeros(n_ph)
        # dW_i/dS_j = zmv_j (δ_ij Σ − m_i) / Σ²
        g = (np.eye(n_ph) * total - m[:, None]) * zmv[None, :] / total**2
        w_cov = g @ cs @ g.T
        return s_sig, np.sqrt(np.maximum(np.diag(w_cov), 0.0))


def _free_names(system: str) -> tuple[str, ...]:
    from labos.models.xrd.crystal import _FREE

    return _FREE[system]


def _step(kind: str, value: float) -> float:
    if kind == "lat":
        return 2e-5
    if kind == "zero":
        return 2e-4
    if kind == "disp":
        return 2e-3
    if kind == "size":
        return max(abs(value) * 1e-2, 1e-5)
    if kind == "strain":
        return 2e-5
    if kind == "asym":
        return 1e-4
    if kind == "gw":
        return max(abs(value) * 1e-2, 1e-6)
    return 1e-3
