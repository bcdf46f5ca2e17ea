"""The powder-pattern model, used forward by the simulator and inside the whole-pattern fit.

y(2θ) = b(2θ) + Σ_p S_p Σ_hkl m|F|² · Lp · P_MD · exp(−B/(2d²)) · pV(2θ − 2θ_hkl)   over Kα1, Kα2

- positions: Bragg's law per wavelength, plus zero shift Z and sample displacement −2s·cosθ/R;
- widths (Thompson–Cox–Hastings pseudo-Voigt): Gaussian H_G² = U tan²θ + V tanθ + W + (4ε tanθ)²,
  Lorentzian H_L = X/cosθ + Y tanθ + Kλ/(L cosθ) (crystallite size L, Scherrer K = 0.9);
- Lorentz-polarisation with an optional monochromator angle; March–Dollase preferred orientation;
- background: Chebyshev polynomial plus an optional amorphous hump (a broad Gaussian);
- Hill–Howard: W_p = S_p (ZMV)_p / Σ_j S_j (ZMV)_j, so a simulator sets S_p ∝ W_p/(ZMV)_p.
Formulas: ../shared/reference/XRD.md (Thompson, Cox & Hastings, J. Appl. Cryst. 20, 79 (1987);
Dollase, J. Appl. Cryst. 19, 267 (1986); Hill & Howard, J. Appl. Cryst. 20, 467 (1987)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from labos.models.xrd.crystal import CrystalPhase, ReflectionSet

RAD = 180.0 / math.pi
SCHERRER_K = 0.9
TAIL_FWHM = 12.0  # profile windows reach ±(4 + TAIL_FWHM·η) FWHM ...
MAX_WINDOW = 2.5  # ... but at most ±2.5° 2θ unless 4 FWHM are wider
MAX_ASYM = 0.6
MIN_RELATIVE_INTENSITY = 3e-4  # reflections weaker than this (× the strongest) are left out


@dataclass(frozen=True)
class InstrumentProfile:
    """Instrument terms of the model: THE defaults of labos for a benchtop Aeris (Cu, Ni filter,
    PIXcel1D, 145 mm radius, no monochromator); the simulator's Instrument starts from them. The
    Gaussian width W and the asymmetry come from whole-pattern fits of the weighed mixtures in
    ../shared/data/xrd/precursor_mixtures (TiO2–ZnO, ZnO–In2O3: W ≈ 0.03 deg², A ≈ 0.11, crystallite
    sizes 50–80 nm); the analysis refines W and A for every pattern."""

    wavelengths: tuple[float, ...] = (1.540598, 1.544426)
    weights: tuple[float, ...] = (1.0, 0.5)
    U: float = 0.0045  # deg²
    V: float = -0.0020  # deg²
    W: float = 0.030  # deg²
    X: float = 0.010  # deg, Lorentzian 1/cosθ term
    Y: float = 0.010  # deg, Lorentzian tanθ term
    mono_two_theta: float | None = None  # deg; None = no monochromator (cos²2θm = 1)
    radius_mm: float = 145.0
    zero_shift: float = 0.0  # deg 2θ
    displacement_mm: float = 0.0  # sample height error s (positive = above the focusing circle)
    asymmetry: float = 0.11  # axial-divergence asymmetry A: split widths H(1 ± α), α = A / tan 2θ

    def with_(self, **kw) -> InstrumentProfile:
        return replace(self, **kw)


@dataclass(frozen=True)
class PhaseState:
    """Per-phase microstructure and lattice state in a pattern."""

    lattice: tuple[float, ...] = ()  # free lattice offsets of LatticeModel (relative strains / deg)
    size_nm: float = 200.0
    microstrain: float = 0.0  # ε (dimensionless)
    po_ratio: float = 1.0  # March–Dollase r (1 = random)
    po_axis: tuple[int, int, int] = (0, 0, 1)
    b_iso: float = 0.5  # overall Debye–Waller B (Å²)


@dataclass
class PhaseCalc:
    """Cached evaluation context for one phase on one 2θ grid: the reflections within range."""

    phase: CrystalPhase
    refl: ReflectionSet
    _po_cache: dict = field(default_factory=dict)

    @classmethod
    def for_range(
        cls,
        phase: CrystalPhase,
        two_theta_max: float,
        wavelengths: Sequence[float],
        min_relative: float = MIN_RELATIVE_INTENSITY,
    ) -> PhaseCalc:
        """The phase's reflections up to ``two_theta_max`` (with a margin), without those weaker than
        ``min_relative`` of the strongest: hundreds of faint reflections of a big cell cost time and
        hold well under 1 % of the diffracted intensity."""
        lam = max(wavelengths)
        d_min = lam / (2 * math.sin(math.radians(min(two_theta_max + 3.0, 170.0) / 2)))
        refl = phase.reflections(d_min * 0.96)
        keep = refl.d >= d_min * 0.96
        s = np.clip(min(wavelengths) / (2 * refl.d), 0.0, 0.9999)
        strength = (
            refl.f2 * lorentz_polarisation(2 * np.degrees(np.arcsin(s)), None) * np.exp(-0.25 / refl.d**2)
        )
        if keep.any():
            keep &= strength >= min_relative * strength[keep].max()
        if not keep.all():
            idx = np.flatnonzero(keep)
            sel = np.isin(refl.member_group, idx)
            remap = np.full(len(refl.d), -1)
            remap[idx] = np.arange(idx.size)
            refl = ReflectionSet(
                hkl=refl.hkl[idx],
                coeff=refl.coeff[idx],
                d=refl.d[idx],
                f2=refl.f2[idx],
                multiplicity=refl.multiplicity[idx],
                member_hkl=refl.member_hkl[sel],
                member_group=remap[refl.member_group[sel]],
                member_f2=refl.member_f2[sel],
            )
        return cls(phase, refl)

    def d_spacings(self, lattice_offsets: Sequence[float]) -> np.ndarray:
        if len(lattice_offsets) == 0:
            return self.refl.d
        gm = self.phase.lattice_model.recip_metric(np.asarray(lattice_offsets, dtype=float))
        return 1.0 / np.sqrt(self.refl.coeff @ gm)

    def po_factor(self, ratio: float, axis: tuple[int, int, int]) -> np.ndarray | float:
        """Group-averaged March–Dollase factor (intensity-weighted over symmetry-equivalent members)."""
        if abs(ratio - 1.0) < 1e-9:
            return 1.0
        key = tuple(axis)
        cos2 = self._po_cache.get(key)
        if cos2 is None:
            recip = self.phase.structure.lattice.reciprocal_lattice_crystallographic.matrix
            g = self.refl.member_hkl @ recip
            n = np.asarray(axis, dtype=float) @ recip
            cos = (g @ n) / (np.linalg.norm(g, axis=1) * np.linalg.norm(n))
            cos2 = np.clip(cos * cos, 0.0, 1.0)
            self._po_cache[key] = cos2
        p = (ratio * ratio * cos2 + (1.0 - cos2) / ratio) ** -1.5
        num = np.bincount(self.refl.member_group, weights=self.refl.member_f2 * p, minlength=len(self.refl.d))
        den = np.bincount(self.refl.member_group, weights=self.refl.member_f2, minlength=len(self.refl.d))
        return num / np.maximum(den, 1e-300)


def lorentz_polarisation(two_theta_deg: np.ndarray, mono_two_theta: float | None) -> np.ndarray:
    tt = np.radians(two_theta_deg)
    th = tt / 2
    c2m = math.cos(math.radians(mono_two_theta)) ** 2 if mono_two_theta else 1.0
    return (1 + np.cos(tt) ** 2 * c2m) / (np.sin(th) ** 2 * np.cos(th) * (1 + c2m))


def tch(hg: np.ndarray, hl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thompson–Cox–Hastings total FWHM and Lorentzian fraction η."""
    h5 = (
        hg**5
        + 2.69269 * hg**4 * hl
        + 2.42843 * hg**3 * hl**2
        + 4.47163 * hg**2 * hl**3
        + 0.07842 * hg * hl**4
        + hl**5
    )
    h = h5**0.2
    q = hl / h
    eta = np.clip(1.36603 * q - 0.47719 * q * q + 0.11116 * q**3, 0.0, 1.0)
    return h, eta


