"""Peak finding and peak-list matching: the fast proposal step before whole-pattern refinement.

Observed peaks come from the background-subtracted pattern (SNIP background from pybaselines);
a candidate is matched by sliding its stick pattern over a grid of isotropic lattice strains and
zero shifts and scoring how much of its (square-root) stick intensity lands on observed peaks
(the Dara-style peak matcher: |Δ2θ| within about half a peak width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from labos.models.xrd.physics import InstrumentProfile, PhaseCalc, PhaseState, lorentz_polarisation


@dataclass
class ObservedPeaks:
    position: np.ndarray
    height: np.ndarray  # net counts above background
    fwhm: np.ndarray
    significance: np.ndarray  # height / σ
    background: np.ndarray  # on the pattern grid
    noise: np.ndarray  # σ per point (Poisson)

    @property
    def median_fwhm(self) -> float:
        return float(np.median(self.fwhm)) if self.fwhm.size else 0.1


def estimate_background(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """SNIP background (pybaselines) with a window of about 1.5° 2θ."""
    from pybaselines import Baseline

    step = float(np.median(np.diff(x)))
    half = max(int(round(1.5 / step)), 5)
    smooth = max(int(round(0.06 / step)), 1)
    baseline, _ = Baseline(x_data=x).snip(y, max_half_window=half, decreasing=True, smooth_half_window=smooth)
    return np.minimum(baseline, y.max())


def count_scale(x: np.ndarray, y: np.ndarray) -> float:
    """Factor k such that k·y behaves like Poisson counts (variance = mean), estimated from the
    point-to-point scatter in peak-free regions: 1 for raw counts, ≫ 1 for normalised intensities,
    < 1 for data summed or smoothed before export."""
    bg = estimate_background(x, y)
    scale = float(np.median(np.abs(bg))) or 1.0
    quiet = np.abs(y - bg) < 0.2 * scale + 3 * np.sqrt(np.maximum(np.abs(bg), 1e-12))
    both = quiet[1:] & quiet[:-1]
    d = np.diff(y)[both]
    if d.size < 20:
        return 1.0
    var = float(np.median(d * d)) / (2 * 0.4549)  # median of χ²₁ is 0.4549
    mean = float(np.median(bg[1:][both]))
    if var <= 0 or mean <= 0:
        return 1.0
    return mean / var


def find_peaks(x: np.ndarray, y: np.ndarray, *, min_sigma: float = 4.0) -> ObservedPeaks:
    from scipy.signal import find_peaks as _find
    from scipy.signal import peak_widths, savgol_filter

    bg = estimate_background(x, y)
    noise = np.sqrt(np.maximum(y, 1.0))
    net = y - bg
    step = float(np.median(np.diff(x)))
    win = max(5, int(round(0.05 / step)) | 1)
    sm = savgol_filter(net, win, 2) if x.size > win + 2 else net
    idx, props = _find(sm, height=min_sigma * noise, prominence=min_sigma * noise)
    if idx.size == 0:
        e = np.zeros(0)
        return ObservedPeaks(e, e, e, e, bg, noise)
    widths = peak_widths(sm, idx, rel_height=0.5)[0] * step
    return ObservedPeaks(
        position=x[idx],
        height=sm[idx],
        fwhm=np.maximum(widths, step),
        significance=sm[idx] / noise[idx],
        background=bg,
        noise=noise,
    )


@dataclass
class Match:
    strain: float  # isotropic relative lattice change
    zero: float  # deg
    score: float  # fraction of √intensity on observed peaks
    missing: float  # fraction of √intensity of strong sticks with no observed peak
    fwhm: float | None = None  # median FWHM of the observed peaks its sticks landed on
    at: float | None = None  # median 2θ of those peaks


def sticks(calc: PhaseCalc, inst: InstrumentProfile, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Kα1 positions (deg) and relative intensities of a phase at its reference lattice."""
    d = calc.refl.d
    s = inst.wavelengths[0] / (2 * d)
    ok = s < 1
    tt = np.degrees(2 * np.arcsin(s[ok]))
    inten = calc.refl.f2[ok] * lorentz_polarisation(tt, inst.mono_two_theta) * np.exp(-0.25 / d[ok] ** 2)
    keep = (tt >= lo) & (tt <= hi)
    tt, inten = tt[keep], inten[keep]
    if inten.size:
        inten = inten / inten.max()
    return tt, inten


def match_phase(
    calc: PhaseCalc,
    inst: InstrumentProfile,
    obs: ObservedPeaks,
    x_range: tuple[float, float],
    *,
    strain_bound: float = 0.015,
    zero_bound: float = 0.15,
) -> Match:
    """Best isotropic strain and zero shift aligning the candidate's sticks with observed peaks."""
    return match_alignments(calc, inst, obs, x_range, strain_bound=strain_bound, zero_bound=zero_bound)[0]


