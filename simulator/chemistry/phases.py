"""Phases as the world tracks them: canonical key, display name, element amounts and molar mass.

The canonical key of a phase is pymatgen's reduced formula (``Zn(FeO2)2``), so that ``ZnFe2O4``
and ``Zn(FeO2)2`` are one phase; the display name is what a chemist writes (``ZnFe2O4``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

from labos.domain import parse_formula

#: Elements that leave or enter the solid as gases, and the gas that carries each.
OPEN_ELEMENT_GAS: dict[str, str] = {"O": "O2", "C": "CO2", "H": "H2O", "N": "N2"}


@dataclass(frozen=True)
class Phase:
    """One solid phase: amounts per formula unit of its reduced formula."""

    key: str
    name: str
    amounts: tuple[tuple[str, float], ...]
    atoms: float
    molar_mass: float  # g/mol per formula unit (= mg per mmol)

    @cached_property
    def elements(self) -> frozenset[str]:
        return frozenset(e for e, _ in self.amounts)

    @cached_property
    def _amount_map(self) -> dict[str, float]:
        return dict(self.amounts)

    def amount(self, element: str) -> float:
        return self._amount_map.get(element, 0.0)


def compact_formula(formula: str) -> str:
    """A chemist's formula without pymatgen's grouping: ``Zn(FeO2)2`` → ``ZnFe2O4``."""
    from pymatgen.core import Composition

    comp = Composition(formula).reduced_composition
    parts = []
    for token in comp.formula.split():
        el = token.rstrip("0123456789.")
        num = token[len(el) :]
        parts.append(el if num in ("1", "") else el + num)
    return "".join(parts)


@lru_cache(maxsize=8192)
def phase_key(formula: str) -> str:
    """Canonical key (pymatgen reduced formula); raises FormulaError for a bad formula."""
    return parse_formula(formula)


@lru_cache(maxsize=8192)
def make_phase(formula: str, name: str | None = None) -> Phase:
    """Phase for a formula; ``name`` overrides the display name."""
    from pymatgen.core import Composition

    key = phase_key(formula)
    comp = Composition(key)
    amounts = tuple(sorted((str(e), float(a)) for e, a in comp.get_el_amt_dict().items()))
    return Phase(
        key=key,
        name=name or compact_formula(key),
        amounts=amounts,
        atoms=float(comp.num_atoms),
        molar_mass=float(comp.weight),
    )
