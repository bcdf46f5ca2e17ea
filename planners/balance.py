"""Balancing solid-state reactions: precursors (+ gas uptake) → product(s) + gaseous byproducts.

A precursor set is accepted only when the balance is unique and every precursor has a positive
coefficient: two interchangeable sources of the same element (Mn2O3 and MnO2 with free O2) have no
single recipe, so such sets are not proposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from labos.planners.chemistry import BYPRODUCT_GASES, composition, elements

# Atmospheres in which the sample may take up oxygen (in the others O2 can only be released).
OXIDISING = frozenset({"air", "O2"})
_TOL = 1e-6


@dataclass(frozen=True)
class Balanced:
    """``Σ reactants → products + Σ gases``: reactant coefficients > 0; gas coefficient > 0 = released."""

    reactants: dict[str, float]
    products: dict[str, float]
    gases: dict[str, float] = field(default_factory=dict)

    @property
    def equation(self) -> str:
        def fmt(c: float, f: str) -> str:
            return f if abs(c - 1) < 1e-9 else f"{c:.4g} {f}"

        left = [fmt(c, f) for f, c in self.reactants.items()]
        left += [fmt(-c, g) for g, c in self.gases.items() if c < -_TOL]
        right = [fmt(c, f) for f, c in self.products.items()]
        right += [fmt(c, g) for g, c in self.gases.items() if c > _TOL]
        return " + ".join(left) + " -> " + " + ".join(right)

    def signed(self) -> dict[str, float]:
        """Stoichiometry with reactants negative and products (incl. released gases) positive."""
        out: dict[str, float] = {}
        for f, c in self.reactants.items():
            out[f] = out.get(f, 0.0) - c
        for f, c in self.products.items():
            out[f] = out.get(f, 0.0) + c
        for g, c in self.gases.items():
            if abs(c) > _TOL:
                out[g] = out.get(g, 0.0) + c
        return out


def _eligible_gases(system: frozenset[str]) -> list[str]:
    return [g for g in BYPRODUCT_GASES if elements(g) <= system]


def balance(
    reactants: list[str] | tuple[str, ...],
    products: dict[str, float] | str,
    atmosphere: str = "air",
) -> Balanced | None:
    """Unique balance of ``reactants`` to ``products`` (fixed amounts) with allowed gases, else None."""
    prods = {products: 1.0} if isinstance(products, str) else dict(products)
    return _balance(tuple(reactants), tuple(sorted(prods.items())), atmosphere)


@lru_cache(maxsize=200_000)
def _balance(
    reactants: tuple[str, ...], products: tuple[tuple[str, float], ...], atmosphere: str
) -> Balanced | None:
    if not reactants or not products:
        return None
    target: dict[str, float] = {}
    for f, amount in products:
        for el, n in composition(f).items():
            target[el] = target.get(el, 0.0) + amount * n
    system = frozenset().union(*(elements(r) for r in reactants))
    if not set(target) - {"O"} <= system:
        return None  # an element of the product that no reactant supplies (O may come from air)
    gases = _eligible_gases(system | frozenset(target))
    if atmosphere not in OXIDISING and "O" not in system:
        gases = [g for g in gases if g != "O2"]
    order = sorted(system | frozenset(target) | {e for g in gases for e in elements(g)})
    index = {el: i for i, el in enumerate(order)}
    t = np.zeros(len(order))
    for el, n in target.items():
        t[index[el]] = n
    base = np.zeros((len(order), len(reactants)))
    for j, r in enumerate(reactants):
        for el, n in composition(r).items():
            base[index[el], j] = n
    scale = max(1.0, float(np.abs(t).max()))
    use = _independent(tuple(gases), tuple(order))
    g = np.zeros((len(order), len(use)))
    for j, gas in enumerate(use):
        for el, n in composition(gas).items():
            g[index[el], j] = -n
    a = np.hstack([base, g]) if use else base
    if np.linalg.matrix_rank(a, tol=1e-8) < a.shape[1]:
        return None  # two interchangeable sources: no unique recipe
    x, *_ = np.linalg.lstsq(a, t, rcond=None)
    if np.abs(a @ x - t).max() > 1e-6 * scale:
        return None
    coeff = x[: len(reactants)]
    if np.any(coeff <= _TOL):
        return None
    gas_coeff = {gas: float(c) for gas, c in zip(use, x[len(reactants) :], strict=True) if abs(c) > _TOL}
    if atmosphere not in OXIDISING and gas_coeff.get("O2", 0.0) < -_TOL:
        return None  # would need oxygen from an atmosphere that has none
    return Balanced(
        reactants={r: float(c) for r, c in zip(reactants, coeff, strict=True)},
        products=dict(products),
        gases=gas_coeff,
    )


@lru_cache(maxsize=1024)
def _independent(gases: tuple[str, ...], order: tuple[str, ...]) -> tuple[str, ...]:
    """The preferred gases that are linearly independent in element space (greedy, in preference order).

    With H, N and O present, O2 + H2O + NH3 already span every N/H/O exchange, so N2 and NO2 are not
    added: the balance stays unique and uses the usual decomposition gases.
    """
    index = {el: i for i, el in enumerate(order)}
    chosen: list[str] = []
    cols: list[np.ndarray] = []
    for gas in gases:
        v = np.zeros(len(order))
        for el, n in composition(gas).items():
            v[index[el]] = n
        trial = np.column_stack([*cols, v])
        if np.linalg.matrix_rank(trial, tol=1e-8) == len(cols) + 1:
            chosen.append(gas)
            cols.append(v)
    return tuple(chosen)


def balance_any(
    reactants: list[str] | tuple[str, ...], product: str, atmosphere: str = "air"
) -> Balanced | None:
    """Some balance when no unique one exists (interchangeable sources): the least-norm solution.

    Used only for precursor sets someone else chose (a replay dataset, an operator's recipe), so that
    masses and energies still exist; every reactant must keep a positive share.
    """
    exact = balance(reactants, product, atmosphere)
    if exact is not None:
        return exact
    from scipy.optimize import linprog

    system = frozenset().union(*(elements(r) for r in reactants))
    target = composition(product)
    if not set(target) - {"O"} <= system:
        return None
    gases = _independent(
        tuple(_eligible_gases(system | frozenset(target))), tuple(sorted(system | set(target)))
    )
    order = sorted(system | frozenset(target) | {e for g in gases for e in elements(g)})
    index = {el: i for i, el in enumerate(order)}
    cols = [*reactants, *gases]
    a = np.zeros((len(order), len(cols)))
    for j, f in enumerate(cols):
        sign = 1.0 if j < len(reactants) else -1.0
        for el, n in composition(f).items():
            a[index[el], j] = sign * n
    t = np.array([target.get(el, 0.0) for el in order])
    x0, *_ = np.linalg.lstsq(a, t, rcond=None)
    if np.abs(a @ x0 - t).max() > 1e-6 * max(1.0, float(np.abs(t).max())):
        return None
    from scipy.linalg import null_space

    null = null_space(a)
    nr = len(reactants)
    x = x0
    if null.size:  # spread the contested element evenly: least squares on the reactant coefficients
        z, *_ = np.linalg.lstsq(null[:nr], -x0[:nr], rcond=None)
        x = x0 + null @ z
    if np.all(x[:nr] > _TOL) and not (
        atmosphere not in OXIDISING and "O2" in gases and x[nr + list(gases).index("O2")] < -_TOL
    ):
        return Balanced(
            reactants={r: float(c) for r, c in zip(reactants, x[:nr], strict=True)},
            products={product: 1.0},
            gases={g: float(c) for g, c in zip(gases, x[nr:], strict=True) if abs(c) > _TOL},
        )
    floor = 0.02  # every precursor contributes at least a little
    bounds = [(floor, None)] * len(reactants) + [(None, None)] * len(gases)
    if atmosphere not in OXIDISING and "O2" in gases:
        bounds[len(reactants) + list(gases).index("O2")] = (0, None)
    res = linprog(
        np.r_[np.ones(len(reactants)), np.zeros(len(gases))], A_eq=a, b_eq=t, bounds=bounds, method="highs"
    )
    if res.status != 0:
        return None
    x = res.x
    return Balanced(
        reactants={r: float(c) for r, c in zip(reactants, x[: len(reactants)], strict=True)},
        products={product: 1.0},
        gases={g: float(c) for g, c in zip(gases, x[len(reactants) :], strict=True) if abs(c) > _TOL},
    )
