"""The ask/tell loop every planner shares: the search space, bookkeeping, outcomes, proposals.

A planner's search space is a list of *cells*: (precursor set, heating temperature, dwell). In the lab
the sets come from :func:`planners.candidates.enumerate_sets` and the temperatures from a ladder (plus
the literature prediction); in a replay benchmark the space is exactly the measured cells. Subclasses
only decide which untested cells to propose (``_choose``) and what to learn (``_learn``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
from labos.planners.candidates import DEFAULT_BATCH_MG, CandidateSet, enumerate_sets, make_candidate, set_key
from labos.planners.chemistry import canonical, n_atoms, same_phase
from labos.planners.energies import ThermoView
from labos.planners.errors import PlannerError, PlannerExhaustedError, UnknownPhaseError
from labos.planners.pairwise import Prediction, ThermoPairGuess, analyse, predict
from labos.planners.proposal import DEFAULT_DWELL_MIN, Proposal, build_recipe

from labos.domain import DEFAULT_FURNACE_MAX_C, Outcome, Precursor, Target
from labos.errors import FormulaError

# Solid-state syntheses in the text-mined literature fire mostly at 600-1200 °C (Kononova et al. 2019;
# Huo et al. 2022); the ladder spans that, and _ladder() drops what the furnaces cannot reach.
DEFAULT_LADDER_C: tuple[float, ...] = (600.0, 700.0, 800.0, 900.0, 1000.0, 1100.0, 1200.0)
LITERATURE_STEP_C = 25.0  # literature temperatures are rounded to this step
SELECTIVITY_T_C = 800.0  # pairwise competition is judged at one temperature (a property of the pairs)
NO_PRIORS_FLAG = "no literature priors available: ranking uses thermodynamics alone"
NO_THERMO_FLAG = "no thermodynamic data: energies unavailable, ranking uses literature priors/order only"


@dataclass(frozen=True)
class Cell:
    """One point of the search space."""

    candidate: CandidateSet
    temperature_c: float
    dwell_min: float = DEFAULT_DWELL_MIN
    regrind_reheat: bool = False

    @property
    def set_key(self) -> tuple[str, ...]:
        return self.candidate.key

    @cached_property
    def key(self) -> tuple[Any, ...]:
        return (self.candidate.key, round(self.temperature_c, 1), round(self.dwell_min), self.regrind_reheat)

    def label(self) -> str:
        extra = ", regrind + reheat" if self.regrind_reheat else ""
        return f"{' + '.join(self.candidate.precursors)} at {self.temperature_c:.0f} °C for {self.dwell_min / 60:.1f} h{extra}"


@dataclass
class Observation:
    cell: Cell
    phases: dict[str, float]  # canonical formula → weight fraction
    target_fraction: float
    success: bool
    experiment_id: str


@dataclass
class Decision:
    """A subclass's choice of one cell, with the numbers and words for its proposal."""

    cell: Cell
    why: str
    expected_yield: float = 0.0
    success_probability: float | None = None
    uncertainty: float | None = None
    intermediates: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


def _target_formula(target: Target | str) -> str:
    formula = target.formula if isinstance(target, Target) else str(target)
    canonical(formula)  # raises FormulaError naming the problem
    return formula