@dataclass
class PeakList:
    """Peaks of one phase on a pattern: centres (deg), FWHM, η and integrated intensities."""

    center: np.ndarray
    fwhm: np.ndarray
    eta: np.ndarray
    area: np.ndarray
    group: np.ndarray  # reflection group of each peak (one per wavelength)
    cos_theta: np.ndarray | None = None
    mask: np.ndarray | None = None  # (n_wavelengths, G) which reflections became peaks
    asym: np.ndarray | float = 0.0  # α: low-angle half-width H(1+α), high-angle H(1−α)
    asym_rate: np.ndarray | float = 0.0  # ∂α/∂A (zero where α is clipped)


def phase_peaks(
    calc: PhaseCalc,
    state: PhaseState,
    inst: InstrumentProfile,
    two_theta_range: tuple[float, float],
    mask: np.ndarray | None = None,
) -> PeakList:
    """Positions, widths and areas (unit scale) of every reflection at every wavelength.

    ``mask`` (from an earlier call) fixes which reflections are kept, so that two calls with
    slightly different parameters return aligned arrays (finite-difference derivatives).
    """
    d = calc.d_spacings(state.lattice)
    f2 = calc.refl.f2
    dw = np.exp(-state.b_iso / (2 * d * d)) if state.b_iso else 1.0
    po = calc.po_factor(state.po_ratio, state.po_axis)
    base = f2 * dw * po
    lo, hi = two_theta_range
    n_w = len(inst.wavelengths)
    lam = np.asarray(inst.wavelengths)[:, None]
    s = lam / (2 * d[None, :])
    ok = s < 0.9999
    theta = np.arcsin(np.where(ok, s, 0.5))
    tt = 2 * theta * RAD
    cos_t = np.cos(theta)
    tan_t = np.tan(theta)
    tt_obs = tt + inst.zero_shift - 2 * inst.displacement_mm * cos_t / inst.radius_mm * RAD
    hg2 = inst.U * tan_t**2 + inst.V * tan_t + inst.W + (4 * state.microstrain * tan_t * RAD) ** 2
    hg = np.sqrt(np.maximum(hg2, 1e-8))
    size_term = SCHERRER_K * lam / (state.size_nm * 10.0) * RAD if state.size_nm > 0 else 0.0
    hl = np.maximum(inst.X / cos_t + inst.Y * tan_t + size_term / cos_t, 1e-6)
    h, eta = tch(hg, hl)
    if mask is None:
        mask = ok & (tt_obs > lo - 40 * h) & (tt_obs < hi + 40 * h)
    area = np.asarray(inst.weights)[:, None] * base[None, :] * lorentz_polarisation(tt, inst.mono_two_theta)
    group = np.broadcast_to(np.arange(d.size), (n_w, d.size))
    asym: np.ndarray | float = 0.0
    rate: np.ndarray | float = 0.0
    if inst.asymmetry:
        cot2 = 1.0 / np.tan(2 * theta[mask])
        raw = inst.asymmetry * cot2
        asym = np.clip(raw, -MAX_ASYM, MAX_ASYM)
        rate = np.where(np.abs(raw) < MAX_ASYM, cot2, 0.0)
    return PeakList(
        center=tt_obs[mask],
        fwhm=h[mask],
        eta=eta[mask],
        area=area[mask],
        group=group[mask],
        cos_theta=cos_t[mask],
        mask=mask,
        asym=asym,
        asym_rate=rate,
    )


