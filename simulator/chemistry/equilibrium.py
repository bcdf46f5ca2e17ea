"""Which reaction a set of solids can undergo at T, from the thermodynamic data (small LPs).

The furnace is an open system: O, C, H and N leave or enter as O2, CO2, H2O and N2 at their partial
pressures in the atmosphere (Gibbs energies from :mod:`labos.models.thermo`). The right potential
for solids in contact with such reservoirs is the grand potential Φ = G − Σ μ_e·n_e over the open
elements e. For reactants R the most exergonic reaction is a linear programme::

    minimise   Σ_i p_i Φ_i − Σ_j r_j Φ_j            (eV, per atom of solid reactants)
    subject to Σ_i p_i A_ie = Σ_j r_j A_je          for every closed (non-gas) element e
               Σ_j r_j N_j = 1,  r_j N_j ≥ share,   p, r ≥ 0

whose optimum is a vertex: the pairwise interface reaction at its most exergonic mixing ratio
(what ARROWS3 and the A-Lab assume forms first), or, for one reactant, its decomposition. A pair
"reaction" that only decomposes one reactant (nothing gained from the contact) is not a pair
reaction and is rejected. A
reactant's own open elements only are open for the products (a carbonate may release CO2; an
oxide pair does not pick up CO2 from the air — uptake from air is not modelled). Results are
cached per (reactants, temperature bucket, atmosphere, excluded products).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from labos.errors import LabosError

from .phases import OPEN_ELEMENT_GAS, Phase, make_phase

TINY = 1e-9


class ChemistryError(LabosError, ValueError):
    """A phase or chemistry the world cannot simulate (names the phase and the reason)."""


@dataclass(frozen=True)
class Reaction:
    """A balanced reaction in formula units (reactants consumed, products formed).

    ``gases`` are moles of gas released (negative: taken up) per the same reaction extent.
    ``driving_force`` is −ΔΦ in eV per atom of solid reactants (positive = exergonic);
    ``interaction`` is the part of it a pair adds beyond each reactant decomposing on its own
    (equal to ``driving_force`` for a single-phase reaction) — the driving force that forms the
    new phase, which the world's kinetic gate uses.
    """

    reactants: tuple[tuple[str, float], ...]
    products: tuple[tuple[str, float], ...]
    gases: tuple[tuple[str, float], ...]
    driving_force: float
    interaction: float = 0.0

    @property
    def main_product(self) -> str | None:
        """The product formed in the largest number of atoms."""
        if not self.products:
            return None
        return max(self.products, key=lambda kv: kv[1] * make_phase(kv[0]).atoms)[0]

    def equation(self, names: Mapping[str, str] | None = None) -> str:
        names = names or {}

        def side(items) -> str:
            return " + ".join(f"{v:.3g} {names.get(k, make_phase(k).name)}" for k, v in items if v > TINY)

        gas_out = [(g, v) for g, v in self.gases if v > TINY]
        gas_in = [(g, -v) for g, v in self.gases if v < -TINY]
        lhs = side(self.reactants) + ("" if not gas_in else " + " + side(gas_in))
        rhs = side(self.products) + ("" if not gas_out else " + " + side(gas_out))
        return f"{lhs} -> {rhs}"


_VIEWS: dict[tuple[int, tuple[str, ...] | None], tuple[object, ThermoView]] = {}


def shared_view(db, allowed_phases: Iterable[str] | None = None) -> ThermoView:
    """One cached view per (database, allowed phases): thermodynamics do not depend on a world's
    seed, so worlds of many seeds share the same warm caches."""
    allowed = None if allowed_phases is None else tuple(sorted({make_phase(p).key for p in allowed_phases}))
    key = (id(db), allowed)
    hit = _VIEWS.get(key)
    if hit is not None and hit[0] is db:
        return hit[1]
    view = ThermoView(db, allowed)
    _VIEWS[key] = (db, view)
    return view


class ThermoView:
    """The thermodynamic data the world needs, cached: candidate phases and grand potentials."""

    def __init__(self, db, allowed_phases: Iterable[str] | None = None, temperature_step_k: float = 25.0):
        self.db = db
        self.allowed = None if allowed_phases is None else {make_phase(p).key for p in allowed_phases}
        self.step_k = float(temperature_step_k)
        self._candidates = lru_cache(maxsize=4096)(self._candidates_uncached)
        self._phi = lru_cache(maxsize=200_000)(self._phi_uncached)
        self._mu = lru_cache(maxsize=10_000)(self._mu_uncached)
        self._best = lru_cache(maxsize=200_000)(self._best_uncached)
        self._equil = lru_cache(maxsize=50_000)(self._equilibrium_uncached)

    # ---------------------------------------------------------------- data
    def bucket(self, temperature_k: float) -> float:
        """Temperatures are quantised to ``step_k`` for thermodynamics (kinetics use the exact T)."""
        return min(max(round(temperature_k / self.step_k) * self.step_k, 300.0), 2000.0)

    def has(self, formula: str) -> bool:
        key = make_phase(formula).key
        if self.allowed is not None and key not in self.allowed:
            return False
        return bool(self.db.has(key))

    def _candidates_uncached(self, elements: frozenset[str]) -> tuple[Phase, ...]:
        out = []
        for entry in self.db.chemsys_entries(elements):
            p = make_phase(entry.formula)
            if len(p.elements) == 1 and p.elements <= set(OPEN_ELEMENT_GAS):
                continue  # solid O, C, H, N references are not products
            if self.allowed is not None and p.key not in self.allowed:
                continue
            out.append(p)
        return tuple(sorted(out, key=lambda p: p.key))

    def candidates(self, elements: frozenset[str]) -> tuple[Phase, ...]:
        """Solid phases whose elements all lie in ``elements`` (restricted to the allowed list)."""
        return self._candidates(frozenset(elements))

    def _mu_uncached(self, t: float, atmosphere: str) -> tuple[tuple[str, float], ...]:
        g = self.db.gibbs_formation
        mu_o = g("O2", t, atmosphere) / 2.0
        mu = {"O": mu_o}
        mu["C"] = g("CO2", t, atmosphere) - 2.0 * mu_o
        mu["H"] = (g("H2O", t, atmosphere) - mu_o) / 2.0
        mu["N"] = g("N2", t, atmosphere) / 2.0
        return tuple(sorted(mu.items()))

    def mu(self, t: float, atmosphere: str) -> dict[str, float]:
        """Chemical potential (eV/atom) of each open element, set by its carrier gas."""
        return dict(self._mu(t, atmosphere))

    def _phi_uncached(self, key: str, t: float, atmosphere: str, open_elements: frozenset[str]) -> float:
        p = make_phase(key)
        g = float(self.db.gibbs_formation(key, t, atmosphere)) if len(p.elements) > 1 else 0.0
        mu = self.mu(t, atmosphere)
        return g - sum(a * mu[e] for e, a in p.amounts if e in open_elements)

    def phi(self, key: str, t: float, atmosphere: str, open_elements: frozenset[str]) -> float:
        """Grand potential of one formula unit (eV) with ``open_elements`` exchanged with the gas."""
        return self._phi(key, t, atmosphere, open_elements)

    # ---------------------------------------------------------------- reactions
    def best_reaction(
        self,
        reactants: tuple[str, ...],
        temperature_k: float,
        atmosphere: str,
        exclude: frozenset[str] = frozenset(),
        min_share: float = 0.1,
    ) -> Reaction | None:
        """The most exergonic reaction of ``reactants`` (1 or 2 phase keys), or None if none is."""
        return self._best(
            tuple(reactants), self.bucket(temperature_k), str(atmosphere), frozenset(exclude), min_share
        )

    def _best_uncached(
        self, reactants: tuple[str, ...], t: float, atmosphere: str, exclude: frozenset[str], min_share: float
    ) -> Reaction | None:
        from scipy.optimize import linprog

        rphases = [make_phase(k) for k in reactants]
        all_el = frozenset().union(*(p.elements for p in rphases))
        open_el = frozenset(e for e in all_el if e in OPEN_ELEMENT_GAS) | {"O"}
        closed = sorted(all_el - open_el)
        if not closed:
            return None
        banned = set(reactants) | set(exclude)
        prods = [p for p in self.candidates(all_el | open_el) if p.key not in banned]
        if not prods:
            return None
        nr, npd = len(rphases), len(prods)
        cost = np.array(
            [-self.phi(p.key, t, atmosphere, open_el) for p in rphases]
            + [self.phi(p.key, t, atmosphere, open_el) for p in prods]
        )
        a_eq = np.zeros((len(closed) + 1, nr + npd))
        for i, e in enumerate(closed):
            for j, p in enumerate(rphases):
                a_eq[i, j] = -p.amount(e)
            for j, p in enumerate(prods):
                a_eq[i, nr + j] = p.amount(e)
        a_eq[-1, :nr] = [p.atoms for p in rphases]
        b_eq = np.zeros(len(closed) + 1)
        b_eq[-1] = 1.0
        share = min_share if nr > 1 else 1.0
        bounds = [(share / p.atoms, None) for p in rphases] + [(0, None)] * npd
        res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status != 0 or res.fun > -1e-6:
            return None
        x = res.x
        drive = -float(res.fun)
        interaction = drive
        if nr > 1:  # what the pair adds beyond each reactant decomposing on its own
            for j, p in enumerate(rphases):
                alone = self._best((p.key,), t, atmosphere, frozenset(), 1.0)
                if alone is not None:
                    interaction -= x[j] * p.atoms * alone.driving_force
            if interaction < 1e-4:
                return None
        return self._reaction(rphases, prods, x, drive, open_el, interaction)

    @staticmethod
    def _reaction(
        rphases: list[Phase], prods: list[Phase], x: np.ndarray, drive: float, open_el, interaction: float
    ) -> Reaction:
        nr = len(rphases)
        x = _polish(rphases, prods, np.array(x, dtype=float))
        reac = tuple((p.key, float(x[j])) for j, p in enumerate(rphases) if x[j] > TINY)
        prod = tuple((p.key, float(x[nr + j])) for j, p in enumerate(prods) if x[nr + j] > TINY)
        released = {e: 0.0 for e in OPEN_ELEMENT_GAS}
        for k, v in reac:
            for e, a in make_phase(k).amounts:
                if e in released:
                    released[e] += a * v
        for k, v in prod:
            for e, a in make_phase(k).amounts:
                if e in released:
                    released[e] -= a * v
        gases = {"CO2": released["C"], "H2O": released["H"] / 2.0, "N2": released["N"] / 2.0}
        gases["O2"] = (released["O"] - 2.0 * gases["CO2"] - gases["H2O"]) / 2.0
        return Reaction(
            reac, prod, tuple((g, v) for g, v in gases.items() if abs(v) > TINY), drive, interaction
        )

    def equilibrium(
        self,
        composition: Mapping[str, float],
        temperature_k: float,
        atmosphere: str,
        open_elements: Iterable[str],
    ) -> dict[str, float]:
        """Stable assemblage (formula units per unit of ``composition``) of a closed-element
        composition with ``open_elements`` exchanged with the gas; used for residues (e.g. what is
        left when a volatile oxide evaporates from a ternary phase)."""
        open_el = frozenset(open_elements) | {"O"}
        closed = {e: float(a) for e, a in composition.items() if e not in open_el and a > TINY}
        total = sum(closed.values())
        if total <= 0:
            return {}
        comp = tuple(sorted((e, round(a / total, 6)) for e, a in closed.items()))
        return {
            k: v * total for k, v in self._equil(comp, self.bucket(temperature_k), str(atmosphere), open_el)
        }

    def _equilibrium_uncached(self, comp, t, atmosphere, open_el) -> tuple[tuple[str, float], ...]:
        from scipy.optimize import linprog

        if not comp:
            return ()
        closed = [e for e, _ in comp]
        prods = self.candidates(frozenset(closed) | open_el)
        if not prods:
            raise ChemistryError(f"no phase in the thermodynamic data holds {'-'.join(closed)}")
        cost = np.array([self.phi(p.key, t, atmosphere, open_el) for p in prods])
        a_eq = np.array([[p.amount(e) for p in prods] for e in closed])
        b_eq = np.array([a for _, a in comp])
        res = linprog(cost, A_eq=a_eq, b_eq=b_eq, bounds=[(0, None)] * len(prods), method="highs")
        if res.status != 0:
            raise ChemistryError(
                f"composition {dict(comp)} has no stable assemblage in the thermodynamic data"
            )
        return tuple((p.key, float(v)) for p, v in zip(prods, res.x, strict=True) if v > TINY)


def _polish(rphases: list[Phase], prods: list[Phase], x: np.ndarray) -> np.ndarray:
    """Make the LP's products balance the closed elements exactly (the LP meets them to ~1e-7),
    so that mass is conserved to rounding error over many reaction steps."""
    nr = len(rphases)
    active = [j for j in range(len(prods)) if x[nr + j] > TINY]
    if not active:
        return x
    elements = sorted(
        {e for p in rphases for e in p.elements} - set(OPEN_ELEMENT_GAS)
        | {e for j in active for e in prods[j].elements} - set(OPEN_ELEMENT_GAS)
    )
    a = np.array([[prods[j].amount(e) for j in active] for e in elements])
    b = np.array([sum(x[i] * p.amount(e) for i, p in enumerate(rphases)) for e in elements])
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)
    if (
        np.all(sol > 0)
        and np.allclose(a @ sol, b, rtol=0, atol=1e-12)
        and np.allclose(sol, x[nr + np.array(active)], atol=1e-5)
    ):
        x = x.copy()
        x[nr + np.array(active)] = sol
    return x
