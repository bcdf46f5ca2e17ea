"""The simulated chemistry: the hidden ground truth of what a furnace makes from a powder mix.

A :class:`World` is built from thermodynamic data (``labos.models.thermo``) for the elements in play
plus hidden kinetic parameters drawn from its seed (:mod:`labos.simulator.chemistry.hidden`), which
planners never see. ``world.synthesize(precursors_mg, heat)`` returns the true phases with weight
fractions (:class:`TrueOutcome`). The model, step by step over the heating programme (ramps in
≤25 K steps, dwells in ≤20 min steps, cooling included):

1. **Dosing and mixing.** Each dosed mass gets a relative weighing error (hidden σ, 0.3–1.2 %).
   A hidden share (1–5 % on average, varying per synthesis) of each powder stays in agglomerates
   that never touch the other powders: it can decompose or evaporate but not react with them.
   Each shelf powder has a hidden reactivity (particle size; log-normal, σ(ln k) = 1.2 at the
   default difficulty); powder formed in the furnace is fine grained and reactive (×1.5–3).
2. **Single-phase changes.** A phase that is unstable on its own in the atmosphere (carbonates,
   hydroxides, nitrates, hydrates, oxides that gain or lose oxygen) reacts by its most exergonic
   decomposition (O, C, H, N exchanged with O2, CO2, H2O, N2 at their partial pressures, so the
   decomposition temperature follows the atmosphere). It starts once the driving force exceeds a
   small hidden overshoot and follows contracting-volume kinetics; gas uptake (oxidation) also
   needs a Tammann-like onset.
3. **Pairwise interface reactions.** Every pair of phases in contact reacts to its most exergonic
   pairwise product (interface LP, see :mod:`.chemistry.equilibrium`); for a hidden share of pairs
   a kinetically preferred product that keeps most of the driving force forms instead. Extent
   follows Ginstling–Brounshtein kinetics with two steps in series, 1/k = 1/k_diff + 1/k_int:
   - diffusion through the product layer: Arrhenius (hidden Ea) from a Tammann onset
     T_on = τ·Tm + δ (τ, δ hidden per pair), where Tm blends the lower reactant melting point with
     that of the product layer the cations must cross (min(Tm_a, Tm_b)^(1−w)·Tm_prod^w, hidden w,
     never below the reactant term); ×(Δg / 50 meV) up to ×3 (Wagner: flux ∝ driving force);
     × the reactivity of the coarser powder; ×20 when a reactant is an ionic melt (a viscous
     network-former melt such as B2O3 does not speed diffusion up);
   - nucleation and growth of the product at the interface: classical nucleation theory,
     k_int = 0.05/min · exp(−6·(Δg_t/Δg)²·1273 K/T), with a hidden per-pair trap driving force Δg_t
     (25–45 meV/atom on average at the default difficulty) and Δg the driving force the pair adds
     beyond its reactants' own decompositions.
   The rate is split among a phase's neighbours by their volume shares.
4. **Driving-force trap.** Because nucleation, not diffusion, limits a step with little driving
   force, no furnace temperature rescues it: an intermediate that leaves too little driving force
   for the target's forming step traps the synthesis at low yield — the central failure mode of
   the A-Lab (Szymanski et al., Nature 2023). Which intermediates form depends on the precursors
   (a carbonate reacts before or after it decomposes, an oxide before or after it oxidises, a
   hydroxide or nitrate melts), so success needs the right precursors *and* enough heat.
5. **Melting and volatility.** Above its melting point a phase is liquid: its reactions run faster
   and it evaporates faster. Li, Na, K, Bi, Pb, Mo, V, … oxides evaporate above their onset
   (:mod:`.chemistry.volatility`); what a multi-cation phase leaves behind is re-equilibrated.
6. **Output.** The phases of all agglomerates together, as weight fractions of the final solid,
   its mass, and notes. Mass balance: final = dosed − gases released + gases taken up − evaporated.

``difficulty`` ("easy", "alab" — the default — or "hard"; :data:`.chemistry.hidden.DIFFICULTIES`)
sets the ranges the hidden parameters are drawn from; ``labos bench sim-world --json`` measures the
share of (precursor set, temperature) cells that succeed per target for each level.

Everything is deterministic for (seed, inputs, replicate); thermodynamic results are cached per
(reactants, 25 K temperature bucket, atmosphere) so a warm world answers in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from labos.domain import Atmosphere, HeatSegment, HeatStep, Outcome, PhaseResult, Recipe, parse_formula
from labos.errors import FormulaError, LabosError

from .chemistry import hidden
from .chemistry.equilibrium import ChemistryError, Reaction, shared_view
from .chemistry.kinetics import (
    AFFINITY_MAX,
    affinity,
    arrhenius,
    cv_alpha,
    driving_force_gate,
    gb_alpha,
    mixed_control,
    nucleation_rate,
    step_fraction,
)
from .chemistry.melting import decomposition_k, effective_melting_k, tabulated_melting_k
from .chemistry.phases import OPEN_ELEMENT_GAS, make_phase
from .chemistry.volatility import loss_fraction

if TYPE_CHECKING:
    from pymatgen.core import Structure

ROOM_C = 25.0
MAX_STEP_K = 25.0
MAX_DWELL_STEP_MIN = 20.0
MIN_ACTIVE_K = 373.15  # nothing in the model moves below 100 °C
LIQUID_RATE_FACTOR = 20.0
#: Network-forming oxides: their melts are viscous (B2O3 ~10^3-10^5 Pa·s just above its melting point,
#: against ~10^-2 Pa·s for ionic melts such as molten carbonates; Varshneya & Mauro, Fundamentals of
#: Inorganic Glasses, 3rd ed. (2019), ch. on viscosity), so by Stokes–Einstein they do not speed up
#: diffusion the way an ionic melt does.
NETWORK_FORMERS = frozenset({"B", "Si", "Ge", "P"})
SURFACE_EA_KJ = 150.0  # gas release / uptake at particle surfaces
BULK_EA_KJ = 300.0  # single-phase changes that need bulk cation diffusion
RELEASED_ELEMENTS = frozenset({"C", "H", "N"})
MIN_REPORTED_FRACTION = 1e-4
NOTE_MIN_SHARE = 1e-3  # a reaction step is noted once it moves 0.1 % of the sample
GAS_MOLAR_MASS = {g: make_phase(g).molar_mass for g in ("O2", "CO2", "H2O", "N2")}  # same masses as solids


class WorldError(LabosError, ValueError):
    """Input the world cannot simulate: the message names the precursor, mass or setting."""


class StructureMissingError(LabosError, LookupError):
    """Phases that have no crystal structure, so no XRD pattern can be made for them."""


class TrueOutcome(BaseModel):
    """What the furnace really made (the simulator's truth, never shown to a planner directly)."""

    model_config = ConfigDict(extra="forbid")

    phases: dict[str, float] = Field(description="phase formula -> weight fraction of the solid")
    mass_mg: float = Field(ge=0, description="mass of the solid after the heat treatment, mg")
    notes: list[str] = Field(default_factory=list)
    initial_mass_mg: float = Field(default=0.0, ge=0, description="mass actually dosed, mg")
    gas_released_mg: float = Field(default=0.0, description="net gas released (negative: taken up), mg")
    evaporated_mg: float = Field(default=0.0, ge=0, description="volatile oxides evaporated, mg")

    def fraction_of(self, formula: str) -> float:
        """Weight fraction of a phase, comparing compositions (``ZnFe2O4`` == ``Zn(FeO2)2``)."""
        want = parse_formula(formula)
        return sum(v for k, v in self.phases.items() if parse_formula(k) == want)

    def to_outcome(
        self, experiment_id: str, target_formula: str | None = None, threshold: float = 0.5
    ) -> Outcome:
        """The domain Outcome (source "simulator") of this truth."""
        phases = [
            PhaseResult(phase_id=name, formula=name, weight_fraction=min(max(v, 0.0), 1.0))
            for name, v in sorted(self.phases.items(), key=lambda kv: -kv[1])
        ]
        frac = self.fraction_of(target_formula) if target_formula else 0.0
        return Outcome(
            experiment_id=experiment_id,
            phases=phases,
            target_formula=target_formula,
            target_fraction=min(frac, 1.0),
            success=bool(target_formula) and frac > threshold,
            confidence=1.0,
            source="simulator",
        )


@dataclass
class _Pool:
    """Powders in mutual contact: amounts (mmol per phase key), their reactivity (particle size:
    a dosed powder's hidden one, or that of fine powder formed in the furnace) and kinetic times
    per channel."""

    n: dict[str, float]
    tau_pair: dict[tuple[str, str], float] = field(default_factory=dict)
    tau_phase: dict[str, float] = field(default_factory=dict)
    reactivity: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, amount: float, reactivity: float) -> None:
        """Add ``amount`` of ``key``; reactivity is the amount-weighted mean of the two powders."""
        old = self.n.get(key, 0.0)
        total = old + amount
        if total <= 0:
            return
        r_old = self.reactivity.get(key, reactivity)
        self.reactivity[key] = (old * r_old + amount * reactivity) / total
        self.n[key] = total


