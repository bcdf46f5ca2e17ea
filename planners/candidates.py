"""Candidate precursor sets: every combination of inventory precursors that balances to the target.

Each set comes with its balanced reaction (allowed gaseous byproducts O2, CO2, H2O, NH3, N2, NO2)
and the masses to weigh for a batch of product (A-Lab style: ~1–2 g).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from labos.planners.balance import Balanced, balance, balance_any
from labos.planners.chemistry import VOLATILE_ELEMENTS, canonical, elements, molar_mass, nonvolatile
from labos.planners.errors import InfeasibleTargetError

from labos.domain import Precursor

DEFAULT_BATCH_MG = 1500.0


@dataclass(frozen=True)
class CandidateSet:
    """One balanced precursor set with the masses for ``batch_mg`` of product."""

    target: str
    precursors: tuple[str, ...]  # as named in the inventory, sorted by canonical formula
    reaction: Balanced | None  # None: the set cannot make the target at all (kept for replays)
    masses_mg: dict[str, float]
    batch_mg: float
    unique: bool = True  # False: the set has interchangeable sources and a chosen (even) split

    @cached_property
    def key(self) -> tuple[str, ...]:
        return tuple(canonical(p) for p in self.precursors)

    @property
    def size(self) -> int:
        return len(self.precursors)

    @cached_property
    def pairs(self) -> list[tuple[str, str]]:
        return list(itertools.combinations(self.key, 2))


def _as_precursors(inventory: Iterable[Precursor | str]) -> list[Precursor]:
    out: list[Precursor] = []
    for item in inventory:
        out.append(item if isinstance(item, Precursor) else Precursor(formula=str(item)))
    return out


def set_key(precursors: Iterable[str]) -> tuple[str, ...]:
    """Order-free identity of a precursor set (compositions, not strings)."""
    return tuple(sorted(canonical(p) for p in precursors))


def masses_for(reaction: Balanced, target: str, batch_mg: float, purity: dict[str, float] | None = None):
    """mg of each reactant for ``batch_mg`` of target (coefficients are per formula unit of target)."""
    mmol = batch_mg / molar_mass(target) / reaction.products.get(target, 1.0)
    purity = purity or {}
    return {p: round(c * mmol * molar_mass(p) / purity.get(p, 1.0), 2) for p, c in reaction.reactants.items()}


def make_candidate(
    target: str,
    precursors: Sequence[str],
    batch_mg: float = DEFAULT_BATCH_MG,
    atmosphere: str = "air",
    purity: dict[str, float] | None = None,
    allow_nonunique: bool = False,
) -> CandidateSet | None:
    """The candidate for exactly these precursors, or None when they do not balance (uniquely).

    ``allow_nonunique`` accepts sets with interchangeable sources (a split is chosen, see
    :func:`planners.balance.balance_any`); used for sets a person or a dataset chose.
    """
    ordered = tuple(sorted(precursors, key=canonical))
    reaction = balance(ordered, target, atmosphere)
    unique = reaction is not None
    if reaction is None and allow_nonunique:
        reaction = balance_any(ordered, target, atmosphere)
        if reaction is None:
            return CandidateSet(target, ordered, None, {}, batch_mg, unique=False)
    if reaction is None:
        return None
    return CandidateSet(
        target=target,
        precursors=ordered,
        reaction=reaction,
        masses_mg=masses_for(reaction, target, batch_mg, purity),
        batch_mg=batch_mg,
        unique=unique,
    )


def check_elements(target: str, inventory: Iterable[Precursor | str]) -> None:
    """Raise InfeasibleTargetError naming each target element no precursor supplies."""
    supplied = frozenset().union(*(elements(p.formula) for p in _as_precursors(inventory)))
    missing = sorted(nonvolatile(target) - supplied)
    if missing:
        raise InfeasibleTargetError(
            f"target {target} needs {', '.join(missing)}, which no precursor in the inventory supplies"
        )


def enumerate_sets(
    target: str,
    inventory: Iterable[Precursor | str],
    max_size: int | None = None,
    batch_mg: float = DEFAULT_BATCH_MG,
    atmosphere: str = "air",
) -> list[CandidateSet]:
    """Every set of 1..max_size inventory precursors that balances uniquely to ``target``.

    ``max_size`` defaults to the number of non-volatile target elements + 1 (at most 5). Sets whose
    masses exceed the stock on hand are left out. Raises InfeasibleTargetError when a target element
    is missing from the inventory or when no set balances.
    """
    stock = _as_precursors(inventory)
    if not stock:
        raise InfeasibleTargetError(f"the inventory is empty: nothing can make {target}")
    check_elements(target, stock)
    tgt_el = nonvolatile(target)
    allowed = elements(target) | VOLATILE_ELEMENTS
    usable: dict[str, Precursor] = {}
    for p in stock:
        own = nonvolatile(p.formula)
        if own and own <= tgt_el and elements(p.formula) <= allowed:
            usable.setdefault(canonical(p.formula), p)  # one entry per composition
    if max_size is None:
        max_size = min(len(tgt_el) + 1, 5)
    names = sorted(usable)
    out: list[CandidateSet] = []
    for size in range(1, max_size + 1):
        for combo in itertools.combinations(names, size):
            if frozenset().union(*(nonvolatile(c) for c in combo)) != tgt_el:
                continue
            precs = [usable[c].formula for c in combo]
            purity = {usable[c].formula: usable[c].purity for c in combo}
            cand = make_candidate(target, precs, batch_mg, atmosphere, purity)
            if cand is None:
                continue
            if any(cand.masses_mg[usable[c].formula] > usable[c].available_mg for c in combo):
                continue
            out.append(cand)
    if not out:
        raise InfeasibleTargetError(
            f"no set of up to {max_size} precursors from the inventory balances to {target} "
            f"(usable precursors: {', '.join(usable[n].formula for n in names) or 'none'})"
        )
    return out
