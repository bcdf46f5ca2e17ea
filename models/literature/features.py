"""Numbers from formulas: element-fraction vectors and per-precursor properties (with sources).

Precursor properties follow Huo et al. (Chem. Mater. 34, 7323, 2022): heating temperatures track
precursor stability — melting (or decomposition) points and formation enthalpies — more than
reaction thermodynamics (an extension of Tamman's rule). Melting points come from
``labos.models.thermo.properties`` (tabulated with sources) and the CRC-based binary-oxide table in
the shared dataset; formation enthalpies from the embedded experimental thermodynamic table.
"""

from __future__ import annotations

import csv
import math
from functools import lru_cache

import numpy as np

from labos.config import get_settings

VOLATILE = frozenset({"O", "C", "H", "N"})
MELTING_CSV = "literature/binary_oxide_melting_points.csv"  # Chung et al. repository; CRC Handbook values


@lru_cache(maxsize=1)
def element_order() -> tuple[str, ...]:
    from pymatgen.core import Element

    return tuple(e.symbol for e in Element if e.Z <= 103)


@lru_cache(maxsize=1)
def element_index() -> dict[str, int]:
    return {el: i for i, el in enumerate(element_order())}


def fraction_vector(fractions: dict[str, float]) -> np.ndarray:
    v = np.zeros(len(element_order()), dtype=np.float32)
    idx = element_index()
    for el, f in fractions.items():
        if el in idx:
            v[idx[el]] = f
    return v


@lru_cache(maxsize=100_000)
def amounts(formula: str) -> dict[str, float]:
    from pymatgen.core import Composition

    return {el: float(n) for el, n in Composition(formula).get_el_amt_dict().items() if n > 0}


def fractions_of(formula: str) -> dict[str, float]:
    a = amounts(formula)
    total = sum(a.values())
    return {el: n / total for el, n in a.items()}


def nonvolatile(formula: str) -> frozenset[str]:
    return frozenset(amounts(formula)) - VOLATILE


@lru_cache(maxsize=1)
def _oxide_melting() -> dict[str, float]:
    """Binary-oxide melting points (K) from the shared CSV (CRC Handbook), if present."""
    path = get_settings().dataset(MELTING_CSV)
    out: dict[str, float] = {}
    if not path.is_file():
        return out
    from pymatgen.core import Composition

    with path.open(encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            try:
                key = Composition(row["composition"]).reduced_formula
                value = float(row["melting_point"]) + 273.15
            except (ValueError, KeyError):
                continue
            if not (row.get("pre_condition") or "").strip(" []'"):
                out.setdefault(key, value)
    return out


@lru_cache(maxsize=100_000)
def melting_k(formula: str) -> float:
    """Melting (or decomposition) point in K, NaN when not tabulated."""
    try:
        from labos.models.thermo.properties import melting_point_k

        value = melting_point_k(formula)
    except Exception:  # an unreadable or unknown phase has no tabulated value
        value = None
    if value is None:
        value = _oxide_melting().get(formula)
    return float(value) if value else math.nan


@lru_cache(maxsize=1)
def _thermo_db():
    try:
        from labos.models.thermo import ThermoDB

        return ThermoDB.default()
    except Exception:  # the thermodynamics package is optional for the priors
        return None


@lru_cache(maxsize=100_000)
def formation_enthalpy(formula: str) -> float:
    """ΔH_f in eV/atom from the embedded experimental table, NaN when not covered."""
    db = _thermo_db()
    if db is None:
        return math.nan
    try:
        if not db.has(formula):
            return math.nan
        return float(db.formation_enthalpy_per_atom(formula))
    except Exception:  # missing data is a NaN feature, not an error
        return math.nan


ANION_CLASSES = (
    "carbonate",
    "nitrate",
    "hydroxide",
    "oxide",
    "organic",
    "ammonium",
    "halide",
    "element",
    "other",
)


def anion_class(formula: str) -> str:
    a = amounts(formula)
    els = set(a)
    metals = els - VOLATILE - {"F", "Cl", "Br", "I", "S", "P", "B", "Si"}
    if len(els) == 1:
        return "element"
    if els & {"F", "Cl", "Br", "I"}:
        return "halide"
    if "N" in els and "H" in els:
        return "ammonium"
    if "N" in els and "O" in els:
        return "nitrate"
    if "C" in els and "H" in els:
        return "organic"
    if "C" in els and "O" in els:
        return "carbonate"
    if "H" in els and "O" in els:
        return "hydroxide"
    if els - metals == {"O"}:
        return "oxide"
    return "other"


_SALT_KEEP = frozenset({"H", "N", "C", "S", "P", "F", "Cl", "Br", "I"})


def anhydrous(formula: str, known: frozenset[str] | set[str]) -> str:
    """``formula`` without its water of crystallisation, when that anhydrous form is in ``known``.

    The text-mined names write hydrates as reduced formulas (``CeH12(NO5)3`` is Ce(NO3)3·6H2O,
    ``LiH3O2`` is LiOH·H2O); the most H2O removed that still gives a known precursor wins. Used to
    report matches up to water of crystallisation, a labelled supplementary metric. The anhydrous
    form must keep H (LiOH·H2O → LiOH) or an anion-forming element (nitrate, acetate, chloride, ...).
    """
    a = amounts(formula)
    h, o = a.get("H", 0.0), a.get("O", 0.0)
    for k in range(int(min(h / 2, o) + 1e-9), 0, -1):
        rest = dict(a)
        rest["H"] = h - 2 * k
        rest["O"] = o - k
        rest = {el: v for el, v in rest.items() if v > 1e-6}
        if not (set(rest) - VOLATILE) or not (set(rest) & _SALT_KEEP):
            continue  # a hydroxide losing its OH becomes an oxide: another chemical, not a hydrate
        from pymatgen.core import Composition

        name = Composition(rest).reduced_formula
        if name in known:
            return name
    return formula
