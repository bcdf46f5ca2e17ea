"""A cached, planner-side view of the thermodynamic database (``labos.models.thermo``).

Why a view: the planner asks for the same Gibbs energies thousands of times per campaign, so every
value is memoised per (phase, kelvin). Phases the database does not know (a product name from the
literature, a new intermediate) get an *estimate* — the energy of the lowest-energy mixture of known
phases with the same composition (the convex hull at that composition, i.e. the phase is assumed to
be stable) — and are flagged so explanations and benchmarks can say which numbers are estimates.

Replay benchmarks perturb energies per seed (±25 meV/atom) to test robustness; ``noise_ev_per_atom``
adds a fixed, seed-determined Gaussian offset per phase.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from labos.planners.chemistry import VOLATILE_ELEMENTS, canonical, composition, elements, is_gas, n_atoms

from labos.errors import LabosError

# Partial-pressure reference states are the thermo package's business; the planner only asks.
ESTIMATE_FLOOR_EV_PER_ATOM = 0.0


class ThermoLike(Protocol):
    """The part of ``labos.models.thermo.ThermoDB`` the planner uses."""

    def has(self, formula: str) -> bool: ...

    def gibbs_formation_per_atom(
        self, formula: str, temperature_k: float, atmosphere: str = "air"
    ) -> float: ...


@dataclass(frozen=True)
class InterfaceProduct:
    """The most exergonic reaction of a precursor pair at one temperature (thermo prediction)."""

    products: dict[str, float]
    energy_per_atom: float


# Thermodynamic guesses for untested pairs are computed on a coarse temperature grid (kelvin): the
# ordering of interface products changes slowly with T, and each new (chemical system, T) costs a
# phase diagram, so a coarse grid keeps planning fast (see ThermoView.predicted_reaction).
PREDICTION_BUCKET_K = 100.0
# Atmospheres in which an interface product that is a pure element (a metal, carbon) would be oxidised
# at once; such predictions come from the closed two-phase hull and are discarded.
OXIDISING = frozenset({"air", "O2"})


# Noise-free energies shared by every view of the same database (replays build one view per seed).
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _offset(seed: int, key: str, sigma: float) -> float:
    if sigma <= 0:
        return 0.0
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return float(rng.normal(0.0, sigma))


class ThermoView:
    """Memoised Gibbs energies (eV) for the planner; never raises for a missing phase."""

    def __init__(
        self,
        thermo: ThermoLike | None,
        atmosphere: str = "air",
        noise_ev_per_atom: float = 0.0,
        seed: int = 0,
    ):
        self.thermo = thermo
        self.atmosphere = atmosphere
        self.noise = float(noise_ev_per_atom)
        self.seed = int(seed)
        self._g: dict[tuple[str, int], float] = {}
        self._has: dict[str, bool] = {}
        self._interfaces: dict[tuple[str, str, int], InterfaceProduct | None] = {}
        self._predicted: dict[tuple[tuple[str, ...], int], InterfaceProduct | None] = (
            self._shared_predictions()
        )
        self._known_pool: set[str] = set()
        self.estimated: set[str] = set()
        self._shared = self._shared_tables()

    def _shared_tables(self) -> tuple[dict[tuple[str, int], float], set[str]]:
        fresh: tuple[dict[tuple[str, int], float], set[str]] = ({}, set())
        if self.thermo is None:
            return fresh
        try:
            per_db = _SHARED.setdefault(self.thermo, {})
        except TypeError:  # not weak-referenceable: keep the tables per view
            return fresh
        return per_db.setdefault(self.atmosphere, fresh)

    def _shared_predictions(self) -> dict[tuple[tuple[str, ...], int], InterfaceProduct | None]:
        """Noise-free thermodynamic pair predictions, shared by every view of one database."""
        if self.thermo is None:
            return {}
        try:
            per_db = _SHARED.setdefault(self.thermo, {})
        except TypeError:
            return {}
        return per_db.setdefault(("predicted", self.atmosphere), {})

    @property
    def available(self) -> bool:
        return self.thermo is not None

    def with_noise(self, noise_ev_per_atom: float, seed: int) -> ThermoView:
        """A view over the same database with a different noise draw (shares nothing mutable)."""
        return ThermoView(self.thermo, self.atmosphere, noise_ev_per_atom, seed)

    # ------------------------------------------------------------------ lookups

    def has(self, formula: str) -> bool:
        key = canonical(formula)
        if key not in self._has:
            ok = False
            if self.thermo is not None:
                try:
                    ok = bool(self.thermo.has(key))
                except LabosError:
                    ok = False
            self._has[key] = ok
            if ok:
                self._known_pool.add(key)
        return self._has[key]

    def g_per_atom(self, formula: str, temperature_k: float) -> float:
        """ΔG_f(T) per atom (eV/atom), estimated when the database lacks the phase (see class doc)."""
        key = canonical(formula)
        tk = int(round(temperature_k))
        cached = self._g.get((key, tk))
        if cached is not None:
            return cached
        values, estimated = self._shared
        value = values.get((key, tk))
        if value is None:
            value = self._lookup(key, tk)
            if value is None:
                value = self._estimate(key, tk)
                estimated.add(key)
            values[(key, tk)] = value
        if key in estimated:
            self.estimated.add(key)
        value += _offset(self.seed, key, self.noise) if not is_gas(key) else 0.0
        self._g[(key, tk)] = value
        return value

    def g_per_fu(self, formula: str, temperature_k: float) -> float:
        return self.g_per_atom(formula, temperature_k) * n_atoms(canonical(formula))

    def is_estimated(self, formula: str) -> bool:
        key = canonical(formula)
        return key in self.estimated or (self.thermo is not None and not self.has(key) and not is_gas(key))

    def _lookup(self, key: str, tk: int) -> float | None:
        if self.thermo is None:
            return None
        if not self.has(key) and not is_gas(key):
            return None
        try:
            return float(self.thermo.gibbs_formation_per_atom(key, float(tk), atmosphere=self.atmosphere))
        except (LabosError, ValueError, KeyError):
            return None

    # ------------------------------------------------------------------ estimates

    def note_phases(self, formulas: Iterable[str]) -> None:
        """Phases worth considering when estimating unknown ones (inventory, observed products)."""
        for f in formulas:
            if self.has(f):
                self._known_pool.add(canonical(f))

    def _pool(self, els: frozenset[str], tk: int) -> list[str]:
        pool = {p for p in self._known_pool if elements(p) <= els}
        stable = getattr(self.thermo, "stable_phases", None)
        if stable is not None:
            try:
                for item in stable(sorted(els), float(tk)):
                    name = item if isinstance(item, str) else getattr(item, "formula", None)
                    name = name or getattr(getattr(item, "composition", None), "reduced_formula", None)
                    if name:
                        pool.add(canonical(str(name)))
            except (LabosError, ValueError, KeyError, TypeError, AttributeError):
                pass
        return sorted(p for p in pool if self.has(p))

    def _estimate(self, key: str, tk: int) -> float:
        """Energy of the cheapest mixture of known phases (and elements, ΔG=0) with this composition."""
        from scipy.optimize import linprog

        els = elements(key)
        pool = [p for p in self._pool(els, tk) if p != key]
        order = sorted(els)
        cols = [*pool, *order]
        a = np.zeros((len(order), len(cols)))
        cost = np.zeros(len(cols))
        for j, p in enumerate(cols):
            for el, n in composition(p).items():
                a[order.index(el), j] = n
            if j < len(pool):
                cost[j] = self.g_per_atom(p, tk) * n_atoms(p) if p in self._known_pool else 0.0
        b = np.array([composition(key)[el] for el in order])
        res = linprog(cost, A_eq=a, b_eq=b, bounds=(0, None), method="highs")
        total = float(res.fun) if res.status == 0 else 0.0
        return min(total / n_atoms(key), ESTIMATE_FLOOR_EV_PER_ATOM)

    # ------------------------------------------------------------------ reactions

    def reaction_energy(self, signed: dict[str, float], temperature_k: float, per_atoms: float) -> float:
        """ΔG of a reaction given as {phase: coefficient} (reactants negative), in eV per ``per_atoms``."""
        total = 0.0
        for phase, coeff in signed.items():
            total += coeff * self.g_per_fu(phase, temperature_k)
        return total / per_atoms

    @staticmethod
    def _interfaces_plain(fn, ka: str, kb: str, tk: int) -> list[Any]:
        try:
            return list(fn(ka, kb, float(tk)))
        except (LabosError, ValueError, KeyError, TypeError):
            return []

    def interface(self, a: str, b: str, temperature_k: float) -> InterfaceProduct | None:
        """Most exergonic product mixture of the pair (a, b) at T from the thermo database, cached."""
        ka, kb = sorted((canonical(a), canonical(b)))
        tk = int(round(temperature_k / 25.0) * 25)
        key = (ka, kb, tk)
        if key in self._interfaces:
            return self._interfaces[key]
        result: InterfaceProduct | None = None
        fn = getattr(self.thermo, "interface_reactions", None)
        if fn is not None:
            try:
                reactions: list[Any] = list(fn(ka, kb, float(tk), atmosphere=self.atmosphere))
            except TypeError:  # a database without atmospheres
                reactions = self._interfaces_plain(fn, ka, kb, tk)
            except (LabosError, ValueError, KeyError):
                reactions = []
            if reactions:
                best = min(reactions, key=lambda r: float(r.energy_per_atom))
                prods = {
                    canonical(p): float(n)
                    for p, n in dict(best.products).items()
                    if n > 1e-9 and not is_gas(p) and canonical(p) not in (ka, kb)
                }
                if prods and float(best.energy_per_atom) < 0:
                    result = InterfaceProduct(prods, float(best.energy_per_atom))
        self._interfaces[key] = result
        return result

    # ------------------------------------------------------------------ predictions for untested pairs

    def predicted_reaction(self, phases: tuple[str, ...], temperature_k: float) -> InterfaceProduct | None:
        """What thermodynamics expects an untested pair (or a single phase) to form at T (ARROWS3).

        A pair forms the products of its most exergonic interface reaction (any mixing ratio strictly
        between the two phases); a single phase decomposes to its hull products in the atmosphere.
        None when nothing is exergonic or the database cannot say. Products are solids only (gases
        and products made of volatile elements alone, e.g. carbon, are left out); the reactants
        themselves are never products. Cached per (phases, PREDICTION_BUCKET_K bucket), noise-free.
        """
        keys = tuple(sorted(canonical(p) for p in phases))
        if not 1 <= len(keys) <= 2 or self.thermo is None:
            return None
        tk = int(round(temperature_k / PREDICTION_BUCKET_K) * PREDICTION_BUCKET_K)
        cache_key = (keys, tk)
        if cache_key in self._predicted:
            return self._predicted[cache_key]
        result = self._predict_single(keys[0], tk) if len(keys) == 1 else self._predict_pair(*keys, tk)
        self._predicted[cache_key] = result
        return result

    @staticmethod
    def _solid_products(products: dict[str, float], reactants: tuple[str, ...]) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, n in products.items():
            try:
                key = canonical(name)
            except LabosError:
                continue
            if n <= 1e-9 or is_gas(key) or key in reactants or not (elements(key) - VOLATILE_ELEMENTS):
                continue
            out[key] = out.get(key, 0.0) + float(n)
        total = sum(out.values())
        return {k: v / total for k, v in out.items()} if total > 0 else {}

    def _predict_pair(self, ka: str, kb: str, tk: int) -> InterfaceProduct | None:
        fn = getattr(self.thermo, "interface_reactions", None)
        if fn is None or ka == kb:
            return None
        try:
            reactions: list[Any] = list(fn(ka, kb, float(tk), atmosphere=self.atmosphere))
        except TypeError:
            reactions = self._interfaces_plain(fn, ka, kb, tk)
        except (LabosError, ValueError, KeyError, ArithmeticError):
            reactions = []
        best: InterfaceProduct | None = None
        for r in reactions:
            x = float(getattr(r, "x", 0.5))
            energy = float(r.energy_per_atom)
            if not 1e-6 < x < 1 - 1e-6 or energy >= 0:
                continue  # an end point is a single phase decomposing, not an interface reaction
            if self.atmosphere in OXIDISING and any(
                len(elements(p)) == 1 and not is_gas(p) for p in r.products
            ):
                continue  # a metal (or carbon) cannot survive in air: the closed-pair hull misleads here
            prods = self._solid_products(dict(r.products), (ka, kb))
            if prods and (best is None or energy < best.energy_per_atom):
                best = InterfaceProduct(prods, energy)
        return best

    def _predict_single(self, key: str, tk: int) -> InterfaceProduct | None:
        fn = getattr(self.thermo, "stability", None)
        if fn is None or is_gas(key):
            return None
        try:
            info = fn(key, float(tk), self.atmosphere)
        except (LabosError, ValueError, KeyError, TypeError, ArithmeticError):
            return None
        e_hull = float(info.get("e_above_hull", 0.0))
        prods = self._solid_products(dict(info.get("decomposition") or {}), (key,))
        if e_hull <= 1e-6 or not prods:
            return None
        return InterfaceProduct(prods, -e_hull)