@dataclass
class Rendered:
    """Per-bin pieces of a render, kept to form derivative columns cheaply."""

    size: int
    bins: np.ndarray  # grid index of each (peak, bin) element
    owner: np.ndarray  # peak index (into the PeakList) of each element
    prof: np.ndarray  # ∫ unit-area profile over the bin
    d_center: np.ndarray  # ∂prof/∂centre
    d_fwhm: np.ndarray  # ∂prof/∂FWHM
    d_eta: np.ndarray  # ∂prof/∂η
    area: np.ndarray  # per peak, window-corrected
    d_alpha: np.ndarray | None = None  # ∂prof/∂α


def _edges(x: np.ndarray) -> np.ndarray:
    edges = np.empty(x.size + 1)
    edges[1:-1] = 0.5 * (x[1:] + x[:-1])
    edges[0] = x[0] - 0.5 * (x[1] - x[0])
    edges[-1] = x[-1] + 0.5 * (x[-1] - x[-2])
    return edges


def render_peaks(
    x: np.ndarray, peaks: PeakList, *, tail_fwhm: float = TAIL_FWHM, derivatives: bool = False
) -> np.ndarray | tuple[np.ndarray, Rendered | None]:
    """Sum pseudo-Voigt peaks × area on the grid x, integrated over each point's step.

    Counts are integrals over a detector step, so each point gets the profile's integral between
    the midpoints to its neighbours (exact for any step, even steps wider than a peak). Peaks are
    split pseudo-Voigts (half-widths H(1+α) below and H(1−α) above the centre, same area) for the
    axial-divergence asymmetry. Each peak is evaluated only on its own window, ±(4 + tail·η)·FWHM,
    and its area is divided by the fraction the window holds (so intensities, hence Hill–Howard
    fractions, do not depend on the window; only the far Lorentzian tails, which a background
    absorbs, are left out). All windows are gathered into one flat array and summed with bincount:
    the cost follows the points under peaks. With ``derivatives`` the per-bin derivatives by
    centre, width, η and α are kept too.
    """
    from scipy.special import erf

    out = np.zeros(x.size)
    if peaks.center.size == 0:
        return (out, None) if derivatives else out
    edges = _edges(x)
    # window: ±(4 + tail·η) FWHM, but no wider than ±MAX_WINDOW° unless 4 FWHM need more
    u_half = np.minimum(4.0 + tail_fwhm * peaks.eta, np.maximum(4.0, MAX_WINDOW / peaks.fwhm))
    held = peaks.eta * (2 / math.pi) * np.arctan(2 * u_half) + (1 - peaks.eta) * erf(
        1.6651092223153954 * u_half
    )
    area_all = peaks.area / held
    alpha = np.broadcast_to(np.asarray(peaks.asym, dtype=float), peaks.center.shape)
    lo_edge = peaks.center - peaks.fwhm * (1 + alpha) * u_half
    hi_edge = peaks.center + peaks.fwhm * (1 - alpha) * u_half
    start = np.clip(np.searchsorted(edges, lo_edge, side="right") - 1, 0, x.size)
    stop = np.clip(np.searchsorted(edges, hi_edge, side="left"), 0, x.size)
    n = stop - start  # grid points covered by each window
    ne = np.where(n > 0, n + 1, 0)  # edges per window
    total = int(ne.sum())
    if total == 0:
        return (out, None) if derivatives else out
    owner = np.repeat(np.arange(n.size), ne)
    offsets = np.arange(total) - np.repeat(np.cumsum(ne) - ne, ne)
    eidx = np.repeat(start, ne) + offsets
    dxe = edges[eidx] - peaks.center[owner]
    side = np.where(dxe < 0, 1.0, -1.0)  # +1 below the centre (width H(1+α)), −1 above
    k = 1.0 + side * alpha[owner]  # half-width factor on this side
    h = peaks.fwhm[owner]
    u = dxe / (h * k)
    e = peaks.eta[owner]
    cl = np.arctan(2.0 * u) * 0.3183098861837907  # Lorentzian CDF − ½
    cg = 0.5 * erf(1.6651092223153954 * u)  # Gaussian CDF − ½
    inside = owner[1:] == owner[:-1]  # differences within one window
    bins = eidx[:-1][inside]
    own = owner[:-1][inside]
    kcl, kcg = k * cl, k * cg  # split profile CDF: (1 ± α)·CDF(u), continuous at the centre
    d_cl = np.diff(kcl)[inside]
    d_cg = np.diff(kcg)[inside]
    eo = e[:-1][inside]
    prof = eo * d_cl + (1.0 - eo) * d_cg
    y = np.bincount(bins, weights=prof * area_all[own], minlength=x.size)[: x.size]
    if not derivatives:
        return y
    # densities in u: d(CDF)/du
    fl = 0.6366197723675814 / (1.0 + 4.0 * u * u)
    fg = 0.9394372786996513 * np.exp(-2.772588722239781 * u * u)
    f = e * fl + (1.0 - e) * fg
    cdf = e * cl + (1.0 - e) * cg
    hh = h[:-1][inside]
    d_center = -np.diff(f)[inside] / hh
    d_fwhm = -np.diff(k * f * u)[inside] / hh
    d_eta = d_cl - d_cg
    d_alpha = np.diff(side * (cdf - f * u))[inside]
    return y, Rendered(x.size, bins, own, prof, d_center, d_fwhm, d_eta, area_all, d_alpha)