@dataclass
class _Run:
    """Book-keeping of one synthesis."""

    atmosphere: str
    batch_factor: float
    initial_mg: float
    gas_mg: float = 0.0
    evaporated_mg: float = 0.0
    notes: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def note_once(self, key: str, text: str) -> None:
        if key not in self.seen:
            self.seen.add(key)
            self.notes.append(text)


def temperature_steps(heat: HeatStep, start_c: float = ROOM_C) -> list[tuple[float, float]]:
    """The heating programme as (temperature K, duration min) steps, cooling to room temperature."""
    steps: list[tuple[float, float]] = []

    def ramp(t0: float, t1: float, rate: float) -> None:
        span = abs(t1 - t0)
        if span <= 0:
            return
        n = max(1, math.ceil(span / MAX_STEP_K))
        for i in range(n):
            mid = t0 + (t1 - t0) * (i + 0.5) / n
            steps.append((mid + 273.15, span / n / rate))

    temp = start_c
    for seg in heat.segments:
        ramp(temp, seg.target_c, seg.ramp_c_per_min)
        temp = seg.target_c
        if seg.dwell_min > 0:
            n = max(1, math.ceil(seg.dwell_min / MAX_DWELL_STEP_MIN))
            steps.extend([(temp + 273.15, seg.dwell_min / n)] * n)
    ramp(temp, start_c, heat.cool_c_per_min)
    return steps


