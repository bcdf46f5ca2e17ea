"""ThermoDB: formation energies from several sources, indexed by chemical system, with Gibbs
energies at temperature, phase diagrams, energies above hull, balanced reactions, reaction
energies and pairwise interface reactions. All temperatures in kelvin, energies in eV.

The planner and the simulator call these methods thousands of times: Gibbs energies and phase
diagrams are memoised per (formula | chemical system, temperature, atmosphere).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from itertools import combinations

from pydantic import BaseModel, ConfigDict

from labos.domain import GASES, parse_formula
from labos.errors import DataMissingError

from . import atmosphere as atm
from . import gibbs
from .entries import ThermoEntry
from .reactions import BalancedReaction, ReactionError, balance, format_equation
from .volume import estimate_volume_per_atom

Atmos = str | Mapping[str, float]
_PD_CACHE_SIZE = 512


class ReactionEnergy(BaseModel):
    """ΔG of a balanced reaction at ``temperature_k``: per atom (of all species on one side,
    gases included) and per formula unit of the first product (eV)."""

    model_config = ConfigDict(frozen=True)

    per_atom: float
    per_formula_unit: float
    equation: str
    coefficients: dict[str, float]
    temperature_k: float
    estimated: bool = False  # an energy comes from the composition model (no source covers it)
    volume_estimated: bool = False  # a solid's G^δ(T) used an estimated volume (no structure known)


class InterfaceReaction(BaseModel):
    """Most stable products of mixing ``a`` and ``b`` at atom fraction ``x`` of ``a`` (gases of the
    atmosphere may leave). ``products`` are atom fractions of each product phase (sum 1);
    ``energy_per_atom`` is ΔG of the reaction per atom of the mixture (eV/atom, < 0)."""

    model_config = ConfigDict(frozen=True)

    x: float
    products: dict[str, float]
    energy_per_atom: float
    equation: str
    coefficients: dict[str, float]


class GibbsEnergy(BaseModel):
    model_config = ConfigDict(frozen=True)

    formula: str
    temperature_k: float
    per_formula_unit: float
    per_atom: float
    phase: str  # "solid" | "gas" | "element"
    source: str
    volume_estimated: bool = False
    is_estimate: bool = False


def _key_t(temperature_k: float) -> float:
    return round(gibbs.check_temperature(temperature_k), 2)


def _atm_from_key(key: tuple) -> Atmos:
    if len(key) == 1 and isinstance(key[0], str):
        return key[0]
    return dict(key)


class ThermoDB:
    """Formation energies of phases from ordered sources; the first source covering a formula wins.

    Within one source the lowest-energy polymorph of each reduced formula is kept.

    Anchoring (on by default when ``exp`` is the first of several sources): a DFT phase that the
    experiments do not cover gets ΔH_DFT + Σ_j f_j (ΔH_exp,j − ΔH_DFT,j), the f_j being the atom
    fractions of the phases with both values it decomposes into on the DFT hull. Its energy
    relative to measured neighbours then comes from DFT (accurate for such reaction energies)
    while the neighbours keep their measured values; mixing raw MP2020 energies with measured
    ones instead shifts, e.g., every Ti oxide by the 0.24 eV/atom by which MP2020 over-binds TiO2.
    """

    def __init__(
        self,
        entries: Iterable[ThermoEntry] = (),
        *,
        volumes: Mapping[str, float] | None = None,
        estimator=None,
        sources: Iterable[str] = (),
        anchor: bool | None = None,
    ):
        self.sources = list(sources)
        self.estimator = estimator
        self._entries: dict[str, ThermoEntry] = {}
        self._dft_twin: dict[str, float] = {}  # formula -> DFT energy/atom of a phase measured too
        rank: dict[str, int] = {}
        order = {name: i for i, name in enumerate(self.sources)}
        entries = list(entries)
        for e in entries:
            if e.source not in _NOT_DFT and not gibbs.is_gas(e.formula):
                cur_twin = self._dft_twin.get(e.formula)
                if cur_twin is None or e.formation_enthalpy_per_atom < cur_twin:
                    self._dft_twin[e.formula] = e.formation_enthalpy_per_atom
        for e in entries:
            if gibbs.is_gas(e.formula):
                continue
            r = order.get(e.source, len(order))
            cur = self._entries.get(e.formula)
            if (
                cur is None
                or r < rank[e.formula]
                or (r == rank[e.formula] and e.formation_enthalpy_per_atom < cur.formation_enthalpy_per_atom)
            ):
                self._entries[e.formula] = e
                rank[e.formula] = r
        self._dft_twin = {
            f: v for f, v in self._dft_twin.items() if f in self._entries and self._entries[f].source == "exp"
        }
        if anchor is None:
            anchor = len(self.sources) > 1 and self.sources[0] == "exp"
        self._anchor = bool(anchor) and bool(self._dft_twin)
        self._anchored: dict[str, ThermoEntry] = {}
        self._ref_pd: dict[frozenset[str], object] = {}
        self._by_chemsys: dict[frozenset[str], list[ThermoEntry]] = {}
        for e in self._entries.values():
            self._by_chemsys.setdefault(e.elements, []).append(e)
        self._volumes = dict(volumes or {})
        self._estimates: dict[str, ThermoEntry] = {}
        self._pd_cache: OrderedDict = OrderedDict()
        self._gibbs = lru_cache(maxsize=500_000)(self._gibbs_uncached)
        self._reaction_cache = lru_cache(maxsize=200_000)(self._reaction_energy_uncached)
        self._balance_cache = lru_cache(maxsize=200_000)(self._balance_uncached)
        self._iface_cache = lru_cache(maxsize=100_000)(self._interface_uncached)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_sources(cls, sources: Iterable, *, estimator=None, anchor: bool | None = None) -> ThermoDB:
        """Build from sources in priority order: names ("exp", "calc", "mp", "embedded"), paths
        (summary CSV, CIF folder, ``chgnet:FOLDER``) or Source objects. CIF folders contribute
        volumes. ``anchor``: see the class docstring (default: on when "exp" comes first)."""
        from .sources import CIFFolderSource, resolve_source

        entries: list[ThermoEntry] = []
        volumes: dict[str, float] = {}
        names = []
        for spec in sources:
            src = resolve_source(spec)
            names.append(src.name)
            entries.extend(src.load())
            if isinstance(src, CIFFolderSource):
                for rec in src.structures():
                    volumes.setdefault(rec.formula, rec.volume_per_atom)
        if not names:
            raise DataMissingError("ThermoDB.from_sources needs at least one source")
        return cls(entries, volumes=volumes, estimator=estimator, sources=names, anchor=anchor)

    @classmethod
    def default(cls) -> ThermoDB:
        """The embedded database (pymatgen's experimental enthalpies + NIST gases), offline;
        cached per process. Every entry is measured (source ``exp``)."""
        return _default_db()

    @classmethod
    def with_mp(cls) -> ThermoDB:
        """DFT-consistent database for stability screening: MP summary first (MP2020), then the
        experimental table for what MP lacks. Needs ``labos data fetch``; cached per process."""
        from .sources import mp_summary_path

        return _mp_db(str(mp_summary_path()))

    @classmethod
    def combined(cls) -> ThermoDB:
        """Best reaction energetics: experimental enthalpies first, the MP summary (MP2020) for
        phases the experiments lack (MP2020 over-binds carbonates by ~0.15 eV/atom against
        experiment, so measured values win). Falls back to ``default()`` without the MP file."""
        from .sources import mp_summary_path

        path = mp_summary_path()
        return _combined_db(str(path)) if path.exists() else cls.default()

    def overlay(self, entries: Iterable[ThermoEntry], *, override: bool = False) -> ThermoDB:
        """A new database with ``entries`` added (the shared cached one stays untouched)."""
        new = ThermoDB(
            self._entries.values(), volumes=self._volumes, estimator=self.estimator, sources=self.sources
        )
        new._dft_twin = dict(self._dft_twin)
        new._anchor = self._anchor
        new.add_entries(entries, override=override)
        return new

    # ---------------------------------------------------------------- lookup
    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, formula: str) -> bool:
        return self.has(formula)

    @property
    def entries(self) -> list[ThermoEntry]:
        return list(self._entries.values())

    def has(self, formula: str) -> bool:
        """True when a source covers the phase (elements and tabulated gases always are)."""
        f = _reduce(formula)
        return f in self._entries or gibbs.is_gas(f) or _is_element(f)

    def entry(self, formula: str, *, allow_estimate: bool = True) -> ThermoEntry:
        """The entry of a solid; a composition-model estimate (flagged) when no source covers it
        and an estimator is attached; else DataMissingError."""
        f = _reduce(formula)
        if f in self._entries:
            return self._resolve(self._entries[f])
        if _is_element(f):
            return ThermoEntry(f, 0.0, "element")
        if f in self._estimates:
            return self._estimates[f]
        if allow_estimate and self.estimator is not None:
            value, sigma = self.estimator.predict_one(f)
            est = ThermoEntry(f, value, "model", uncertainty_per_atom=sigma, is_estimate=True)
            self._estimates[f] = est
            return est
        raise DataMissingError(
            f"no formation energy for {f} in sources {', '.join(self.sources) or '(none)'}; "
            "add a source that covers it or attach the composition model (ThermoDB.with_estimates)"
        )

    def with_estimates(self, estimator=None) -> ThermoDB:
        """Attach the composition model (trained or loaded from the cache) for uncovered phases."""
        if estimator is None:
            from .composition_model import CompositionModel

            estimator = CompositionModel.default()
        self.estimator = estimator
        self._estimates.clear()
        return self

    def add_entries(self, entries: Iterable[ThermoEntry], *, override: bool = False) -> None:
        """Add phases (e.g. targets with their own energies); clears the cached diagrams."""
        for e in entries:
            if gibbs.is_gas(e.formula) or (e.formula in self._entries and not override):
                continue
            old = self._entries.get(e.formula)
            if old is not None:
                self._by_chemsys[old.elements].remove(old)
            self._entries[e.formula] = e
            self._by_chemsys.setdefault(e.elements, []).append(e)
        self._pd_cache.clear()
        self._anchored.clear()
        self._gibbs.cache_clear()
        self._reaction_cache.cache_clear()
        self._iface_cache.cache_clear()

    def chemsys_entries(self, elements: Iterable[str]) -> list[ThermoEntry]:
        """Entries whose elements are all in ``elements`` (index lookup over the 2^n subsystems)."""
        els = sorted(_check_elements(elements))
        out: list[ThermoEntry] = []
        for k in range(1, len(els) + 1):
            for sub in combinations(els, k):
                out.extend(self._by_chemsys.get(frozenset(sub), ()))
        return [self._resolve(e) for e in out] if self._anchor else out

    # ---------------------------------------------------------------- anchoring DFT to experiment
    def _resolve(self, e: ThermoEntry) -> ThermoEntry:
        if not self._anchor or e.source in _NOT_DFT or len(e.elements) < 2:
            return e
        done = self._anchored.get(e.formula)
        if done is not None and done.entry_id == e.entry_id:
            return done
        corr = self._anchor_correction(e)
        data = dict(e.data) | {
            "anchor_correction_per_atom": corr,
            "dft_formation_energy_per_atom": e.formation_enthalpy_per_atom,
        }
        out = ThermoEntry(
            e.formula,
            e.formation_enthalpy_per_atom + corr,
            e.source,
            e.entry_id,
            e.uncertainty_per_atom,
            e.volume_per_atom,
            e.is_estimate,
            data,
        )
        self._anchored[e.formula] = out
        return out

    def _anchor_correction(self, e: ThermoEntry) -> float:
        from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
        from pymatgen.core import Composition

        pd = self._ref_pd.get(e.elements)
        if pd is None:
            els = sorted(e.elements)
            refs = [PDEntry(Composition(el), 0.0, name=el) for el in els]
            for k in range(2, len(els) + 1):
                for sub in combinations(els, k):
                    for x in self._by_chemsys.get(frozenset(sub), ()):
                        if x.formula in self._dft_twin:
                            refs.append(
                                PDEntry(
                                    x.composition, self._dft_twin[x.formula] * x.num_atoms, name=x.formula
                                )
                            )
            pd = PhaseDiagram(refs)
            self._ref_pd[e.elements] = pd
        corr = 0.0
        for ref, frac in pd.get_decomposition(e.composition).items():
            if ref.name in self._dft_twin:
                corr += frac * (
                    self._entries[ref.name].formation_enthalpy_per_atom - self._dft_twin[ref.name]
                )
        return corr

    def formation_enthalpy_per_atom(self, formula: str) -> float:
        """ΔH_f (eV/atom) relative to the elements; gases from NIST-JANAF (see data/gases.csv)."""
        f = _reduce(formula)
        if gibbs.is_gas(f):
            return gas_formation_enthalpy_per_atom(f)
        return self.entry(f).formation_enthalpy_per_atom

    # ---------------------------------------------------------------- Gibbs energies
    def volume_per_atom(self, formula: str) -> tuple[float, bool]:
        """(volume per atom in Å³, estimated?) from a structure when known, else estimated."""
        f = _reduce(formula)
        if f in self._volumes:
            return self._volumes[f], False
        e = self._entries.get(f)
        if e is not None and e.volume_per_atom:
            return e.volume_per_atom, False
        return estimate_volume_per_atom(f), True

    def gibbs(self, formula: str, temperature_k: float, atmosphere: Atmos = "air") -> GibbsEnergy:
        """ΔG_f(T) with its provenance (gases at the atmosphere's partial pressure)."""
        return self._gibbs(_reduce(formula), _key_t(temperature_k), atm.atmosphere_key(atmosphere))

    def gibbs_formation(self, formula: str, temperature_k: float, atmosphere: Atmos = "air") -> float:
        """ΔG_f(T) in eV per formula unit of the reduced formula."""
        return self.gibbs(formula, temperature_k, atmosphere).per_formula_unit

    def gibbs_formation_per_atom(
        self, formula: str, temperature_k: float, atmosphere: Atmos = "air"
    ) -> float:
        """ΔG_f(T) in eV/atom; gases at their partial pressure in ``atmosphere``."""
        return self.gibbs(formula, temperature_k, atmosphere).per_atom

    def _gibbs_uncached(self, f: str, t: float, atm_key: tuple) -> GibbsEnergy:
        from pymatgen.core import Composition

        comp = Composition(f)
        n = comp.num_atoms
        if gibbs.is_gas(f):
            per_atom = gibbs.gas_gibbs_formation_per_atom(f, t)
            key = gibbs.gas_key(f)
            molecules = n / Composition(key).num_atoms
            p = atm.pressure_of(f, _atm_from_key(atm_key))
            g = per_atom * n + molecules * gibbs.K_B_EV * t * math.log(p / atm.P_STANDARD_PA)
            return GibbsEnergy(
                formula=f, temperature_k=t, per_formula_unit=g, per_atom=g / n, phase="gas", source="nist"
            )
        if comp.is_element:
            return GibbsEnergy(
                formula=f,
                temperature_k=t,
                per_formula_unit=0.0,
                per_atom=0.0,
                phase="element",
                source="element",
            )
        e = self.entry(f)
        vol, estimated = self.volume_per_atom(f)
        g = gibbs.solid_gibbs_formation(comp, e.formation_enthalpy_per_atom, vol, t)
        return GibbsEnergy(
            formula=f,
            temperature_k=t,
            per_formula_unit=g,
            per_atom=g / n,
            phase="solid",
            source=e.source,
            volume_estimated=estimated,
            is_estimate=e.is_estimate,
        )

    # ---------------------------------------------------------------- phase diagrams
    def phase_diagram(
        self, elements: Iterable[str], temperature_k: float | None = None, atmosphere: Atmos = "air"
    ):
        """pymatgen PhaseDiagram of the chemical system: formation enthalpies (``temperature_k``
        None) or ΔG_f(T) with the atmosphere's gases as phases. Entry names are reduced formulas."""
        els = frozenset(_check_elements(elements))
        key = (
            els,
            None if temperature_k is None else _key_t(temperature_k),
            atm.atmosphere_key(atmosphere) if temperature_k is not None else None,
        )
        pd = self._pd_cache.get(key)
        if pd is not None:
            self._pd_cache.move_to_end(key)
            return pd
        pd = self._build_pd(els, key[1], atmosphere)
        self._pd_cache[key] = pd
        if len(self._pd_cache) > _PD_CACHE_SIZE:
            self._pd_cache.popitem(last=False)
        return pd

    def _pd_entries(self, els: frozenset[str], t: float | None, atmosphere: Atmos, extra: Iterable[str] = ()):
        from pymatgen.analysis.phase_diagram import PDEntry
        from pymatgen.core import Composition

        entries = []
        seen = set()
        for e in list(self.chemsys_entries(els)) + [self.entry(x) for x in extra]:
            if e.formula in seen:
                continue
            seen.add(e.formula)
            if t is None:
                energy = e.formation_enthalpy_per_atom * e.num_atoms
            else:
                energy = self.gibbs_formation(e.formula, t, atmosphere)
            entries.append(PDEntry(e.composition, energy, name=e.formula, attribute=e.source))
        present = {el for f in seen for el in ([f] if _is_element(f) else [])}
        for el in els:
            gas = _ELEMENT_GAS.get(el)
            if t is not None and gas is not None:
                continue  # the gas entry below is this element's reference
            if el not in present:
                entries.append(PDEntry(Composition(el), 0.0, name=el, attribute="element"))
        if t is not None:
            for gas in _gases_in(els):
                entries.append(
                    PDEntry(
                        Composition(gas), self.gibbs_formation(gas, t, atmosphere), name=gas, attribute="gas"
                    )
                )
        return entries

    def _build_pd(self, els: frozenset[str], t: float | None, atmosphere: Atmos):
        from pymatgen.analysis.phase_diagram import PhaseDiagram

        return PhaseDiagram(self._pd_entries(els, t, atmosphere))

    def e_above_hull(
        self,
        formula: str,
        temperature_k: float | None = None,
        atmosphere: Atmos = "air",
        *,
        formation_energy_per_atom: float | None = None,
    ) -> float:
        """Energy above the hull (eV/atom) of a phase against every other phase of its system.

        ``formation_energy_per_atom`` evaluates a hypothetical phase (e.g. a candidate target)
        instead of the stored entry; the result is negative when it lies below the current hull.
        """
        return self.stability(
            formula, temperature_k, atmosphere, formation_energy_per_atom=formation_energy_per_atom
        )["e_above_hull"]

    def decomposition(
        self, formula: str, temperature_k: float | None = None, atmosphere: Atmos = "air"
    ) -> dict[str, float]:
        """Products the phase decomposes into (atom fractions), {formula: 1.0} when stable."""
        return self.stability(formula, temperature_k, atmosphere)["decomposition"]

    def stability(
        self,
        formula: str,
        temperature_k: float | None = None,
        atmosphere: Atmos = "air",
        *,
        formation_energy_per_atom: float | None = None,
    ) -> dict:
        """{'e_above_hull', 'decomposition', 'source', 'is_estimate'} of one phase."""
        from pymatgen.core import Composition

        f = _reduce(formula)
        comp = Composition(f)
        if gibbs.is_gas(f):
            raise DataMissingError(f"{f} is a gas: energy above hull is defined for solids only")
        if formation_energy_per_atom is not None:
            own = ThermoEntry(f, float(formation_energy_per_atom), "user")
        else:
            own = self.entry(f)
        els = frozenset(str(e) for e in comp.elements)
        pd = self.phase_diagram(els, temperature_k, atmosphere)
        names = _names(pd)
        if formation_energy_per_atom is None and f in names:
            decomp, e_hull = pd.get_decomp_and_e_above_hull(names[f], allow_negative=True)
        else:
            if temperature_k is None:
                g_own = own.formation_enthalpy_per_atom
            else:
                vol, _ = self.volume_per_atom(f)
                g_own = (
                    gibbs.solid_gibbs_formation(comp, own.formation_enthalpy_per_atom, vol, temperature_k)
                    / comp.num_atoms
                )
            hull_pd = self._pd_without(pd, f) if f in names else pd
            decomp, e_hull = hull_pd.get_decomp_and_e_above_hull(_probe(comp, g_own), allow_negative=True)
        if e_hull <= 1e-9:
            products = {f: 1.0}
        else:
            products = {d.name: float(amt) for d, amt in decomp.items()}
        return {
            "e_above_hull": float(e_hull),
            "decomposition": products,
            "source": own.source,
            "is_estimate": own.is_estimate,
        }

    def _pd_without(self, pd, formula: str):
        from pymatgen.analysis.phase_diagram import PhaseDiagram

        return PhaseDiagram([e for e in pd.all_entries if e.name != formula])

    def stable_phases(
        self, elements: Iterable[str], temperature_k: float, atmosphere: Atmos = "air"
    ) -> list[str]:
        """Phases on the ΔG_f(T) hull of the system (gases of the atmosphere included)."""
        pd = self.phase_diagram(elements, temperature_k, atmosphere)
        return sorted({e.name for e in pd.stable_entries})

    # ---------------------------------------------------------------- reactions
    def balance(
        self, reactants: Iterable[str], products: Iterable[str], open_gases: Iterable[str] = GASES
    ) -> BalancedReaction:
        """Balance with gases of the atmosphere taken up or released (see reactions.balance)."""
        return self._balance_cache(tuple(reactants), tuple(products), tuple(open_gases))

    def _balance_uncached(self, reactants, products, open_gases) -> BalancedReaction:
        return balance(reactants, products, open_gases)

    def reaction_energy(
        self,
        reactants: Iterable[str],
        products: Iterable[str],
        temperature_k: float,
        atmosphere: Atmos = "air",
        open_gases: Iterable[str] = GASES,
    ) -> ReactionEnergy:
        """ΔG(T) of the balanced reaction, per atom and per formula unit of the first product."""
        return self._reaction_cache(
            tuple(reactants),
            tuple(products),
            _key_t(temperature_k),
            atm.atmosphere_key(atmosphere),
            tuple(open_gases),
        )

    def _reaction_energy_uncached(self, reactants, products, t, atm_key, open_gases) -> ReactionEnergy:
        from pymatgen.core import Composition

        rxn = self.balance(reactants, products, open_gases)
        atmosphere = _atm_from_key(atm_key)
        dg = 0.0
        atoms = 0.0
        estimated = volume_estimated = False
        for f, c in rxn.coefficients.items():
            g = self.gibbs(f, t, atmosphere)
            dg += c * g.per_formula_unit
            estimated |= g.is_estimate
            volume_estimated |= g.volume_estimated
            if c > 0:
                atoms += c * Composition(f).num_atoms
        return ReactionEnergy(
            per_atom=dg / atoms,
            per_formula_unit=dg,
            equation=rxn.equation,
            coefficients=rxn.coefficients,
            temperature_k=t,
            estimated=estimated,
            volume_estimated=volume_estimated,
        )

    def interface_reactions(
        self, a: str, b: str, temperature_k: float, atmosphere: Atmos = "air"
    ) -> list[InterfaceReaction]:
        """Reactions between two phases along their mixing line at T, most exergonic first
        (only ΔG < 0; a phase that decomposes on its own shows up at x = 1 or x = 0)."""
        fa, fb = _reduce(a), _reduce(b)
        if fa == fb:
            raise ReactionError(f"interface reaction needs two different phases, got {fa} twice")
        return list(self._iface_cache(fa, fb, _key_t(temperature_k), atm.atmosphere_key(atmosphere)))

    def _interface_uncached(
        self, fa: str, fb: str, t: float, atm_key: tuple
    ) -> tuple[InterfaceReaction, ...]:
        from pymatgen.core import Composition

        atmosphere = _atm_from_key(atm_key)
        ca, cb = Composition(fa), Composition(fb)
        els = frozenset(str(e) for e in (ca + cb).elements)
        pd = self.phase_diagram(els, t, atmosphere)
        ga = self.gibbs_formation_per_atom(fa, t, atmosphere)
        gb = self.gibbs_formation_per_atom(fb, t, atmosphere)
        na, nb = ca.fractional_composition, cb.fractional_composition
        out = []
        seen = set()
        for crit in pd.get_critical_compositions(na, nb):
            x = _mixing_ratio(crit, na, nb)
            x = min(max(x, 0.0), 1.0)
            if round(x, 6) in seen:
                continue
            seen.add(round(x, 6))
            mix = na * x + nb * (1 - x)
            decomp = pd.get_decomposition(mix)
            energy = sum(e.energy_per_atom * amt for e, amt in decomp.items()) - (x * ga + (1 - x) * gb)
            if energy >= -1e-9:
                continue
            products = {e.name: float(amt) for e, amt in decomp.items() if amt > 1e-9}
            coeffs: dict[str, float] = {}
            if x > 1e-9:
                coeffs[fa] = -x / ca.num_atoms
            if x < 1 - 1e-9:
                coeffs[fb] = -(1 - x) / cb.num_atoms
            for name, amt in products.items():
                coeffs[name] = coeffs.get(name, 0.0) + amt / Composition(name).num_atoms
            coeffs = {k: v for k, v in coeffs.items() if abs(v) > 1e-12}
            scale = -1.0 / coeffs[fa] if fa in coeffs and coeffs[fa] < 0 else -1.0 / coeffs.get(fb, -1.0)
            norm = {k: _tidy(v * scale) for k, v in coeffs.items()}
            out.append(
                InterfaceReaction(
                    x=_tidy(float(x)),
                    products={k: _tidy(v) for k, v in products.items()},
                    energy_per_atom=float(energy),
                    equation=format_equation(norm),
                    coefficients=norm,
                )
            )
        out.sort(key=lambda r: r.energy_per_atom)
        return tuple(out)


# ---------------------------------------------------------------- helpers

_ELEMENT_GAS = {v: k for k, v in gibbs.ELEMENTAL_GASES.items()}
_NOT_DFT = frozenset({"exp", "element", "user", "model", "cif"})


@lru_cache(maxsize=65536)
def _reduce(formula: str) -> str:
    return parse_formula(formula)


@lru_cache(maxsize=4096)
def _is_element(formula: str) -> bool:
    from pymatgen.core import Composition

    return Composition(formula).is_element


def _check_elements(elements: Iterable[str]) -> set[str]:
    from pymatgen.core import Element

    from labos.errors import FormulaError

    if isinstance(elements, str):
        elements = [e for e in elements.replace("-", " ").split() if e]
    out = set()
    for el in elements:
        el = str(el).strip()
        if not Element.is_valid_symbol(el):
            raise FormulaError(f"{el!r} is not a chemical element")
        out.add(el)
    if not out:
        raise FormulaError("a chemical system needs at least one element")
    return out


@lru_cache(maxsize=4096)
def _gases_in_cached(els: frozenset[str]) -> tuple[str, ...]:
    from pymatgen.core import Composition

    out = []
    for g in set(GASES) | set(gibbs.ELEMENTAL_GASES):
        if {str(e) for e in Composition(g).elements} <= els:
            out.append(parse_formula(g))
    return tuple(sorted(out))


def _gases_in(els: frozenset[str]) -> tuple[str, ...]:
    return _gases_in_cached(frozenset(els))


def _tidy(v: float) -> float:
    """Round away float noise (1e-12) so equations print as 1, 0.5, ..."""
    r = round(v, 9)
    return r if abs(v - r) < 1e-9 else v


def _names(pd) -> dict:
    """name -> entry of a phase diagram (memoised on the diagram object)."""
    names = getattr(pd, "_labos_names", None)
    if names is None:
        names = {}
        for e in pd.all_entries:
            cur = names.get(e.name)
            if cur is None or e.energy_per_atom < cur.energy_per_atom:
                names[e.name] = e
        pd._labos_names = names
    return names


def _probe(comp, energy_per_atom: float):
    from pymatgen.analysis.phase_diagram import PDEntry

    return PDEntry(comp, energy_per_atom * comp.num_atoms, name=comp.reduced_formula)


def _mixing_ratio(crit, na, nb) -> float:
    """Atom fraction of ``na`` in the critical composition on the na–nb line (least squares)."""
    import numpy as np

    els = sorted({str(e) for e in (na + nb).elements})
    va = np.array([na.get_atomic_fraction(e) for e in els])
    vb = np.array([nb.get_atomic_fraction(e) for e in els])
    cf = crit.fractional_composition
    vc = np.array([cf.get_atomic_fraction(e) for e in els])
    d = va - vb
    return float(np.dot(vc - vb, d) / np.dot(d, d))


@lru_cache(maxsize=1)
def _gas_enthalpies() -> dict[str, float]:
    import csv
    from pathlib import Path

    path = Path(__file__).parent / "data" / "gases.csv"
    out = {}
    with open(path) as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            out[parse_formula(row["formula"])] = float(row["dHf_298_kJ_mol"])
    return out


def gas_formation_enthalpy_per_atom(formula: str) -> float:
    from pymatgen.core import Composition

    f = parse_formula(formula)
    table = _gas_enthalpies()
    if f not in table:
        raise DataMissingError(
            f"no standard formation enthalpy for the gas {f} in models/thermo/data/gases.csv"
        )
    return table[f] / 96.485332 / Composition(f).num_atoms


@lru_cache(maxsize=1)
def _default_db() -> ThermoDB:
    from .sources import ExperimentalSource

    return ThermoDB(ExperimentalSource().load(), sources=["exp"])


@lru_cache(maxsize=4)
def _combined_db(path: str) -> ThermoDB:
    from pathlib import Path

    from .sources import ExperimentalSource, SummarySource

    entries = ExperimentalSource().load() + SummarySource(Path(path), name="mp").load()
    return ThermoDB(entries, sources=["exp", "mp"])


@lru_cache(maxsize=4)
def _mp_db(path: str) -> ThermoDB:
    from pathlib import Path

    from .sources import ExperimentalSource, SummarySource

    entries = SummarySource(Path(path), name="mp").load() + ExperimentalSource().load()
    return ThermoDB(entries, sources=["mp", "exp"])