def match_alignments(
    calc: PhaseCalc,
    inst: InstrumentProfile,
    obs: ObservedPeaks,
    x_range: tuple[float, float],
    *,
    strain_bound: float = 0.015,
    zero_bound: float = 0.15,
    near_strain: float = 0.004,
) -> list[Match]:
    """The best alignment of the candidate's sticks with the observed peaks over a grid of isotropic
    strains and zero shifts, and (when different) the best one within ±``near_strain`` of the
    reference lattice: in a crowded pattern a wrong strain can line sticks up with other phases'
    peaks, so the later whole-pattern screening gets both to choose from."""
    tt, inten = sticks(calc, inst, *x_range)
    if tt.size == 0 or obs.position.size == 0:
        return [Match(0.0, 0.0, 0.0, 1.0)]
    strong = inten >= 0.01
    tt, inten = tt[strong], inten[strong]
    order = np.argsort(inten)[::-1][:80]
    tt, inten = tt[order], inten[order]
    wt = np.sqrt(inten)
    tol = max(0.5 * obs.median_fwhm, 0.03)
    # strain e scales d by (1+e): sinθ' = sinθ/(1+e)
    step_e = max(tol / 4 / max(math.tan(math.radians(x_range[1] / 2)), 0.3) * math.pi / 180, 1e-4)
    strains = np.arange(-strain_bound, strain_bound + 1e-12, step_e)
    zeros = np.arange(-zero_bound, zero_bound + 1e-12, max(tol / 2, 0.02))
    s0 = np.sin(np.radians(tt / 2))
    pos = np.degrees(2 * np.arcsin(np.clip(s0[None, :] / (1 + strains[:, None]), 0, 1)))  # (E, S)
    pos = pos[:, None, :] + zeros[None, :, None]  # (E, Z, S)
    p = obs.position
    j = np.clip(np.searchsorted(p, pos), 1, p.size - 1) if p.size > 1 else np.zeros(pos.shape, dtype=int)
    if p.size > 1:
        dist = np.minimum(np.abs(pos - p[j - 1]), np.abs(pos - p[j]))
    else:
        dist = np.abs(pos - p[0])
    hit = np.exp(-0.5 * (dist / tol) ** 2)
    score = (hit * wt).sum(-1) / wt.sum()
    # prefer small shifts among near-equal scores
    penalty = 0.02 * (np.abs(strains)[:, None] / strain_bound + np.abs(zeros)[None, :] / zero_bound)
    ranked = score - penalty
    best = np.unravel_index(np.argmax(ranked), score.shape)
    out = [_match_at(best, strains, zeros, score, hit, wt, inten, j, pos, obs, tt)]
    near = np.abs(strains) <= near_strain
    if near.any() and abs(strains[best[0]]) > near_strain:
        sub = np.where(near[:, None], ranked, -np.inf)
        alt = np.unravel_index(np.argmax(sub), score.shape)
        out.append(_match_at(alt, strains, zeros, score, hit, wt, inten, j, pos, obs, tt))
    return out


def _match_at(best, strains, zeros, score, hit, wt, inten, j, pos, obs, tt) -> Match:
    p = obs.position
    strong_sticks = inten >= 0.2
    miss = 1.0
    if strong_sticks.any():
        miss = float(((hit[best] < 0.3) * wt * strong_sticks).sum() / (wt * strong_sticks).sum())
    landed = hit[best] > 0.6
    fwhm = at = None
    if landed.any():
        if p.size > 1:
            jb, pb = j[best], pos[best]
            nearest = np.where(np.abs(pb - p[jb - 1]) < np.abs(pb - p[jb]), jb - 1, jb)
        else:
            nearest = np.zeros(tt.size, dtype=int)
        idx = nearest[landed]
        fwhm, at = float(np.median(obs.fwhm[idx])), float(np.median(obs.position[idx]))
    return Match(float(strains[best[0]]), float(zeros[best[1]]), float(score[best]), miss, fwhm, at)


def size_for_width(inst: InstrumentProfile, two_theta: float, fwhm: float) -> float:
    """Crystallite size (nm) whose broadening, with the instrument's, gives this FWHM at 2θ."""
    from labos.models.xrd.physics import SCHERRER_K, tch

    theta = math.radians(two_theta / 2)
    tan_t, cos_t = math.tan(theta), math.cos(theta)
    hg = math.sqrt(max(inst.U * tan_t**2 + inst.V * tan_t + inst.W, 1e-8))
    lam = inst.wavelengths[0]
    sizes = np.geomspace(5.0, 2000.0, 60)
    hl = inst.X / cos_t + inst.Y * tan_t + SCHERRER_K * lam / (sizes * 10.0) * 180 / math.pi / cos_t
    h, _ = tch(np.full_like(hl, hg), hl)
    return float(sizes[np.argmin(np.abs(np.log(h / max(fwhm, 1e-4))))])


def initial_state(calc: PhaseCalc, match: Match, size_nm: float) -> PhaseState:
    n = calc.phase.lattice_model.n_free
    n_len = {"cubic": 1, "tetragonal": 2, "hexagonal": 2, "trigonal": 2}.get(calc.phase.system, 3)
    lat = [match.strain] * n_len + [0.0] * (n - n_len)
    return PhaseState(lattice=tuple(lat), size_nm=size_nm)