def render_derivative(
    r: Rendered,
    d_center: np.ndarray | float = 0.0,
    d_fwhm: np.ndarray | float = 0.0,
    d_eta: np.ndarray | float = 0.0,
    d_area_rel: np.ndarray | float = 0.0,
    d_alpha: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Derivative of a rendered column from per-peak derivatives of centre, FWHM, η and
    (relative) area: Σ_bins A·(∂prof/∂c·dc + ∂prof/∂H·dH + ∂prof/∂η·dη + prof·dA/A)."""
    o = r.owner
    w = np.zeros(o.size)
    pieces = (
        (d_center, r.d_center),
        (d_fwhm, r.d_fwhm),
        (d_eta, r.d_eta),
        (d_area_rel, r.prof),
        (d_alpha, r.d_alpha),
    )
    for per_peak, piece in pieces:
        if np.isscalar(per_peak):
            if per_peak:
                w += piece * per_peak
        else:
            w += piece * per_peak[o]
    return np.bincount(r.bins, weights=w * r.area[o], minlength=r.size)[: r.size]


def phase_pattern(x: np.ndarray, calc: PhaseCalc, state: PhaseState, inst: InstrumentProfile) -> np.ndarray:
    """Unit-scale pattern of one phase on grid x (multiply by the scale S)."""
    peaks = phase_peaks(calc, state, inst, (float(x[0]), float(x[-1])))
    return render_peaks(x, peaks)


def chebyshev_basis(x: np.ndarray, order: int) -> np.ndarray:
    """Chebyshev polynomials T_0..T_order on x mapped to [-1, 1], shape (len(x), order+1)."""
    t = 2 * (x - x[0]) / (x[-1] - x[0]) - 1
    return np.polynomial.chebyshev.chebvander(t, order)


def amorphous_hump(x: np.ndarray, center: float = 25.0, fwhm: float = 10.0) -> np.ndarray:
    """Broad Gaussian of unit height: scattering of an amorphous phase or a glass holder."""
    return np.exp(-4 * math.log(2) * ((x - center) / fwhm) ** 2)


def scales_from_weights(weights: Sequence[float], zmv: Sequence[float]) -> np.ndarray:
    """Hill–Howard inverted: scale factors (up to a common factor) giving these weight fractions."""
    w = np.asarray(weights, dtype=float)
    return w / np.asarray(zmv, dtype=float)


def weights_from_scales(scales: Sequence[float], zmv: Sequence[float]) -> np.ndarray:
    """Hill–Howard: W_p = S_p (ZMV)_p / Σ_j S_j (ZMV)_j."""
    m = np.asarray(scales, dtype=float) * np.asarray(zmv, dtype=float)
    total = m.sum()
    return m / total if total > 0 else np.zeros_like(m)
