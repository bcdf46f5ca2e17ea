"""Balancing reactions with open gases, and parsing reaction strings.

Balancing is a small linear programme: element conservation, the first product fixed at 1, every
listed reactant consumed and every listed product formed (at least ``MIN_AMOUNT``), and gases of the
atmosphere free to be taken up or released; among the balances that satisfy this, the one that
moves the fewest moles of gas is chosen (e.g. nitrates release NO2 + O2, not N2 + O2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict

from labos.domain import GASES, parse_formula
from labos.errors import LabosError

MIN_AMOUNT = 1e-3  # smallest amount of a listed species, per formula unit of the first product
_COEFF = re.compile(r"^\s*(\d+(?:\.\d+)?|\d*\.\d+)\s*(?=[A-Z(\[])")


class ReactionError(LabosError, ValueError):
    """A reaction that cannot be balanced or parsed; the message names the species or element."""


class BalancedReaction(BaseModel):
    """Coefficients per formula unit: reactants negative, products positive, first product = 1."""

    model_config = ConfigDict(frozen=True)

    coefficients: dict[str, float]
    equation: str

    @property
    def reactants(self) -> dict[str, float]:
        return {k: -v for k, v in self.coefficients.items() if v < 0}

    @property
    def products(self) -> dict[str, float]:
        return {k: v for k, v in self.coefficients.items() if v > 0}


def _fmt(c: float) -> str:
    c = abs(c)
    if abs(c - 1) < 1e-9:
        return ""
    if abs(c - round(c)) < 1e-6:
        return f"{round(c):d} "
    return f"{c:.4g} "


def format_equation(coefficients: dict[str, float]) -> str:
    lhs = " + ".join(f"{_fmt(v)}{k}" for k, v in coefficients.items() if v < 0)
    rhs = " + ".join(f"{_fmt(v)}{k}" for k, v in coefficients.items() if v > 0)
    return f"{lhs} -> {rhs}"


def parse_reaction(text: str) -> tuple[list[str], list[str]]:
    """Split ``"BaCO3 + TiO2 -> BaTiO3 + CO2"`` into reactant and product formulas (coefficients in
    the text are dropped: the reaction is balanced again)."""
    if not isinstance(text, str) or not text.strip():
        raise ReactionError("reaction is empty")
    parts = re.split(r"\s*(?:->|→|=>|=)\s*", text.strip())
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise ReactionError(f"reaction {text!r} must have the form 'A + B -> C + D'")

    def side(s: str) -> list[str]:
        out = []
        for term in re.split(r"\s+\+\s+|\s*\+\s*(?=[A-Z0-9(\[])", s):
            term = _COEFF.sub("", term).strip()
            if not term:
                raise ReactionError(f"reaction {text!r} has an empty term")
            out.append(parse_formula(term))
        return out

    return side(parts[0]), side(parts[1])


def _element_matrix(species: list[str]) -> tuple[list[str], np.ndarray]:
    from pymatgen.core import Composition

    comps = [Composition(s) for s in species]
    elements = sorted({str(e) for c in comps for e in c.elements})
    a = np.array([[c.get_el_amt_dict().get(el, 0.0) for c in comps] for el in elements])
    return elements, a


def balance(
    reactants: Iterable[str], products: Iterable[str], open_gases: Iterable[str] = GASES
) -> BalancedReaction:
    """Balance ``reactants -> products`` allowing the ``open_gases`` to enter or leave."""
    from scipy.optimize import linprog

    reac = [parse_formula(r) for r in reactants]
    prod = [parse_formula(p) for p in products]
    if not reac:
        raise ReactionError("a reaction needs at least one reactant")
    if not prod:
        raise ReactionError("a reaction needs at least one product")
    both = set(reac) & set(prod)
    if both:
        raise ReactionError(f"{', '.join(sorted(both))} is listed as both reactant and product")
    if len(set(reac)) != len(reac) or len(set(prod)) != len(prod):
        raise ReactionError("a species is listed twice on the same side")
    from pymatgen.core import Composition

    listed_elements = {str(e) for s in reac + prod for e in Composition(s).elements}
    gases = []
    for g in open_gases:
        g = parse_formula(g)
        if g in reac or g in prod:
            continue
        g_el = {str(e) for e in Composition(g).elements}
        if g_el <= listed_elements | {"O"} and (g_el - {"O"}) <= listed_elements:
            gases.append(g)
    species = reac + prod + gases
    elements, a = _element_matrix(species)
    nr, npr, ng = len(reac), len(prod), len(gases)
    # variables: x (signed, products positive) for reac+prod, then g+ and g- for each gas
    n = nr + npr + 2 * ng
    a_eq = np.zeros((len(elements) + 1, n))
    a_eq[: len(elements), : nr + npr] = a[:, : nr + npr]
    a_eq[: len(elements), nr + npr : nr + npr + ng] = a[:, nr + npr :]
    a_eq[: len(elements), nr + npr + ng :] = -a[:, nr + npr :]
    a_eq[-1, nr] = 1.0  # first product fixed at 1
    b_eq = np.zeros(len(elements) + 1)
    b_eq[-1] = 1.0
    cost = np.concatenate([np.zeros(nr + npr), np.ones(2 * ng)])

    def solve(min_amount: float):
        bounds = [(None, -min_amount)] * nr + [(min_amount, None)] * npr + [(0, None)] * (2 * ng)
        return linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")

    res = solve(MIN_AMOUNT)
    eq_text = f"{' + '.join(reac)} -> {' + '.join(prod)}"
    if res.status != 0:
        loose = solve(0.0)
        if loose.status == 0:
            idle = [s for s, v in zip(reac + prod, loose.x[: nr + npr], strict=True) if abs(v) < MIN_AMOUNT]
            raise ReactionError(
                f"{eq_text} can only be balanced without {', '.join(idle)}: it takes no part in the reaction"
            )
        missing = _unbalanceable_elements(reac, prod, gases)
        why = f" (element {', '.join(missing)} appears on one side only)" if missing else ""
        raise ReactionError(
            f"{eq_text} cannot be balanced{why} with the open gases {', '.join(gases) or 'none'}"
        )
    x = res.x
    coeffs: dict[str, float] = {}
    for s, v in zip(reac + prod, x[: nr + npr], strict=True):
        coeffs[s] = float(v)
    for i, g in enumerate(gases):
        v = float(x[nr + npr + i] - x[nr + npr + ng + i])
        if abs(v) > 1e-9:
            coeffs[g] = v
    coeffs = {k: (round(v, 10) if abs(v - round(v, 10)) < 1e-9 else v) for k, v in coeffs.items()}
    # reactant gases first on the left, product gases last on the right
    ordered = {k: v for k, v in coeffs.items() if v < 0} | {k: v for k, v in coeffs.items() if v > 0}
    return BalancedReaction(coefficients=ordered, equation=format_equation(ordered))


def _unbalanceable_elements(reac: list[str], prod: list[str], gases: list[str]) -> list[str]:
    from pymatgen.core import Composition

    left = {str(e) for s in reac for e in Composition(s).elements}
    right = {str(e) for s in prod for e in Composition(s).elements}
    gas = {str(e) for s in gases for e in Composition(s).elements}
    return sorted((left ^ right) - gas)
