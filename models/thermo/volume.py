"""Volume per atom when no crystal structure is known (needed by the Bartel G^δ descriptor).

Estimate: Σ n_i·(4/3)π r_i³ over Shannon ionic radii (pymatgen's ``Species.ionic_radius``), with
oxidation states from a fast charge balance (anions at fixed states, cations at the combination of
their common states closest to neutral; pymatgen's ``oxi_state_guesses`` takes ~0.1 s per formula,
too slow for whole phase diagrams), times a packing factor. ``PACKING_FACTOR`` = 1.83 is the
geometric-mean ratio of the true
volume per atom to that sum over the 161 structures in the shared XRD CIF set (COD/AMCSD, see
/work/shared/data/xrd/cifs/SOURCES.tsv); median error 8 % (``labos bench thermo`` recomputes it).
When no oxidation states can be assigned (intermetallics), the elemental molar volumes of
pymatgen's periodic table are summed with ``ELEMENTAL_FACTOR`` (0.46 per cm³/mol → Å³, fitted the
same way). Every use of an estimate is flagged ``volume_estimated`` on the result.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

PACKING_FACTOR = 1.83
ELEMENTAL_FACTOR = 0.459 / 0.6022  # Å³ per (cm³/mol): 1 cm³/mol = 1/0.6022 Å³ per atom
FALLBACK_VOLUME = 15.0  # Å³/atom, typical of oxides; used only when nothing else is known


ANION_STATES = {
    "O": -2,
    "F": -1,
    "Cl": -1,
    "Br": -1,
    "I": -1,
    "S": -2,
    "Se": -2,
    "Te": -2,
    "N": -3,
    "P": -3,
    "C": -4,
    "H": -1,
    "As": -3,
    "Sb": -3,
    "Si": -4,
    "B": -3,
}


@lru_cache(maxsize=4096)
def _radius(symbol: str, oxidation: int) -> float | None:
    from pymatgen.core import Element, Species

    if oxidation:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r = Species(symbol, oxidation).ionic_radius
            if r is not None:
                return float(r)
        except Exception:
            pass
    r = Element(symbol).atomic_radius
    return float(r) if r is not None else None


@lru_cache(maxsize=256)
def _cation_states(symbol: str) -> tuple[int, ...]:
    from pymatgen.core import Element

    el = Element(symbol)
    states = [s for s in (el.common_oxidation_states or ()) if s > 0] or [
        s for s in el.oxidation_states if s > 0
    ]
    return tuple(states[:4]) or (0,)


def _oxidation_states(amounts: dict[str, float]) -> dict[str, int] | None:
    """Fast charge balance: anions at fixed states (the most electronegative candidates), cations
    at the combination of their common states closest to neutral. None for intermetallics."""
    from itertools import product

    from pymatgen.core import Element

    ranked = sorted(
        amounts, key=lambda e: Element(e).X if Element(e).X == Element(e).X else 0.0, reverse=True
    )
    anions = [e for e in ranked if e in ANION_STATES and (e in ("O", "F") or e == ranked[0])]
    if not anions:
        return None
    cations = [e for e in amounts if e not in anions]
    if not cations:
        return None
    charge = sum(amounts[a] * ANION_STATES[a] for a in anions)
    best, best_err = None, float("inf")
    options = [_cation_states(c) for c in cations]
    if len(list(product(*options))) > 4096:
        options = [o[:1] for o in options]
    for combo in product(*options):
        err = abs(charge + sum(amounts[c] * s for c, s in zip(cations, combo, strict=True)))
        if err < best_err - 1e-9:
            best, best_err = combo, err
    states = {a: ANION_STATES[a] for a in anions}
    states.update(dict(zip(cations, best, strict=True)))
    return states


def _ionic_sum(comp) -> float | None:
    amounts = comp.get_el_amt_dict()
    if len(amounts) < 2:
        return None
    states = _oxidation_states(amounts)
    if states is None:
        return None
    total = 0.0
    for el, amount in amounts.items():
        radius = _radius(el, states[el])
        if radius is None:
            return None
        total += amount * 4.0 / 3.0 * math.pi * radius**3
    return total / comp.num_atoms


def _elemental_sum(comp) -> float | None:
    from pymatgen.core import Element

    total = 0.0
    for el, amount in comp.get_el_amt_dict().items():
        mv = Element(el).molar_volume
        if mv is None:
            return None
        total += amount * float(mv)
    return total / comp.num_atoms * ELEMENTAL_FACTOR


@lru_cache(maxsize=65536)
def estimate_volume_per_atom(formula: str) -> float:
    """Estimated volume per atom (Å³) of the solid ``formula``."""
    from pymatgen.core import Composition

    comp = Composition(formula).reduced_composition
    ionic = _ionic_sum(comp)
    if ionic is not None:
        return ionic * PACKING_FACTOR
    elemental = _elemental_sum(comp)
    return elemental if elemental is not None else FALLBACK_VOLUME
