"""Composition helpers the planner uses everywhere: one cached place that turns a formula into numbers.

Phases are compared by composition, never by string: ``La(OH)3`` and ``LaH3O3`` are the same key.
Hydrates written with a middle dot (``Mg(NO3)2·6H2O``) are accepted.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from labos.domain import GASES
from labos.errors import FormulaError

# Elements that may leave (or enter) a solid-state reaction as a gas in the allowed byproducts.
VOLATILE_ELEMENTS = frozenset({"C", "H", "N", "O"})
# Gaseous byproducts allowed when balancing, in order of preference (the first gases that balance win).
BYPRODUCT_GASES: tuple[str, ...] = ("O2", "CO2", "H2O", "NH3", "N2", "NO2")
_HYDRATE = re.compile(r"[·•*]\s*(\d*\.?\d*)\s*([A-Za-z0-9()]+)")


def _normalise_text(formula: str) -> str:
    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("formula is empty")
    text = formula.strip().replace(" ", "")

    def hydrate(m: re.Match[str]) -> str:
        n = m.group(1) or "1"
        return f"({m.group(2)}){n}"

    return _HYDRATE.sub(hydrate, text)


@lru_cache(maxsize=65536)
def composition(formula: str) -> dict[str, float]:
    """Element amounts per formula unit as written (hydrates expanded). Raises FormulaError."""
    from pymatgen.core import Composition, Element

    text = _normalise_text(formula)
    for symbol in re.findall(r"[A-Z][a-z]?", text):
        if not Element.is_valid_symbol(symbol):
            raise FormulaError(f"formula {formula!r}: {symbol!r} is not a chemical element")
    try:
        amounts = Composition(text).get_el_amt_dict()
    except Exception as exc:  # pymatgen raises several types for unreadable strings
        raise FormulaError(f"formula {formula!r} cannot be parsed: {exc}") from None
    amounts = {el: float(n) for el, n in amounts.items() if n > 1e-9}
    if not amounts:
        raise FormulaError(f"formula {formula!r} has no atoms")
    return amounts


@lru_cache(maxsize=65536)
def canonical(formula: str) -> str:
    """The reduced formula: the key under which a phase is compared, stored and looked up."""
    from pymatgen.core import Composition

    return Composition(composition(formula)).reduced_formula


def same_phase(a: str, b: str) -> bool:
    return canonical(a) == canonical(b)


@lru_cache(maxsize=65536)
def elements(formula: str) -> frozenset[str]:
    return frozenset(composition(formula))


@lru_cache(maxsize=65536)
def n_atoms(formula: str) -> float:
    return float(sum(composition(formula).values()))


@lru_cache(maxsize=65536)
def molar_mass(formula: str) -> float:
    """g/mol."""
    from pymatgen.core import Element

    return float(sum(Element(el).atomic_mass * n for el, n in composition(formula).items()))


@lru_cache(maxsize=65536)
def fractions(formula: str) -> dict[str, float]:
    comp = composition(formula)
    total = sum(comp.values())
    return {el: n / total for el, n in comp.items()}


def nonvolatile(formula: str) -> frozenset[str]:
    """Elements that cannot leave as an allowed gas (the cations, P, S, halogens...)."""
    return elements(formula) - VOLATILE_ELEMENTS


def is_gas(formula: str) -> bool:
    try:
        return canonical(formula) in _GAS_KEYS
    except FormulaError:
        return False


def weight_to_mole_fractions(weights: dict[str, float]) -> dict[str, float]:
    """Weight fractions of phases → fractions of atoms contributed by each phase (sums to 1)."""
    atoms = {p: w / molar_mass(p) * n_atoms(p) for p, w in weights.items() if w > 0}
    total = sum(atoms.values())
    return {p: a / total for p, a in atoms.items()} if total > 0 else {}


def composition_matrix(formulas: list[str], element_order: list[str]) -> np.ndarray:
    """Rows = elements, columns = formulas (amount per formula unit)."""
    mat = np.zeros((len(element_order), len(formulas)))
    index = {el: i for i, el in enumerate(element_order)}
    for j, f in enumerate(formulas):
        for el, n in composition(f).items():
            mat[index[el], j] = n
    return mat


_GAS_KEYS = frozenset(canonical(g) for g in GASES)
