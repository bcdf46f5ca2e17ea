"""Realistic powder patterns from crystal structures, as a benchtop diffractometer would record them.

The physics (Cu Kα1/Kα2, Lorentz-polarisation, TCH pseudo-Voigt with Caglioti widths, size and
microstrain broadening, March–Dollase texture, zero shift and sample displacement, Hill–Howard
scales) lives in :mod:`labos.models.xrd.physics`, the same code the analysis fits with. This
module adds what a measurement adds: a background (Chebyshev terms, low-angle air scatter,
an optional amorphous hump), a counting time and Poisson noise.

Defaults mimic the Malvern Panalytical Aeris scans in ../shared/data/xrd/precursor_mixtures
(10–100° 2θ, 0.0109° steps, ~1 000–2 000 background counts at low angle, ~10⁴ counts at the
strongest line); ``labos bench xrd-sim`` measures how close the synthetic scans are to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from labos.domain import XRDPattern
from labos.errors import LabosError


def _aeris():
    from labos.models.xrd.physics import InstrumentProfile

    return InstrumentProfile()


_AERIS = _aeris()


class XRDSimulationError(LabosError, ValueError):
    """A pattern that cannot be simulated (unknown phase, no structure, bad fractions)."""


class Instrument(BaseModel):
    """A diffractometer and its scan settings."""

    model_config = ConfigDict(extra="forbid")

    two_theta_start: float = Field(10.0, ge=1, lt=170)
    two_theta_end: float = Field(100.0, gt=1, le=170)
    step: float = Field(0.01087, gt=0, le=1)
    counting_time_s: float = Field(12.5, gt=0, description="per step (a 1D detector integrates many)")
    peak_cps: float = Field(800.0, gt=0, description="count rate at the strongest line of the pattern")
    wavelengths: tuple[float, ...] = (1.540598, 1.544426)
    wavelength_weights: tuple[float, ...] = (1.0, 0.5)
    U: float = _AERIS.U
    V: float = _AERIS.V
    W: float = _AERIS.W
    X: float = _AERIS.X
    Y: float = _AERIS.Y
    asymmetry: float = Field(
        _AERIS.asymmetry, ge=0, le=0.5, description="axial divergence: split widths H(1 ± A/tan 2θ)"
    )
    mono_two_theta: float | None = None
    radius_mm: float = 145.0
    zero_shift: float = 0.0
    displacement_mm: float = 0.0
    background_cps: tuple[float, ...] = Field((40.0, -10.0, 3.0), description="Chebyshev coefficients")
    air_scatter_cps: float = Field(60.0, ge=0, description="low-angle air scatter, ∝ 1/sin²θ, at 10°")
    hump_cps: float = Field(0.0, ge=0, description="height of an amorphous hump")
    hump_center: float = 25.0
    hump_fwhm: float = 10.0
    noise: bool = True

    @model_validator(mode="after")
    def _range(self) -> Instrument:
        if self.two_theta_end <= self.two_theta_start + 10 * self.step:
            raise ValueError("two_theta_end must be well above two_theta_start")
        if len(self.wavelengths) != len(self.wavelength_weights):
            raise ValueError("each wavelength needs one weight")
        return self

    def profile(self):
        from labos.models.xrd.physics import InstrumentProfile

        return InstrumentProfile(
            wavelengths=tuple(self.wavelengths),
            weights=tuple(self.wavelength_weights),
            U=self.U,
            V=self.V,
            W=self.W,
            X=self.X,
            Y=self.Y,
            mono_two_theta=self.mono_two_theta,
            asymmetry=self.asymmetry,
            radius_mm=self.radius_mm,
            zero_shift=self.zero_shift,
            displacement_mm=self.displacement_mm,
        )

    def grid(self) -> np.ndarray:
        n = int(math.floor((self.two_theta_end - self.two_theta_start) / self.step + 1e-9)) + 1
        return self.two_theta_start + self.step * np.arange(n)


class SimPhase(BaseModel):
    """One phase in a simulated sample: its weight fraction and microstructure."""

    model_config = ConfigDict(extra="forbid")

    fraction: float = Field(ge=0, le=1)
    size_nm: float = Field(70.0, gt=1, description="typical of the powders in ../shared/data/xrd")
    microstrain: float = Field(3e-4, ge=0, le=0.05)
    po_ratio: float = Field(1.0, gt=0.1, le=3)
    po_axis: tuple[int, int, int] = (0, 0, 1)
    lattice_strain: float = Field(0.0, ge=-0.1, le=0.1, description="isotropic relative change of a, b, c")
    b_iso: float = Field(0.5, ge=0, le=5)
    intensity_jitter: float = Field(
        0.0,
        ge=0,
        le=1,
        description="relative random error of each reflection's intensity (a structure model that "
        "is not quite the sample's: site disorder, wrong B, extinction), drawn per pattern from the seed",
    )


def resolve_phase(key: Any, library=None):
    """A CrystalPhase for a name, formula, pymatgen Structure or CrystalPhase."""
    from labos.models.xrd.crystal import CrystalPhase

    if isinstance(key, CrystalPhase):
        return key
    try:
        from pymatgen.core import Structure
    except ImportError:  # pragma: no cover
        Structure = ()  # type: ignore[assignment]
    if isinstance(key, Structure):
        return _phase_for_structure(key)
    if not isinstance(key, str):
        raise XRDSimulationError(
            f"a phase must be a name, a formula or a Structure, not {type(key).__name__}"
        )
    if isinstance(library, Mapping):  # name → pymatgen Structure (e.g. a World's structures)
        found = _find_in_structures(key, library)
        if found is not None:
            return found
    elif library is not None:
        found = library.find(key)
        if found is not None:
            return found
    structures = _demo_structures()
    if key in structures:
        return _phase_for_structure(structures[key], key)
    from labos.domain import parse_formula

    try:
        reduced = parse_formula(key)
    except LabosError:
        reduced = None
    for name, structure in structures.items():
        if reduced and structure.composition.reduced_formula == reduced:
            return _phase_for_structure(structure, name)
    where = "the given library or " if library is not None else ""
    raise XRDSimulationError(
        f"no crystal structure for phase {key!r} in {where}the demo structures: give a pymatgen Structure, "
        "a CIF library (PhaseLibrary.from_cif_dir) or add the structure with its source"
    )


def _find_in_structures(key: str, structures: Mapping[str, Any]):
    if key in structures:
        return _phase_for_structure(structures[key], key)
    from labos.domain import parse_formula

    try:
        reduced = parse_formula(key)
    except LabosError:
        return None
    for name, structure in structures.items():
        if structure.composition.reduced_formula == reduced:
            return _phase_for_structure(structure, name)
    return None


def _phase_for_structure(structure, name: str | None = None):
    from labos.models.xrd.crystal import phase_for

    return phase_for(structure, name)


def _demo_structures() -> dict:
    try:
        from labos.simulator.demo_chemistry import demo_structures
    except ImportError:
        return {}
    return demo_structures()


def expected_counts(
    phases: Mapping[Any, float | SimPhase] | Iterable[tuple[Any, float | SimPhase]],
    instrument: Instrument | None = None,
    library=None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Noise-free pattern: (2θ, expected counts, per-phase contributions by phase name)."""
    from labos.models.xrd.physics import (
        PhaseCalc,
        PhaseState,
        amorphous_hump,
        chebyshev_basis,
        phase_pattern,
        scales_from_weights,
    )

    inst = instrument or Instrument()
    pairs = list(phases.items()) if isinstance(phases, Mapping) else list(phases)
    if not pairs:
        raise XRDSimulationError("no phases to simulate")
    try:
        specs = [(k, v if isinstance(v, SimPhase) else SimPhase(fraction=float(v))) for k, v in pairs]
    except (TypeError, ValueError) as exc:
        raise XRDSimulationError(f"phases must map a phase to a weight fraction: {exc}") from None
    total = sum(s.fraction for _, s in specs)
    if total <= 0:
        raise XRDSimulationError("the phase fractions sum to zero")
    if total > 1.01:
        raise XRDSimulationError(f"phase fractions sum to {total:.4f}, more than 1")
    if total > 1.0:  # weighing round-off: normalise
        specs = [(k, s.model_copy(update={"fraction": s.fraction / total})) for k, s in specs]
        total = 1.0
    x = inst.grid()
    profile = inst.profile()
    resolved = [(resolve_phase(k, library), s) for k, s in specs]
    zmv = [p.zmv for p, _ in resolved]
    scales = scales_from_weights([s.fraction for _, s in resolved], zmv)
    parts: dict[str, np.ndarray] = {}
    signal = np.zeros_like(x)
    for (phase, spec), scale in zip(resolved, scales, strict=True):
        if spec.fraction <= 0:
            continue
        calc = PhaseCalc.for_range(phase, float(x[-1]), profile.wavelengths)
        if spec.intensity_jitter > 0:
            rng = np.random.default_rng([seed, len(parts)])
            factor = np.exp(rng.normal(0.0, spec.intensity_jitter, calc.refl.f2.size))
            calc = PhaseCalc(phase, replace(calc.refl, f2=calc.refl.f2 * factor))
        n_free = phase.lattice_model.n_free
        lat = [spec.lattice_strain] * min(n_free, 3) + [0.0] * max(0, n_free - 3)
        state = PhaseState(
            lattice=tuple(lat),
            size_nm=spec.size_nm,
            microstrain=spec.microstrain,
            po_ratio=spec.po_ratio,
            po_axis=spec.po_axis,
            b_iso=spec.b_iso,
        )
        y = scale * phase_pattern(x, calc, state, profile)
        parts[phase.name] = parts.get(phase.name, 0) + y
        signal += y
    t = inst.counting_time_s
    peak = signal.max()
    norm = inst.peak_cps * t / peak if peak > 0 else 0.0
    parts = {k: v * norm for k, v in parts.items()}
    signal *= norm
    cheb = chebyshev_basis(x, len(inst.background_cps) - 1) @ np.asarray(inst.background_cps)
    theta10 = math.radians(5.0)
    air = inst.air_scatter_cps * (math.sin(theta10) / np.sin(np.radians(x / 2))) ** 2
    amorphous = 1.0 - total
    hump = inst.hump_cps * amorphous_hump(x, inst.hump_center, inst.hump_fwhm)
    if amorphous > 1e-6:  # missing mass scatters diffusely: a hump holding its share of the intensity
        crystalline_area = signal.sum()
        shape = amorphous_hump(x, inst.hump_center, inst.hump_fwhm)
        hump = hump + shape / shape.sum() * crystalline_area * amorphous / total / t
    background = np.maximum(cheb + air + hump, 0.0) * t
    return x, signal + background, parts