def _as_heat(heat: HeatStep | Mapping[str, Any] | Iterable[HeatSegment]) -> HeatStep:
    if isinstance(heat, HeatStep):
        return heat
    if isinstance(heat, Mapping):
        return HeatStep.model_validate(heat)
    try:
        return HeatStep(segments=list(heat))
    except TypeError:
        raise WorldError(
            f"heat must be a HeatStep, a dict or a list of HeatSegment, not {type(heat).__name__}"
        ) from None


class World:
    """A hidden solid-state chemistry (see the module docstring for the model).

    ``seed`` draws the hidden kinetics; ``elements`` limits the chemistry (None: anything the
    thermodynamic data covers); ``thermo`` is a ``labos.models.thermo.ThermoDB`` (default:
    ``ThermoDB.default()``); ``structures`` maps phase names to pymatgen Structures for XRD;
    ``phases`` (optional) is the closed list of phases the world may form (the demo world uses
    the phases it has structures for); ``difficulty`` is "easy", "alab" (default, A-Lab-like) or
    "hard", or a custom :class:`~labos.simulator.chemistry.hidden.Difficulty`.
    """

    def __init__(
        self,
        seed: int,
        elements: Iterable[str] | None = None,
        thermo=None,
        structures: Mapping[str, Structure] | None = None,
        *,
        phases: Iterable[str] | None = None,
        difficulty: str | hidden.Difficulty = hidden.DEFAULT_DIFFICULTY,
    ):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise WorldError(f"world seed must be an integer, got {seed!r}")
        self.seed = seed
        try:
            self.difficulty = hidden.difficulty_of(difficulty)
        except ValueError as exc:
            raise WorldError(str(exc)) from None
        self._hid = difficulty if isinstance(difficulty, str) else self.difficulty  # cache key of the draws
        if thermo is None:
            from labos.models.thermo import ThermoDB

            thermo = ThermoDB.default()
        self.thermo = thermo
        self.elements: frozenset[str] | None = None
        if elements is not None:
            from pymatgen.core import Element

            els = set()
            for e in elements:
                if not isinstance(e, str) or not Element.is_valid_symbol(e):
                    raise WorldError(f"{e!r} is not a chemical element")
                els.add(e)
            self.elements = frozenset(els)
        self.structures: dict[str, Structure] = dict(structures or {})
        self._structure_by_key = {parse_formula(k): k for k in self.structures}
        self.allowed_phases = None if phases is None else tuple(phases)
        self.view = shared_view(thermo, self.allowed_phases)
        self._names: dict[str, str] = {}
        for name in list(self.structures) + list(self.allowed_phases or ()):
            self._names.setdefault(make_phase(name).key, name)
        self._params = hidden.world_params(seed, self._hid)  # hidden: never shown to a planner

    # ---------------------------------------------------------------- constructors
    @classmethod
    def demo(
        cls, seed: int = 0, thermo=None, difficulty: str | hidden.Difficulty = hidden.DEFAULT_DIFFICULTY
    ) -> World:
        """The built-in demo chemistry (offline; every phase it forms has a structure)."""
        from .demo_chemistry import DEMO_ELEMENTS, DEMO_PHASES, demo_structures

        return cls(
            seed,
            DEMO_ELEMENTS,
            thermo=thermo,
            structures=demo_structures(),
            phases=DEMO_PHASES,
            difficulty=difficulty,
        )

    def __repr__(self) -> str:
        els = "any" if self.elements is None else "-".join(sorted(self.elements))
        return (
            f"World(seed={self.seed}, elements={els}, structures={len(self.structures)}, "
            f"difficulty={self.difficulty.name})"
        )

    # ---------------------------------------------------------------- names and structures
    def name_of(self, key: str) -> str:
        return self._names.get(key) or make_phase(key).name

    def require_structures(self, phases: Iterable[str]) -> dict[str, Structure]:
        """Structures for ``phases`` (names or formulas), or StructureMissingError naming every
        phase without one — the world refuses to invent XRD patterns."""
        out, missing = {}, []
        for ph in phases:
            key = parse_formula(ph)
            name = self._structure_by_key.get(key)
            if name is None:
                missing.append(ph)
            else:
                out[ph] = self.structures[name]
        if missing:
            raise StructureMissingError(
                f"no crystal structure for {', '.join(sorted(missing))}: the simulated XRD cannot show "
                "this chemistry; give the world structures (e.g. from a CIF folder) for these phases"
            )
        return out

    # ---------------------------------------------------------------- input checks
    def _check_precursors(self, precursors_mg: Mapping[str, float]) -> dict[str, tuple[str, float]]:
        if not isinstance(precursors_mg, Mapping) or not precursors_mg:
            raise WorldError("precursors_mg must be a non-empty mapping of precursor formula to mass in mg")
        out: dict[str, tuple[str, float]] = {}
        for formula, mass in precursors_mg.items():
            try:
                key = parse_formula(formula)
            except FormulaError as exc:
                raise WorldError(f"precursor {formula!r}: {exc}") from None
            try:
                m = float(mass)
            except (TypeError, ValueError):
                raise WorldError(f"mass of {formula} must be a number of mg, got {mass!r}") from None
            if not math.isfinite(m) or m <= 0:
                raise WorldError(f"mass of {formula} must be a positive number of mg, got {mass}")
            if m > 50_000:
                raise WorldError(f"mass of {formula} is {m} mg, above 50 g, the largest crucible batch")
            p = make_phase(key)
            if self.elements is not None and not p.elements <= self.elements | set(OPEN_ELEMENT_GAS):
                extra = sorted(p.elements - self.elements - set(OPEN_ELEMENT_GAS))
                raise WorldError(
                    f"precursor {formula} contains {', '.join(extra)}, outside this world's elements"
                )
            if not self.view.has(key):
                raise WorldError(
                    f"precursor {formula} is not in this world's thermodynamic data, so its chemistry cannot be simulated"
                )
            if key in out:
                raise WorldError(f"precursor {formula} is listed twice (as {out[key][0]} and {formula})")
            out[key] = (formula.strip(), m)
        return out

    # ---------------------------------------------------------------- synthesis
    def synthesize(
        self,
        precursors_mg: Mapping[str, float],
        heat: HeatStep | Mapping[str, Any] | Iterable[HeatSegment],
        atmosphere: str | None = None,
        *,
        replicate: int = 0,
        dosing_error: bool = True,
    ) -> TrueOutcome:
        """Mix, heat and cool ``precursors_mg`` (formula → mg) and return the true outcome.

        ``atmosphere`` overrides ``heat.atmosphere`` (default air). ``replicate`` distinguishes
        repeats of the same recipe (new weighing and mixing noise). ``dosing_error=False`` when the
        masses given are already what a (simulated) doser delivered.
        """
        heat = _as_heat(heat)
        atm = str(Atmosphere(atmosphere).value) if atmosphere is not None else str(heat.atmosphere.value)
        pools, run = self._dose(precursors_mg, heat, atm, replicate, dosing_error)
        self._heat(pools, heat, run)
        return self._result(pools, run)

    def run_recipe(self, recipe: Recipe, *, replicate: int = 0, dosing_error: bool = True) -> TrueOutcome:
        """A whole recipe: doses, then every heat step; a grind between heats re-mixes the powder
        (agglomerates broken, fresh interfaces: diffusion restarts)."""
        doses: dict[str, float] = {}
        for d in recipe.doses:
            doses[d.precursor] = doses.get(d.precursor, 0.0) + d.mass_mg
        heats = recipe.heats
        if not heats:
            raise WorldError("the recipe has no heat step; the world simulates what a furnace does")
        atm = str(heats[0].atmosphere.value)
        pools, run = self._dose(doses, heats[0], atm, replicate, dosing_error)
        seen_heat = 0
        for step in recipe.steps:
            if step.kind == "heat":
                run.atmosphere = str(step.atmosphere.value)
                self._heat(pools, step, run)
                seen_heat += 1
            elif step.kind == "grind" and seen_heat:
                pools = self._regrind(pools)
        return self._result(pools, run)

    # ---------------------------------------------------------------- internals
    def _dose(self, precursors_mg, heat: HeatStep, atm: str, replicate: int, dosing_error: bool):
        checked = self._check_precursors(precursors_mg)
        for key, (formula, _) in checked.items():
            self._names.setdefault(key, formula)
        recipe_id = (
            sorted((k, round(m, 6)) for k, (_, m) in checked.items()),
            heat.model_dump(mode="json"),
            atm,
            int(replicate),
        )
        rng = hidden.rng_for("synthesis", self.seed, recipe_id)
        wp = self._params
        mixed = _Pool({})
        pools = [mixed]
        initial = 0.0
        for key, (_, mass) in sorted(checked.items()):
            if dosing_error:
                mass *= max(1.0 + wp.dosing_sigma * float(rng.normal()), 0.5)
            initial += mass
            mmol = mass / make_phase(key).molar_mass
            unmixed = (
                min(wp.unmixed_fraction * float(rng.uniform(0.3, 1.7)), 0.5) if len(checked) > 1 else 0.0
            )
            r = hidden.phase_params(self.seed, key, self._hid).reactivity
            mixed.add(key, mmol * (1.0 - unmixed), r)
            if unmixed > 0:
                alone = _Pool({})
                alone.add(key, mmol * unmixed, r)
                pools.append(alone)
        batch = math.exp(wp.batch_sigma * float(rng.normal()))
        return pools, _Run(atmosphere=atm, batch_factor=batch, initial_mg=initial)

    def _regrind(self, pools: list[_Pool]) -> list[_Pool]:
        merged = _Pool({})
        for pool in pools:
            for k, v in pool.n.items():
                merged.add(k, v, pool.reactivity.get(k, self._params.fresh_reactivity))
        return [merged]

    def _heat(self, pools: list[_Pool], heat: HeatStep, run: _Run) -> None:
        for temperature_k, dt in temperature_steps(heat):
            if temperature_k < MIN_ACTIVE_K:
                continue
            for pool in pools:
                self._step(pool, temperature_k, dt, run)

    def _fluid(self, key: str, temperature_k: float) -> bool:
        """Molten and fluid (an ionic melt, not a viscous network-former melt such as B2O3)."""
        cations = make_phase(key).elements - set(OPEN_ELEMENT_GAS)
        return self._liquid(key, temperature_k) and not cations <= NETWORK_FORMERS

    def _liquid(self, key: str, temperature_k: float) -> bool:
        tm = tabulated_melting_k(key)
        return tm is not None and temperature_k >= tm

    def _step(self, pool: _Pool, temperature_k: float, dt: float, run: _Run) -> None:
        for key in [k for k, v in pool.n.items() if v > 0]:
            if self._liquid(key, temperature_k):
                run.note_once(
                    f"melt:{key}",
                    f"{self.name_of(key)} melted (≥ {tabulated_melting_k(key) - 273.15:.0f} °C)",
                )
        self._evaporate(pool, temperature_k, dt, run)
        channels: list[tuple[float, Reaction, float, tuple]] = []
        present = sorted(k for k, v in pool.n.items() if v > 1e-12)
        for key in present:
            ch = self._phase_channel(key, temperature_k, dt, run)
            if ch is not None:
                channels.append(ch)
        for a, b in combinations(present, 2):
            ch = self._pair_channel(pool, a, b, temperature_k, dt, run)
            if ch is not None:
                channels.append(ch)
        channels.sort(key=lambda c: -c[1].driving_force)
        for _, rxn, k, ident in channels:
            self._apply(pool, rxn, k * dt, ident, temperature_k, run)

    def _phase_onset_k(self, key: str, rxn: Reaction) -> tuple[float, float]:
        """(kinetic onset K, activation energy kJ/mol) of a single-phase change of ``key``."""
        pp = hidden.phase_params(self.seed, key, self._hid)
        if any(v < 0 for _, v in rxn.gases):  # takes up gas (oxidation): surface-controlled
            return pp.uptake_tammann * effective_melting_k(key), SURFACE_EA_KJ
        if any(v > 0 for _, v in rxn.gases):  # releases gas (carbonate, hydroxide, ...)
            onset = pp.release_onset_k
            t_dec = decomposition_k(key)
            if t_dec is not None:
                onset = min(onset, 0.95 * t_dec)
            return onset, SURFACE_EA_KJ
        return pp.bulk_tammann * effective_melting_k(key), BULK_EA_KJ  # exsolution: bulk diffusion

    def _phase_channel(self, key: str, temperature_k: float, dt: float, run: _Run):
        rxn = self.view.best_reaction((key,), temperature_k, run.atmosphere)
        if rxn is None:
            return None
        pp = hidden.phase_params(self.seed, key, self._hid)
        onset, ea = self._phase_onset_k(key, rxn)
        k = pp.k_ref * driving_force_gate(rxn.driving_force, pp.threshold) * run.batch_factor
        k *= min(1.0, arrhenius(1.0, ea, onset, temperature_k))
        if k * dt < 1e-9:
            return None
        return (0.0, rxn, k, ("phase", key))

    def _pair_onset_k(self, a: str, b: str, product: str | None = None) -> float:
        """Tammann-like onset of the pair's diffusion (K).

        Reactants must be mobile (τ·min(Tm_a, Tm_b), Tammann's rule) and the cations must then
        cross the growing product layer, whose own mobility sets in at τ of its melting point; the
        onset uses the geometric blend min(Tm)^(1−w)·Tm_product^w (w hidden per world, never below
        the reactant term). A gas-releasing reactant must also be able to decompose."""
        pp = hidden.pair_params(self.seed, a, b, self._hid)
        tm = min(effective_melting_k(a), effective_melting_k(b))
        if product is not None:
            w = self._params.product_layer_weight
            tm = max(tm, tm ** (1.0 - w) * effective_melting_k(product) ** w)
        onset = pp.tammann * tm + pp.onset_offset_k
        for key in (a, b):
            if make_phase(key).elements & RELEASED_ELEMENTS:
                release = hidden.phase_params(self.seed, key, self._hid).release_onset_k
                t_dec = decomposition_k(key)
                if t_dec is not None:
                    release = min(release, 0.95 * t_dec)
                onset = max(onset, release)
        return onset

    def _pair_diffusion_k(
        self, pool: _Pool, a: str, b: str, onset_k: float, temperature_k: float, run: _Run
    ) -> float:
        """Diffusion-controlled (Ginstling–Brounshtein) rate constant, 1/min: Arrhenius from the
        onset, ×20 with a liquid, and scaled by the reactivity of the coarser powder (GB: k ∝ D/r²;
        the reaction front must cross the largest particles)."""
        pp = hidden.pair_params(self.seed, a, b, self._hid)
        k = arrhenius(pp.k_onset, pp.ea_kj, onset_k, temperature_k) * run.batch_factor
        fresh = self._params.fresh_reactivity
        k *= min(pool.reactivity.get(a, fresh), pool.reactivity.get(b, fresh))
        if self._fluid(a, temperature_k) or self._fluid(b, temperature_k):
            k = max(k, pp.k_onset) * LIQUID_RATE_FACTOR
        return k

    def _pair_channel(self, pool: _Pool, a: str, b: str, temperature_k: float, dt: float, run: _Run):
        pp = hidden.pair_params(self.seed, a, b, self._hid)
        k_max = self._pair_diffusion_k(pool, a, b, self._pair_onset_k(a, b), temperature_k, run)
        if k_max * AFFINITY_MAX * dt < 1e-7:  # even the largest driving force could not move it
            return None
        rxn = self.view.best_reaction((a, b), temperature_k, run.atmosphere)
        if rxn is None:
            return None
        if pp.kinetic_product and rxn.main_product is not None:
            alt = self.view.best_reaction(
                (a, b), temperature_k, run.atmosphere, exclude=frozenset({rxn.main_product})
            )
            if alt is not None and alt.driving_force >= pp.kinetic_ratio * rxn.driving_force:
                rxn = alt
        onset = self._pair_onset_k(a, b, rxn.main_product)
        k_diff = self._pair_diffusion_k(pool, a, b, onset, temperature_k, run) * affinity(rxn.interaction)
        k = mixed_control(k_diff, nucleation_rate(rxn.interaction, pp.threshold, temperature_k))
        if k * dt < 1e-12:
            return None
        return (0.0, rxn, k, ("pair", a, b))

    def _apply(
        self, pool: _Pool, rxn: Reaction, dtau: float, ident: tuple, temperature_k: float, run: _Run
    ) -> None:
        reac = dict(rxn.reactants)
        if any(pool.n.get(k, 0.0) <= 1e-12 for k in reac):
            return
        if ident[0] == "pair":
            key = (ident[1], ident[2])
            tau0 = pool.tau_pair.get(key, 0.0)
            pool.tau_pair[key] = tau0 + dtau
            frac = step_fraction(gb_alpha, tau0, tau0 + dtau)
            atoms = {k: v * make_phase(k).atoms for k, v in pool.n.items() if v > 0}
            total = sum(atoms.values())
            xi_max = math.inf
            for k, coef in reac.items():
                other = total - atoms[k]
                partner = next(p for p in reac if p != k)
                share = atoms[partner] / other if other > 0 else 0.0
                xi_max = min(xi_max, pool.n[k] * share / coef)
        else:
            key = ident[1]
            tau0 = pool.tau_phase.get(key, 0.0)
            pool.tau_phase[key] = tau0 + dtau
            frac = step_fraction(cv_alpha, tau0, tau0 + dtau)
            xi_max = min(pool.n[k] / coef for k, coef in reac.items())
        xi = frac * xi_max
        if xi <= 0:
            return
        for k, coef in reac.items():
            pool.n[k] = max(pool.n[k] - xi * coef, 0.0)
        for k, coef in rxn.products:
            pool.add(k, xi * coef, self._params.fresh_reactivity)
        run.gas_mg += xi * sum(GAS_MOLAR_MASS[g] * v for g, v in rxn.gases)
        moved_mg = xi * sum(coef * make_phase(k).molar_mass for k, coef in reac.items())
        if moved_mg >= NOTE_MIN_SHARE * run.initial_mg:
            names = {k: self.name_of(k) for k in list(reac) + [p for p, _ in rxn.products]}
            tag = "decomposition" if ident[0] == "phase" else "reaction"
            run.note_once(
                f"{tag}:{rxn.equation(names)}",
                f"{tag} from {temperature_k - 273.15:.0f} °C: {rxn.equation(names)}",
            )

    def _evaporate(self, pool: _Pool, temperature_k: float, dt: float, run: _Run) -> None:
        for key in [k for k, v in pool.n.items() if v > 1e-12]:
            phase = make_phase(key)
            element, share = loss_fraction(
                phase, temperature_k, dt, self._liquid(key, temperature_k), self._params.volatility_scale
            )
            if share <= 0:
                continue
            lost = pool.n[key] * share
            removed_mg = lost * phase.molar_mass
            residue: dict[str, float] = {}
            rest = {e: a * lost for e, a in phase.amounts if e != element and e not in OPEN_ELEMENT_GAS}
            if rest:
                open_el = [e for e in phase.elements if e in OPEN_ELEMENT_GAS]
                try:
                    residue = self.view.equilibrium(rest, temperature_k, run.atmosphere, open_el)
                except ChemistryError:
                    residue = {}
            pool.n[key] -= lost
            residue_mg = 0.0
            for k, v in residue.items():
                pool.add(k, v, self._params.fresh_reactivity)
                residue_mg += v * make_phase(k).molar_mass
            run.evaporated_mg += max(removed_mg - residue_mg, 0.0)
            run.note_once(
                f"evap:{element}", f"{element} oxide evaporating from {temperature_k - 273.15:.0f} °C"
            )

    def _result(self, pools: list[_Pool], run: _Run) -> TrueOutcome:
        total: dict[str, float] = {}
        for pool in pools:
            for k, v in pool.n.items():
                if v > 0:
                    total[k] = total.get(k, 0.0) + v * make_phase(k).molar_mass
        mass = sum(total.values())
        if mass <= 0:
            raise ChemistryError("nothing solid is left: everything evaporated or decomposed into gases")
        phases: dict[str, float] = {}
        for k, m in sorted(total.items(), key=lambda kv: -kv[1]):
            if m / mass >= MIN_REPORTED_FRACTION:
                name = self.name_of(k)
                phases[name] = phases.get(name, 0.0) + m / mass
        norm = sum(phases.values())
        phases = {k: v / norm for k, v in phases.items()}
        return TrueOutcome(
            phases=phases,
            mass_mg=mass,
            notes=run.notes,
            initial_mass_mg=run.initial_mg,
            gas_released_mg=run.gas_mg,
            evaporated_mg=run.evaporated_mg,
        )
