"""One thermodynamic record per phase, whatever source it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from labos.domain import parse_formula

_SYMBOL = re.compile(r"[A-Z][a-z]?")


@dataclass(frozen=True)
class ThermoEntry:
    """Formation enthalpy (eV/atom, relative to the elements in their standard states) of one phase.

    ``source`` says where the number came from: ``exp`` (pymatgen's experimental table, 298 K),
    ``calc`` (pymatgen's embedded MP calculations, MP2020-corrected), ``mp`` (the MP summary file),
    ``gnome``, ``mp-api``, ``chgnet`` or ``model`` (composition-only estimate). ``is_estimate`` is
    True for model or potential estimates that no measurement or DFT calculation backs.
    """

    formula: str
    formation_enthalpy_per_atom: float
    source: str
    entry_id: str | None = None
    uncertainty_per_atom: float | None = None
    volume_per_atom: float | None = None
    is_estimate: bool = False
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @cached_property
    def composition(self):
        from pymatgen.core import Composition

        return Composition(self.formula).reduced_composition

    @cached_property
    def elements(self) -> frozenset[str]:
        # symbols straight from the formula text: ~50x faster than building a Composition
        return frozenset(_SYMBOL.findall(self.formula))

    @property
    def num_atoms(self) -> float:
        return float(self.composition.num_atoms)

    @property
    def formation_enthalpy(self) -> float:
        """eV per formula unit of the reduced formula."""
        return self.formation_enthalpy_per_atom * self.num_atoms


def make_entry(formula: str, formation_enthalpy_per_atom: float, source: str, **kw) -> ThermoEntry:
    """Validated constructor: ``formula`` is reduced; the energy must be finite."""
    import math

    reduced = parse_formula(formula)
    value = float(formation_enthalpy_per_atom)
    if not math.isfinite(value):
        raise ValueError(f"formation enthalpy of {formula} is not a finite number: {value}")
    return ThermoEntry(reduced, value, source, **kw)