def synthesize(
    phases: Mapping[Any, float | SimPhase] | Iterable[tuple[Any, float | SimPhase]],
    instrument: Instrument | None = None,
    seed: int = 0,
    library=None,
) -> XRDPattern:
    """A measured-looking pattern of a sample with these phases at these weight fractions.

    ``phases`` maps a phase (name or formula found in ``library`` or the demo structures, a pymatgen
    Structure, or a CrystalPhase) to a weight fraction or a :class:`SimPhase`; pymatgen Structures
    are not hashable, so give them as a list of (structure, fraction) pairs, or give names and
    ``library`` = a name → Structure mapping (or a PhaseLibrary). Fractions summing to less than 1
    leave the rest as amorphous matter (a hump). Deterministic for a seed.
    """
    inst = instrument or Instrument()
    x, expected, _ = expected_counts(phases, inst, library, seed=seed)
    if inst.noise:
        rng = np.random.default_rng(seed)
        counts = rng.poisson(expected).astype(float)
    else:
        counts = expected
    return XRDPattern(
        two_theta=x.tolist(),
        counts=counts.tolist(),
        wavelengths=list(inst.wavelengths),
        wavelength_weights=list(inst.wavelength_weights),
        counting_time_s=inst.counting_time_s,
        metadata={"simulated": True, "seed": seed, "goniometer_radius_mm": inst.radius_mm},
    )