class BasePlanner:
    """Common state and the ask/tell API; see the module docstring."""

    name: ClassVar[str] = "base"
    extrapolate_c: ClassVar[float] = 0.0  # see PairwiseStore.reaction

    def __init__(
        self,
        target: Target | str,
        inventory: Iterable[Precursor | str] | None = None,
        thermo: Any = None,
        priors: Any = None,
        seed: int = 0,
        *,
        space: Iterable[tuple[Sequence[str], float]] | None = None,
        temperatures_c: Sequence[float] | None = None,
        max_size: int | None = None,
        batch_mg: float = DEFAULT_BATCH_MG,
        dwell_min: float | None = None,
        atmosphere: str = "air",
        success_threshold: float | None = None,
        energy_noise_ev: float = 0.0,
        furnace_max_c: float = DEFAULT_FURNACE_MAX_C,
        store: Any = None,
    ):
        from labos.config import get_settings

        self.target = _target_formula(target)
        self.target_key = canonical(self.target)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.atmosphere = str(atmosphere)
        self.batch_mg = float(batch_mg)
        self.furnace_max_c = float(furnace_max_c)
        self.threshold = float(success_threshold or get_settings().success_threshold)
        if isinstance(thermo, ThermoView):
            self.thermo = thermo.with_noise(energy_noise_ev, seed) if energy_noise_ev else thermo
        else:
            self.thermo = ThermoView(thermo, self.atmosphere, energy_noise_ev, seed)
        self.priors = priors
        self.flags: list[str] = []
        if priors is None:
            self.flags.append(NO_PRIORS_FLAG)
        if not self.thermo.available:
            self.flags.append(NO_THERMO_FLAG)
        self.default_dwell_min = float(dwell_min) if dwell_min else DEFAULT_DWELL_MIN
        self.fixed_space = space is not None
        self._init_store(store)
        # ARROWS3: untested pairs are assumed to form their most exergonic interface products
        self.guess = ThermoPairGuess(self.thermo, self.atmosphere) if self.thermo.available else None
        self.cells = self._build_space(inventory, space, temperatures_c, max_size)
        if not self.cells:
            raise PlannerError(f"the search space for {self.target} is empty")
        self._by_key: dict[tuple[Any, ...], Cell] = {c.key: c for c in self.cells}
        self._tiebreak = {
            c.key: float(v) for c, v in zip(self.cells, self.rng.random(len(self.cells)), strict=True)
        }
        self.thermo.note_phases({p for c in self.cells for p in c.set_key} | {self.target_key})
        self.observations: list[Observation] = []
        self.tested: dict[tuple[Any, ...], Observation] = {}
        self.pending: dict[str, Cell] = {}
        self._dg_cache: dict[tuple[Any, ...], float | None] = {}
        self._pred_cache: dict[tuple[Any, ...], Prediction] = {}
        self._sel_cache: dict[tuple[str, ...], float | None] = {}

    # ------------------------------------------------------------------ set-up

    def _init_store(self, store: Any) -> None:
        from labos.planners.pairwise import PairwiseStore

        self.store = store if store is not None else PairwiseStore(self.atmosphere)

    def _ladder(self) -> list[float]:
        return [t for t in DEFAULT_LADDER_C if t <= self.furnace_max_c]

    def _build_space(self, inventory, space, temperatures_c, max_size) -> list[Cell]:
        if space is not None:
            cells: dict[tuple[Any, ...], Cell] = {}
            for item in space:
                precursors, temperature = item
                if not precursors:
                    raise PlannerError("a cell of the search space has no precursors")
                cand = make_candidate(
                    self.target, list(precursors), self.batch_mg, self.atmosphere, allow_nonunique=True
                )
                assert cand is not None
                cell = Cell(cand, float(temperature), self.default_dwell_min)
                cells.setdefault(cell.key, cell)
            return sorted(cells.values(), key=lambda c: (c.set_key, c.temperature_c))
        if inventory is None:
            raise PlannerError("a planner needs an inventory of precursors (or an explicit search space)")
        candidates = enumerate_sets(self.target, inventory, max_size, self.batch_mg, self.atmosphere)
        temps = sorted({float(t) for t in (temperatures_c or self._ladder())})
        bad = [t for t in temps if t > self.furnace_max_c or t < 20]
        if bad:
            raise PlannerError(
                f"temperatures {bad} °C are outside 20–{self.furnace_max_c:.0f} °C (furnace rating)"
            )
        cells = [Cell(c, t, self.default_dwell_min) for c in candidates for t in temps]
        if self.priors is not None and temperatures_c is None:
            cells += self._literature_cells(candidates, temps)
        return cells

    def _literature_cells(self, candidates: list[CandidateSet], ladder: list[float]) -> list[Cell]:
        """Each set also at the temperature and dwell the literature model predicts for it."""
        try:
            preds = self.priors.predict_conditions_many(self.target, [list(c.precursors) for c in candidates])
        except Exception as exc:  # the priors are advisory: planning goes on without them
            self.flags.append(f"literature temperature model failed ({exc})")
            return []
        out = []
        for cand, pred in zip(candidates, preds, strict=True):
            t = round(float(pred.temperature_c) / LITERATURE_STEP_C) * LITERATURE_STEP_C
            dwell = min(max(round(float(pred.dwell_h) * 2) / 2, 1.0), 12.0) * 60.0
            if min(ladder) <= t <= self.furnace_max_c and t not in ladder:
                out.append(Cell(cand, float(t), dwell))
        return out

    # ------------------------------------------------------------------ shared numbers

    def reaction_energy(self, cell: Cell) -> float | None:
        """ΔG (eV/atom of target) of the balanced reaction to the target at the cell's temperature."""
        key = (cell.set_key, round(cell.temperature_c))
        if key not in self._dg_cache:
            rxn = cell.candidate.reaction
            value = None
            if rxn is not None and self.thermo.available:
                value = self.thermo.reaction_energy(
                    rxn.signed(), cell.temperature_c + 273.15, n_atoms(self.target_key)
                )
            self._dg_cache[key] = value
        return self._dg_cache[key]

    def selectivity(self, candidate: CandidateSet) -> float | None:
        """Primary competition of the set (McDermott et al. 2023, C1-like), eV/atom.

        ΔG of the target reaction minus the most exergonic reaction any precursor pair of the set
        can run instead (per atom of the mixture, at SELECTIVITY_T_C): ≤ 0 when the target reaction
        outcompetes every pairwise side reaction, > 0 when some pair would rather make something else.
        """
        key = candidate.key
        if key in self._sel_cache:
            return self._sel_cache[key]
        value = None
        rxn = candidate.reaction
        if rxn is not None and self.thermo.available:
            tk = SELECTIVITY_T_C + 273.15
            atoms = sum(c * n_atoms(canonical(r)) for r, c in rxn.reactants.items())
            atoms += sum(-c * n_atoms(g) for g, c in rxn.gases.items() if c < 0)
            dg = self.thermo.reaction_energy(rxn.signed(), tk, atoms)
            worst = 0.0
            for a, b in candidate.pairs:
                best = self.thermo.interface(a, b, tk)
                if best is not None and self.target_key not in best.products:
                    worst = min(worst, best.energy_per_atom)
            value = dg - worst
        self._sel_cache[key] = value
        return value

    def predict_cell(self, cell: Cell) -> Prediction:
        """Intermediates expected at the cell's temperature (cached until the store changes around them).

        Observed pairwise reactions first; pairs never tested get thermodynamic predictions (flagged
        as predicted in ``Prediction.applied``); a pair seen inert at ≥ T stays inert.
        """
        key = (cell.set_key, round(cell.temperature_c, 1))
        pred = self._pred_cache.get(key)
        if pred is None or not self.store.still_valid(pred):
            rxn = cell.candidate.reaction
            amounts = (
                {canonical(p): c for p, c in rxn.reactants.items()}
                if rxn is not None
                else dict.fromkeys(cell.set_key, 1.0)
            )
            pred = predict(
                self.store,
                amounts,
                cell.temperature_c,
                extrapolate_c=self.extrapolate_c,
                guess=self.guess,
                target=self.target_key,
            )
            self._pred_cache[key] = pred
        return pred

    def remaining_driving_force(self, cell: Cell, pred: Prediction | None = None) -> float | None:
        """ΔG′ (eV/atom of target) from the predicted intermediates (+ gases so far) to target + gases.

        When a predicted step itself forms the target, the driving force is that of the mixture just
        before that step (the target-forming step), not the near-zero one left after it.
        """
        rxn = cell.candidate.reaction
        if rxn is None or not self.thermo.available:
            return None
        pred = pred or self.predict_cell(cell)
        if not pred.applied:
            return self.reaction_energy(cell)
        tk = cell.temperature_c + 273.15
        g = self.thermo.g_per_fu
        phases, gases = pred.before_target or (pred.phases, pred.gases)
        if not phases.keys() - set(cell.set_key) and not gases:
            return self.reaction_energy(cell)  # the target forms straight from the precursors
        state = sum(n * g(p, tk) for p, n in phases.items()) + sum(n * g(x, tk) for x, n in gases.items())
        final = g(self.target_key, tk) + sum(c * g(x, tk) for x, c in rxn.gases.items())
        return (final - state) / n_atoms(self.target_key)

    def failed_with(
        self, cell: Cell, pred: Prediction | None = None, below: float = 0.05
    ) -> Observation | None:
        """A failed experiment (target < ``below``) at ≥ T whose phases contain this cell's intermediates."""
        pred = pred or self.predict_cell(cell)
        phases = pred.phase_set - {self.target_key}
        if not phases or self.target_key in pred.phase_set:
            return None
        for o in self.observations:
            if o.target_fraction < below and o.cell.temperature_c >= cell.temperature_c - 1e-6:
                if phases <= set(o.phases):
                    return o
        return None

    def energy_flags(self, phases: Iterable[str]) -> list[str]:
        est = sorted({canonical(p) for p in phases if self.thermo.available and self.thermo.is_estimated(p)})
        return [f"energy of {p} estimated (not in thermo data): hull of known phases" for p in est]

    # ------------------------------------------------------------------ ask / tell

    def untested(self) -> list[Cell]:
        busy = {c.key for c in self.pending.values()}
        return [c for c in self.cells if c.key not in self.tested and c.key not in busy]

    def ask(self) -> Proposal:
        """The next experiment to run."""
        return self.ask_batch(1)[0]

    def ask_batch(self, n: int) -> list[Proposal]:
        """``n`` different experiments to run at once (one per free furnace)."""
        if n < 1:
            raise PlannerError(f"ask_batch needs n >= 1, got {n}")
        available = self.untested() or self._expand()
        if not available:
            raise PlannerExhaustedError(
                f"every candidate for {self.target} has been proposed ({len(self.cells)} cells, "
                f"{len(self.tested)} with results)"
            )
        decisions = self._choose(available, min(n, len(available)))
        proposals = [self._proposal(d) for d in decisions]
        for p, d in zip(proposals, decisions, strict=True):
            self.pending[p.id] = d.cell
        return proposals

    def tell(self, proposal: Proposal, outcome: Outcome) -> Observation:
        """Learn from the measured outcome of a proposal."""
        cell = self.pending.pop(proposal.id, None) or self.cell_for(
            proposal.precursors, proposal.temperature_c, proposal.dwell_min
        )
        return self._record(cell, outcome)

    def observe(
        self,
        precursors: Sequence[str],
        temperature_c: float,
        outcome: Outcome,
        dwell_min: float | None = None,
    ) -> Observation:
        """Learn from an experiment the planner did not propose (operator recipe, earlier campaign)."""
        return self._record(self.cell_for(precursors, temperature_c, dwell_min), outcome)

    def cell_for(
        self, precursors: Sequence[str], temperature_c: float, dwell_min: float | None = None
    ) -> Cell:
        """The cell for these precursors and temperature (added to the space if it is new)."""
        key = set_key(precursors)
        dwell = self.default_dwell_min if dwell_min is None else float(dwell_min)
        matches = [c for c in self.cells if c.set_key == key and abs(c.temperature_c - temperature_c) < 0.05]
        if matches:
            return min(matches, key=lambda c: abs(c.dwell_min - dwell))
        cand = next((c.candidate for c in self.cells if c.set_key == key), None) or make_candidate(
            self.target, list(precursors), self.batch_mg, self.atmosphere, allow_nonunique=True
        )
        assert cand is not None
        cell = Cell(cand, float(temperature_c), dwell)
        self.cells.append(cell)
        self._by_key[cell.key] = cell
        self._tiebreak[cell.key] = float(self.rng.random())
        return cell

    def _record(self, cell: Cell, outcome: Outcome) -> Observation:
        phases = self.read_phases(outcome)
        frac = sum(w for p, w in phases.items() if p == self.target_key)
        if outcome.target_formula is None or same_phase(outcome.target_formula, self.target):
            frac = max(frac, outcome.target_fraction)
        frac = float(min(frac, 1.0))
        obs = Observation(
            cell=cell,
            phases=phases,
            target_fraction=frac,
            success=frac >= self.threshold - 1e-9,
            experiment_id=outcome.experiment_id,
        )
        self.observations.append(obs)
        self.tested[cell.key] = obs
        self.thermo.note_phases(phases)
        self._learn(obs)
        return obs

    @staticmethod
    def read_phases(outcome: Outcome) -> dict[str, float]:
        """Phases of an outcome by composition; a name that is not a formula is a clear error."""
        phases: dict[str, float] = {}
        for p in outcome.phases:
            try:
                key = canonical(p.formula)
            except FormulaError as exc:
                raise UnknownPhaseError(
                    f"outcome {outcome.experiment_id} names phase {p.formula!r} ({p.phase_id}), which is not a "
                    f"chemical formula the planner can use: {exc}"
                ) from None
            phases[key] = phases.get(key, 0.0) + float(p.weight_fraction)
        return phases

    # ------------------------------------------------------------------ results

    @property
    def successes(self) -> list[Observation]:
        return [o for o in self.observations if o.success]

    @property
    def best(self) -> Observation | None:
        return max(self.observations, key=lambda o: o.target_fraction, default=None)

    # ------------------------------------------------------------------ for subclasses

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        raise NotImplementedError

    def _learn(self, obs: Observation) -> None:
        """Default: no learning."""

    def _expand(self) -> list[Cell]:
        """New cells once the space is used up (continuous tuning); default: none."""
        return []

    def _analyse(self, obs: Observation):
        """Retro-analysis of one result into the pairwise store (for the learning planners)."""
        return analyse(
            self.store, obs.cell.set_key, obs.cell.temperature_c, obs.phases, evidence=obs.experiment_id
        )

    def _proposal(self, d: Decision) -> Proposal:
        cell = d.cell
        rxn = cell.candidate.reaction
        flags = list(dict.fromkeys([*self.flags, *d.flags]))
        if rxn is None:
            flags.append(
                f"{' + '.join(cell.candidate.precursors)} cannot balance to {self.target}: equal masses"
            )
        elif not cell.candidate.unique:
            flags.append("interchangeable sources in the set: an even split was chosen for the masses")
        flags += self.energy_flags([self.target, *cell.set_key, *d.intermediates])
        dg = self.reaction_energy(cell)
        parts = [f"{self.name}: {cell.label()}."]
        if rxn is not None:
            energy = (
                f" (ΔG = {dg * 1000:.0f} meV/atom at {cell.temperature_c:.0f} °C)" if dg is not None else ""
            )
            parts.append(f"Overall: {rxn.equation}{energy}.")
        parts.append(d.why)
        parts.append(
            f"Expected target fraction {d.expected_yield:.2f}"
            + (f" ± {d.uncertainty:.2f}" if d.uncertainty is not None else "")
            + (f", P(success) {d.success_probability:.2f}" if d.success_probability is not None else "")
            + "."
        )
        if flags:
            parts.append("Notes: " + "; ".join(flags) + ".")
        return Proposal(
            planner=self.name,
            target=self.target,
            precursors=list(cell.candidate.precursors),
            recipe=build_recipe(
                cell.candidate,
                cell.temperature_c,
                cell.dwell_min,
                atmosphere=self.atmosphere,
                regrind_reheat=cell.regrind_reheat,
            ),
            temperature_c=cell.temperature_c,
            dwell_min=cell.dwell_min,
            explanation=" ".join(p for p in parts if p),
            expected_yield=float(np.clip(d.expected_yield, 0, 1)),
            success_probability=None
            if d.success_probability is None
            else float(np.clip(d.success_probability, 0, 1)),
            uncertainty=d.uncertainty,
            expected_reaction=rxn.equation if rxn is not None else None,
            expected_intermediates=list(d.intermediates),
            flags=flags,
            seed=self.seed,
        )
