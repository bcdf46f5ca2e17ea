"""Crystal phases for diffraction: a structure in its conventional cell, its reflections with
unscaled |F|², and the symmetry-constrained lattice parameters a fit may refine.

One place computes structure factors for both the simulator and the analysis. Reflections are
grouped so that every group keeps one d-spacing for ANY lattice allowed by the crystal system
(symmetry-equivalent hkl, plus hkl that coincide by metric symmetry), which keeps the grouping
valid while a fit refines the lattice. Intensities are Σ|F|² over the group's members (both
Friedel mates), i.e. multiplicity × |F|², in electrons², with no Lorentz-polarisation and no
Debye–Waller factor (those depend on the angle and are applied by :mod:`.physics`).
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from labos.errors import LabosError

# Reflections are computed once per structure down to this d-spacing: 2θ = 140° with Cu Kα2.
D_MIN_DEFAULT = 1.544426 / (2 * math.sin(math.radians(70.0)))
_CACHE: dict[tuple[str, float], ReflectionSet] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 2048


class StructureError(LabosError, ValueError):
    """A crystal structure that cannot be used for diffraction (no sites, unknown element...)."""


# Free lattice parameters per crystal system (names of the conventional-cell parameters).
_FREE = {
    "cubic": ("a",),
    "tetragonal": ("a", "c"),
    "hexagonal": ("a", "c"),
    "trigonal": ("a", "c"),
    "orthorhombic": ("a", "b", "c"),
    "monoclinic": ("a", "b", "c", "angle"),
    "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
}


@dataclass(frozen=True)
class ReflectionSet:
    """Grouped reflections of one structure (see the module docstring)."""

    hkl: np.ndarray  # (G, 3) one representative per group
    coeff: np.ndarray  # (G, 6) h², k², l², 2hk, 2hl, 2kl: 1/d² = coeff · (G*11, G*22, G*33, G*12, G*13, G*23)
    d: np.ndarray  # (G,) d-spacing (Å) of the reference lattice
    f2: np.ndarray  # (G,) Σ |F|² over members (multiplicity × |F|²)
    multiplicity: np.ndarray  # (G,)
    member_hkl: np.ndarray  # (M, 3) all members (both Friedel mates), for preferred orientation
    member_group: np.ndarray  # (M,)
    member_f2: np.ndarray  # (M,)


@dataclass
class LatticeModel:
    """Symmetry-constrained lattice: relative strains on the free lengths, degree offsets on free angles."""

    system: str
    params: tuple[float, float, float, float, float, float]
    free_angle: int | None = None  # index 3, 4 or 5 of the unique monoclinic angle

    @property
    def n_free(self) -> int:
        return len(_FREE[self.system])

    def lattice(self, p: np.ndarray | None) -> tuple[float, ...]:
        a, b, c, al, be, ga = self.params
        if p is None or len(p) == 0:
            return self.params
        sys = self.system
        if sys == "cubic":
            f = 1 + p[0]
            return (a * f, b * f, c * f, al, be, ga)
        if sys in ("tetragonal", "hexagonal", "trigonal"):
            return (a * (1 + p[0]), b * (1 + p[0]), c * (1 + p[1]), al, be, ga)
        out = [a * (1 + p[0]), b * (1 + p[1]), c * (1 + p[2]), al, be, ga]
        if sys == "monoclinic" and self.free_angle is not None:
            out[self.free_angle] += p[3]
        elif sys == "triclinic":
            out[3] += p[3]
            out[4] += p[4]
            out[5] += p[5]
        return tuple(out)

    def recip_metric(self, p: np.ndarray | None) -> np.ndarray:
        """(G*11, G*22, G*33, G*12, G*13, G*23) of the strained lattice."""
        return recip_metric(self.lattice(p))


def recip_metric(params: tuple[float, ...]) -> np.ndarray:
    a, b, c, al, be, ga = params
    ca, cb, cg = (math.cos(math.radians(t)) for t in (al, be, ga))
    g = np.array(
        [[a * a, a * b * cg, a * c * cb], [a * b * cg, b * b, b * c * ca], [a * c * cb, b * c * ca, c * c]]
    )
    gs = np.linalg.inv(g)
    return np.array([gs[0, 0], gs[1, 1], gs[2, 2], gs[0, 1], gs[0, 2], gs[1, 2]])


def _structure_key(structure) -> str:
    """A stable fingerprint of a structure (lattice, species, occupancies, positions)."""
    h = hashlib.sha1()
    h.update(np.round(structure.lattice.matrix, 5).tobytes())
    for site in structure:
        h.update(repr(sorted((sp.symbol, round(o, 4)) for sp, o in site.species.items())).encode())
        h.update(np.round(np.mod(site.frac_coords, 1.0), 5).tobytes())
    return h.hexdigest()


def _group_keys(hkl: np.ndarray, system: str, free_angle: int | None) -> np.ndarray:
    h, k, l = hkl.T  # noqa: E741
    if system == "cubic":
        cols = [h * h + k * k + l * l]
    elif system == "tetragonal":
        cols = [h * h + k * k, l * l]
    elif system in ("hexagonal", "trigonal"):
        cols = [h * h + h * k + k * k, l * l]
    elif system == "orthorhombic":
        cols = [h * h, k * k, l * l]
    elif system == "monoclinic":
        cross = {3: k * l, 4: h * l, 5: h * k}.get(free_angle or 4)
        cols = [h * h, k * k, l * l, cross]
    else:
        cols = [h * h, k * k, l * l, h * k, h * l, k * l]
    return np.stack(cols, axis=1)


def compute_reflections(structure, lattice: LatticeModel, d_min: float = D_MIN_DEFAULT) -> ReflectionSet:
    """All reflections with d ≥ d_min (with 3 % margin for lattice refinement), grouped."""
    from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS

    if len(structure) == 0:
        raise StructureError("structure has no sites")
    d_lim = d_min * 0.97
    g_max = 1.0 / d_lim
    a, b, c = structure.lattice.abc
    hmax, kmax, lmax = (int(math.floor(g_max * x)) + 1 for x in (a, b, c))
    hh, kk, ll = np.meshgrid(
        np.arange(-hmax, hmax + 1), np.arange(-kmax, kmax + 1), np.arange(-lmax, lmax + 1), indexing="ij"
    )
    hkl = np.stack([hh.ravel(), kk.ravel(), ll.ravel()], axis=1)
    h, k, l = hkl.T  # noqa: E741
    half = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))
    hkl = hkl[half]
    gm = recip_metric(lattice.params)
    coeff = _coeff(hkl)
    inv_d2 = coeff @ gm
    keep = (inv_d2 > 0) & (inv_d2 <= g_max * g_max)
    hkl, inv_d2 = hkl[keep], inv_d2[keep]
    if len(hkl) == 0:
        raise StructureError("structure has no reflections in range (cell too small?)")
    s2 = inv_d2 / 4.0  # (sinθ/λ)²

    frac = np.array([site.frac_coords for site in structure])
    f_hkl = np.zeros(len(hkl), dtype=np.complex128)
    by_element: dict[str, list[tuple[int, float]]] = {}
    z_of: dict[str, int] = {}
    for i, site in enumerate(structure):
        for sp, occ in site.species.items():
            sym = sp.symbol
            if sym not in ATOMIC_SCATTERING_PARAMS:
                raise StructureError(f"no X-ray scattering factors for element {sym!r}")
            by_element.setdefault(sym, []).append((i, occ))
            z_of[sym] = sp.Z
    hklf = hkl.astype(float)
    chunk = max(1, 2_000_000 // max(1, len(structure)))
    for sym, members in by_element.items():
        coeffs = np.asarray(ATOMIC_SCATTERING_PARAMS[sym])
        fs = z_of[sym] - 41.78214 * s2 * np.sum(coeffs[:, 0] * np.exp(-coeffs[:, 1] * s2[:, None]), axis=1)
        idx = np.array([m[0] for m in members])
        occ = np.array([m[1] for m in members])
        for start in range(0, len(hkl), chunk):
            rows = slice(start, start + chunk)
            phase = np.exp(2j * math.pi * (hklf[rows] @ frac[idx].T))
            f_hkl[rows] += fs[rows] * (phase @ occ)
    f2 = 2.0 * (f_hkl.real**2 + f_hkl.imag**2)  # both Friedel mates

    keys = _group_keys(hkl, lattice.system, lattice.free_angle)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n_groups = inverse.max() + 1
    group_f2 = np.bincount(inverse, weights=f2, minlength=n_groups)
    group_mult = np.bincount(inverse, minlength=n_groups) * 2
    first = np.full(n_groups, -1)
    first[inverse[::-1]] = np.arange(len(inverse))[::-1]
    rep = hkl[first]
    # Drop systematic absences and reflections too weak to matter (relative to the strongest).
    d_rep = 1.0 / np.sqrt(inv_d2[first])
    strength = group_f2 / d_rep**2  # rough Lp ∝ 1/sin²θ weighting
    live = group_f2 > 1e-6 * group_f2.max()
    live &= strength > 1e-5 * strength.max()
    if not live.any():
        raise StructureError("structure has no reflections with intensity")
    new_index = np.cumsum(live) - 1
    member_live = live[inverse]
    order = np.argsort(d_rep[live])[::-1]  # by decreasing d (increasing 2θ)
    remap = np.empty(order.size, dtype=int)
    remap[order] = np.arange(order.size)
    member_group = remap[new_index[inverse[member_live]]]
    m_hkl = hkl[member_live]
    m_f2 = f2[member_live] / 2.0
    return ReflectionSet(
        hkl=rep[live][order],
        coeff=_coeff(rep[live][order]),
        d=d_rep[live][order],
        f2=group_f2[live][order],
        multiplicity=group_mult[live][order],
        member_hkl=np.concatenate([m_hkl, -m_hkl]),
        member_group=np.concatenate([member_group, member_group]),
        member_f2=np.concatenate([m_f2, m_f2]),
    )


def _coeff(hkl: np.ndarray) -> np.ndarray:
    h, k, l = hkl.T.astype(float)  # noqa: E741
    return np.stack([h * h, k * k, l * l, 2 * h * k, 2 * h * l, 2 * k * l], axis=1)


@dataclass(eq=False)
class CrystalPhase:
    """A reference phase: name, formula, space group, conventional structure, reflections."""

    name: str
    structure: object  # pymatgen Structure in the conventional standard setting
    formula: str
    spacegroup: str
    spacegroup_number: int
    system: str
    source: str = ""
    e_above_hull: float | None = None
    _key: str = field(default="", repr=False)

    @classmethod
    def from_structure(
        cls, structure, name: str | None = None, *, source: str = "", e_above_hull: float | None = None
    ) -> CrystalPhase:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        if len(structure) == 0:
            raise StructureError(f"structure {name or ''} has no sites")
        try:
            sga = SpacegroupAnalyzer(structure, symprec=0.01, angle_tolerance=5)
            conv = sga.get_conventional_standard_structure()
            system = sga.get_crystal_system()
            sg_symbol, sg_number = sga.get_space_group_symbol(), sga.get_space_group_number()
        except Exception:  # spglib fails on some disordered cells: keep the cell as given, triclinic
            conv, system, sg_symbol, sg_number = structure, "triclinic", "P1", 1
        formula = structure.composition.reduced_formula
        phase = cls(
            name=name or f"{formula}_{sg_number}",
            structure=conv,
            formula=formula,
            spacegroup=sg_symbol,
            spacegroup_number=int(sg_number),
            system=system,
            source=source,
            e_above_hull=e_above_hull,
        )
        phase._key = _structure_key(conv)
        return phase

    @cached_property
    def lattice_model(self) -> LatticeModel:
        params = tuple(float(v) for v in self.structure.lattice.parameters)
        free_angle = None
        if self.system == "monoclinic":
            dev = [abs(params[i] - 90.0) for i in (3, 4, 5)]
            free_angle = 3 + int(np.argmax(dev))
        return LatticeModel(self.system, params, free_angle)  # type: ignore[arg-type]

    @property
    def cell_mass(self) -> float:
        """Z·M: mass of the cell contents (amu)."""
        return float(self.structure.composition.weight)

    @property
    def volume(self) -> float:
        return float(self.structure.volume)

    @property
    def zmv(self) -> float:
        """Z·M·V of the Hill–Howard relation (same cell as |F|²)."""
        return self.cell_mass * self.volume

    @property
    def elements(self) -> frozenset[str]:
        return frozenset(el.symbol for el in self.structure.composition.elements)

    def reflections(self, d_min: float = D_MIN_DEFAULT) -> ReflectionSet:
        """Reflections down to ``d_min`` (cached per structure, shared by every pattern and fit)."""
        d_min = min(d_min, D_MIN_DEFAULT)
        key = (self._key, round(d_min, 3))
        with _CACHE_LOCK:
            hit = _CACHE.get(key)
        if hit is not None:
            return hit
        refl = compute_reflections(self.structure, self.lattice_model, d_min)
        with _CACHE_LOCK:
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = refl
        return refl


_PHASES: dict[tuple[str | None, str], CrystalPhase] = {}


def phase_for(structure, name: str | None = None, *, source: str = "structure") -> CrystalPhase:
    """A CrystalPhase for a pymatgen Structure, cached per (name, structure): callers that pass the
    same structures for every pattern (a World, a dict of demo structures) pay spglib once."""
    key = (name, _structure_key(structure))
    with _CACHE_LOCK:
        hit = _PHASES.get(key)
    if hit is not None:
        return hit
    phase = CrystalPhase.from_structure(structure, name, source=source)
    with _CACHE_LOCK:
        if len(_PHASES) >= _CACHE_MAX:
            _PHASES.pop(next(iter(_PHASES)))
        _PHASES[key] = phase
    return phase
