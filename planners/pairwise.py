"""The pairwise-reaction store: what we learned about which phase pairs react, to what, and when.

ARROWS3's central idea (Szymanski et al., Nat. Commun. 2023): a solid-state reaction proceeds through
pairwise reactions between the phases in contact, so each XRD result tells which pairs reacted and
which stayed inert at that temperature, and that knowledge transfers to every other precursor set
that would form the same pairs. Records are keyed by the reactant pair (or a single phase, for
decompositions) and atmosphere, with the temperature interval of the onset: ``(t_inert_max_c,
t_react_min_c]``. The store is a networkx graph (phase nodes, reaction nodes) so routes to a phase can
be traced; :mod:`planners.store` persists it in the database so later campaigns reuse it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from labos.planners.balance import balance
from labos.planners.calibration import TemperatureCalibration
from labos.planners.chemistry import canonical, is_gas, n_atoms, nonvolatile, weight_to_mole_fractions
from labos.planners.errors import PlannerError

Pair = tuple[str, ...]  # one phase (decomposition) or two phases, canonical formulas, sorted
PARTIAL_EXTENT = 0.5  # share of a phase a competing (partial) decomposition is assumed to consume
PREDICTED = "thermodynamics"  # PairRecord.source of a guess for an untested pair (never stored)
# A guess for an untested pair: (pair, temperature °C) → a PairRecord with source=PREDICTED, or None.
Guess = Callable[[Pair, float], "PairRecord | None"]


def pair_key(*phases: str) -> Pair:
    return tuple(sorted(canonical(p) for p in phases))


@dataclass
class PairRecord:
    """What is known about one pair (or single phase) in one atmosphere."""

    reactants: Pair
    atmosphere: str = "air"
    products: dict[str, float] = field(default_factory=dict)  # phase → share of product atoms
    t_inert_max_c: float | None = None  # highest temperature at which the pair was seen unreacted
    t_react_min_c: float | None = None  # lowest temperature at which the reaction was seen
    ambiguous: bool = False  # only ever seen as one of several possible explanations
    partial: bool = False  # a decomposition seen beside reactions of the same phase: it competes
    evidence: list[str] = field(default_factory=list)  # experiment ids
    source: str = "observed"
    max_fraction: dict[str, float] = field(default_factory=dict)  # highest weight fraction seen per product
    energy_per_atom: float | None = None  # driving force of a thermodynamic prediction, eV/atom

    @property
    def predicted(self) -> bool:
        """A thermodynamic guess for an untested pair, not something seen in an experiment."""
        return self.source == PREDICTED

    @property
    def key(self) -> str:
        return "+".join(self.reactants)

    def reacts_at(self, temperature_c: float) -> bool:
        return (
            bool(self.products)
            and self.t_react_min_c is not None
            and temperature_c >= self.t_react_min_c - 1e-6
        )

    def inert_at(self, temperature_c: float) -> bool:
        return self.t_inert_max_c is not None and temperature_c <= self.t_inert_max_c + 1e-6

    def to_dict(self) -> dict[str, Any]:
        return {
            "reactants": list(self.reactants),
            "atmosphere": self.atmosphere,
            "products": dict(self.products),
            "t_inert_max_c": self.t_inert_max_c,
            "t_react_min_c": self.t_react_min_c,
            "ambiguous": self.ambiguous,
            "partial": self.partial,
            "evidence": list(self.evidence),
            "source": self.source,
            "max_fraction": dict(self.max_fraction),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairRecord:
        return cls(
            reactants=pair_key(*data["reactants"]),
            atmosphere=data.get("atmosphere", "air"),
            products={canonical(k): float(v) for k, v in (data.get("products") or {}).items()},
            t_inert_max_c=data.get("t_inert_max_c"),
            t_react_min_c=data.get("t_react_min_c"),
            ambiguous=bool(data.get("ambiguous", False)),
            partial=bool(data.get("partial", False)),
            evidence=list(data.get("evidence") or []),
            source=data.get("source", "observed"),
            max_fraction={canonical(k): float(v) for k, v in (data.get("max_fraction") or {}).items()},
        )

    def describe(self) -> str:
        left = " + ".join(self.reactants)
        if self.predicted:
            energy = (
                f", {self.energy_per_atom * 1000:.0f} meV/atom" if self.energy_per_atom is not None else ""
            )
            return f"{left} -> {' + '.join(sorted(self.products))} (predicted from thermodynamics{energy})"
        if self.products and self.t_react_min_c is not None:
            right = " + ".join(sorted(self.products))
            note = " (one of several explanations)" if self.ambiguous else ""
            seen = f" (observed in {', '.join(self.evidence[:3])})" if self.evidence else " (observed)"
            return f"{left} -> {right} from ≤{self.t_react_min_c:.0f} °C{note}{seen}"
        if self.t_inert_max_c is not None:
            return f"{left} inert up to {self.t_inert_max_c:.0f} °C"
        return f"{left}: unknown"


class PairwiseStore:
    """Pairwise reactions with temperature bounds, as a networkx graph (phases ↔ reaction nodes)."""

    def __init__(self, atmosphere: str = "air", records: Iterable[PairRecord] = ()):
        self.atmosphere = atmosphere
        self.graph = nx.DiGraph()
        self._records: dict[Pair, PairRecord] = {}
        self.version = 0  # bumps on every change, so planners know when to recompute predictions
        # firing temperatures that worked, shared like the reactions by every planner of a campaign
        self.calibration = TemperatureCalibration()
        self._phase_stamp: dict[str, int] = {}
        for rec in records:
            self._put(rec)

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self):
        return iter(self._records.values())

    def get(self, *phases: str) -> PairRecord | None:
        return self._records.get(pair_key(*phases))

    def reaction(self, pair: Pair, temperature_c: float, extrapolate_c: float = 0.0) -> PairRecord | None:
        """The known reaction of ``pair`` at T, or None.

        ``extrapolate_c`` > 0 also returns a reaction seen only at higher temperatures when T is within
        that many degrees below its lowest observed temperature and the pair was not seen inert at T:
        onsets lie below the temperatures where reactions are first observed.
        """
        rec = self._records.get(pair)
        if rec is None or not rec.products or rec.t_react_min_c is None:
            return None
        if rec.reacts_at(temperature_c):
            return rec
        if (
            extrapolate_c > 0
            and temperature_c >= rec.t_react_min_c - extrapolate_c
            and not rec.inert_at(temperature_c)
        ):
            return rec
        return None

    def status(self, pair: Pair, temperature_c: float) -> str:
        """'reacts', 'inert' or 'unknown' at this temperature."""
        rec = self._records.get(pair)
        if rec is None:
            return "unknown"
        if rec.reacts_at(temperature_c) and not rec.ambiguous:
            return "reacts"
        if rec.inert_at(temperature_c):
            return "inert"
        return "unknown"

    def producers(self, phase: str) -> list[PairRecord]:
        """Known reactions that form ``phase`` (graph in-edges)."""
        node = ("phase", canonical(phase))
        if node not in self.graph:
            return []
        return [self._records[self.graph.nodes[r]["pair"]] for r in self.graph.predecessors(node)]

    # ------------------------------------------------------------------ updates

    def _put(self, rec: PairRecord) -> None:
        if rec.predicted:
            raise PlannerError(
                f"{rec.key}: a thermodynamic prediction is not evidence and cannot enter the pairwise store"
            )
        self._records[rec.reactants] = rec
        rnode = ("rxn", rec.key)
        self.graph.add_node(rnode, pair=rec.reactants)
        for r in rec.reactants:
            self.graph.add_edge(("phase", r), rnode)
        for p in rec.products:
            self.graph.add_edge(rnode, ("phase", p))
        self.version += 1
        for r in rec.reactants:
            self._phase_stamp[r] = self.version

    def still_valid(self, prediction: Prediction) -> bool:
        """True when no record touching a phase of this prediction changed since it was made."""
        return all(self._phase_stamp.get(p, 0) <= prediction.stamp for p in prediction.seen)

    def record_inert(self, pair: Pair, temperature_c: float, evidence: str | None = None) -> None:
        rec = self._records.get(pair) or PairRecord(reactants=pair, atmosphere=self.atmosphere)
        if rec.t_inert_max_c is None or temperature_c > rec.t_inert_max_c:
            rec.t_inert_max_c = float(temperature_c)
        if evidence and evidence not in rec.evidence:
            rec.evidence.append(evidence)
        self._put(rec)

    def record_reaction(
        self,
        pair: Pair,
        products: dict[str, float],
        temperature_c: float,
        evidence: str | None = None,
        ambiguous: bool = False,
        fractions: dict[str, float] | None = None,
        partial: bool = False,
    ) -> None:
        rec = self._records.get(pair) or PairRecord(reactants=pair, atmosphere=self.atmosphere)
        rec.partial = rec.partial or partial
        for p, w in (fractions or {}).items():
            key = canonical(p)
            rec.max_fraction[key] = max(rec.max_fraction.get(key, 0.0), float(w))
        prods = {canonical(p): float(v) for p, v in products.items() if v > 0}
        if rec.products and not rec.ambiguous and ambiguous:
            pass  # a unique explanation already stands; a vague one does not overwrite it
        elif not rec.products or rec.ambiguous or not ambiguous:
            merged = dict(rec.products)
            for p, v in prods.items():
                merged[p] = max(merged.get(p, 0.0), v)
            total = sum(merged.values()) or 1.0
            rec.products = {p: v / total for p, v in merged.items()}
            rec.ambiguous = ambiguous and (rec.ambiguous or not rec.products)
            if not ambiguous:
                rec.ambiguous = False
        if rec.t_react_min_c is None or temperature_c < rec.t_react_min_c:
            rec.t_react_min_c = float(temperature_c)
        if evidence and evidence not in rec.evidence:
            rec.evidence.append(evidence)
        self._put(rec)

    def merge(self, other: PairwiseStore) -> None:
        """Fold another store in (widest knowledge: highest inert bound, lowest onset)."""
        for rec in other:
            if rec.t_inert_max_c is not None:
                self.record_inert(rec.reactants, rec.t_inert_max_c)
            if rec.products and rec.t_react_min_c is not None:
                self.record_reaction(
                    rec.reactants,
                    rec.products,
                    rec.t_react_min_c,
                    ambiguous=rec.ambiguous,
                    fractions=rec.max_fraction,
                    partial=rec.partial,
                )
            mine = self._records[rec.reactants]
            for e in rec.evidence:
                if e not in mine.evidence:
                    mine.evidence.append(e)

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self._records.values()]

    @classmethod
    def from_dicts(cls, rows: Iterable[dict[str, Any]], atmosphere: str = "air") -> PairwiseStore:
        return cls(
            atmosphere, [PairRecord.from_dict(r) for r in rows if r.get("atmosphere", "air") == atmosphere]
        )


# ---------------------------------------------------------------------- predicting intermediates


@dataclass
class Prediction:
    """Phases expected after heating at T, by applying pairwise reactions in order.

    Observed reactions (lowest onset first) come before thermodynamic guesses for untested pairs (most
    exergonic first); ``applied`` holds both, in order, and each record's ``source`` says which.
    """

    phases: dict[str, float]  # phase → mol (per formula unit of target)
    applied: list[PairRecord]
    unknown_pairs: list[Pair]  # pairs of the predicted phases never observed at T (reacting or inert)
    inert_pairs: list[Pair]
    gases: dict[str, float] = field(default_factory=dict)  # released (+) / taken up (−) so far
    seen: frozenset[str] = frozenset()  # every phase that appeared (for cache invalidation)
    stamp: int = 0
    # the mixture (phases, gases) just before the first step that formed ``target`` (if any step did)
    before_target: tuple[dict[str, float], dict[str, float]] | None = None

    @property
    def phase_set(self) -> frozenset[str]:
        return frozenset(p for p, n in self.phases.items() if n > 1e-6)

    @property
    def observed(self) -> list[PairRecord]:
        return [r for r in self.applied if not r.predicted]

    @property
    def predicted(self) -> list[PairRecord]:
        """Steps that rest on thermodynamics alone (untested pairs): less certain than observed ones."""
        return [r for r in self.applied if r.predicted]


def _apply(phases: dict[str, float], rec: PairRecord, atmosphere: str, gases: dict[str, float]) -> bool:
    """Apply one reaction to the mixture (limiting reactant), return False if it cannot balance."""
    reactants = [r for r in rec.reactants if phases.get(r, 0.0) > 1e-9]
    if len(reactants) != len(rec.reactants):
        return False
    options: list[dict[str, float]] = [dict(rec.products)]
    options += [{p: 1.0} for p in sorted(rec.products, key=lambda p: -rec.products[p])]
    for prods in options:
        bal = balance(tuple(reactants), {p: v / n_atoms(p) for p, v in prods.items()}, atmosphere)
        if bal is None:
            continue
        extent = min(phases[r] / c for r, c in bal.reactants.items())
        if rec.partial:
            extent *= PARTIAL_EXTENT  # competes with the phase's other reactions: some of it remains
        if extent <= 1e-12:
            return False
        for r, c in bal.reactants.items():
            phases[r] -= extent * c
            if phases[r] < 1e-9:
                phases.pop(r)
        for p, c in bal.products.items():
            phases[p] = phases.get(p, 0.0) + extent * c
        for g, c in bal.gases.items():
            gases[g] = gases.get(g, 0.0) + extent * c
        return True
    return False


def predict(
    store: PairwiseStore,
    amounts: dict[str, float],
    temperature_c: float,
    max_steps: int = 12,
    extrapolate_c: float = 0.0,
    guess: Guess | None = None,
    target: str | None = None,
) -> Prediction:
    """Apply pairwise reactions to a mixture of phases at ``temperature_c``.

    Known (observed) reactions go first, lowest onset first. With ``guess`` (see
    :class:`ThermoPairGuess`), a pair (or single phase) with no evidence at T — neither seen reacting
    nor seen inert at or above T, and with no observed products at any temperature — is assumed to
    form what thermodynamics predicts, most exergonic first (ARROWS3). Observed evidence always wins:
    a pair seen inert at ≥ T is never given a predicted reaction.
    """
    phases = {canonical(p): float(n) for p, n in amounts.items() if n > 0}
    target_key = canonical(target) if target else None
    applied: list[PairRecord] = []
    blocked: set[Pair] = set()
    gases: dict[str, float] = {}
    seen = set(phases)
    stamp = store.version
    before_target: tuple[dict[str, float], dict[str, float]] | None = None
    for _ in range(max_steps):
        present = sorted(p for p, n in phases.items() if n > 1e-9)
        options: list[tuple[float, Pair, PairRecord]] = []
        guesses: list[tuple[float, Pair, PairRecord]] = []
        for size in (1, 2):
            for combo in itertools.combinations(present, size):
                if combo in blocked:
                    continue
                rec = store.reaction(combo, temperature_c, extrapolate_c)
                if rec is not None:
                    options.append((rec.t_react_min_c or 0.0, combo, rec))
                elif guess is not None and _untested(store, combo, temperature_c):
                    g = guess(combo, temperature_c)
                    if g is not None:
                        guesses.append((g.energy_per_atom or 0.0, combo, g))
        if options:
            # lowest onset first; at the same onset a pair reaction before a single decomposition (a
            # decomposition seen beside a pair product was partial), then unambiguous ones
            options.sort(key=lambda o: (o[0], len(o[1]) == 1, o[2].ambiguous, o[1]))
        elif guesses:
            guesses.sort(key=lambda o: (o[0], o[1]))  # most exergonic first
            options = guesses
        else:
            break
        _, combo, rec = options[0]
        snapshot = (dict(phases), dict(gases))
        if _apply(phases, rec, store.atmosphere, gases):
            applied.append(rec)
            seen.update(phases)
            if before_target is None and target_key and target_key in phases:
                before_target = snapshot
        blocked.add(combo)
    present = sorted(p for p, n in phases.items() if n > 1e-6)
    unknown, inert = [], []
    for combo in itertools.combinations(present, 2):
        st = store.status(combo, temperature_c)
        (unknown if st == "unknown" else inert if st == "inert" else unknown).append(combo)
    return Prediction(
        phases=phases,
        applied=applied,
        unknown_pairs=unknown,
        inert_pairs=inert,
        gases=gases,
        seen=frozenset(seen),
        stamp=stamp,
        before_target=before_target,
    )


def _untested(store: PairwiseStore, combo: Pair, temperature_c: float) -> bool:
    """No evidence for this pair that a thermodynamic guess could contradict."""
    rec = store.get(*combo)
    if rec is None:
        return True
    if rec.inert_at(temperature_c):
        return False  # observed inert at this temperature or above: the evidence wins
    return not rec.products  # observed products (at another T): onset unknown, products known


class ThermoPairGuess:
    """Thermodynamic predictions for untested pairs, as PairRecords flagged ``source=PREDICTED``.

    Wraps :meth:`ThermoView.predicted_reaction` (kelvin inside, cached per pair and temperature
    bucket); the records are built once per (pair, bucket) so repeated predictions cost a dict lookup.
    """

    def __init__(self, thermo: Any, atmosphere: str = "air"):
        self.thermo = thermo
        self.atmosphere = atmosphere
        self._records: dict[tuple[Pair, int], PairRecord | None] = {}

    def __call__(self, pair: Pair, temperature_c: float) -> PairRecord | None:
        from labos.planners.energies import PREDICTION_BUCKET_K

        tk = temperature_c + 273.15
        key = (pair, int(round(tk / PREDICTION_BUCKET_K)))
        if key in self._records:
            return self._records[key]
        rec = None
        found = self.thermo.predicted_reaction(pair, tk)
        if found is not None:
            rec = PairRecord(
                reactants=pair,
                atmosphere=self.atmosphere,
                products=dict(found.products),
                source=PREDICTED,
                energy_per_atom=found.energy_per_atom,
            )
        self._records[key] = rec
        return rec


# ---------------------------------------------------------------------- learning from an outcome


@dataclass
class Analysis:
    """What one experiment taught: inert pairs, explained reactions, phases left unexplained."""

    inert: list[Pair] = field(default_factory=list)
    reactions: list[tuple[Pair, dict[str, float], bool]] = field(
        default_factory=list
    )  # pair, products, ambiguous
    fractions: dict[str, float] = field(default_factory=dict)  # observed weight fractions
    partial: list[Pair] = field(default_factory=list)  # decompositions that competed with other reactions
    unexplained: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if self.reactions:
            parts.append(
                "; ".join(
                    f"{' + '.join(p)} -> {' + '.join(sorted(pr))}{' (?)' if amb else ''}"
                    for p, pr, amb in self.reactions
                )
            )
        if self.inert:
            parts.append("inert: " + ", ".join(" + ".join(p) for p in self.inert))
        if self.unexplained:
            parts.append("unexplained: " + ", ".join(self.unexplained))
        return "; ".join(parts) or "nothing new"


def _can_make(product: str, sources: tuple[str, ...]) -> bool:
    """Each source supplies a non-volatile element of the product, and together they supply all."""
    need = nonvolatile(product)
    if not need:
        return False
    have = [nonvolatile(s) for s in sources]
    return all(h & need for h in have) and need <= frozenset().union(*have)


def analyse(
    store: PairwiseStore,
    precursors: Iterable[str],
    temperature_c: float,
    observed: dict[str, float],
    evidence: str | None = None,
    min_fraction: float = 0.02,
    update: bool = True,
) -> Analysis:
    """Retro-analysis of one result (ARROWS3 step 5) and update of the store.

    Phases present together after heating at T are recorded inert at T (pairs and, for precursors,
    single-phase decomposition). Each new phase is explained by the consumed phases that could make it:
    a single decomposition first (Occam), else a pair; a unique explanation is recorded as a reaction,
    several are recorded as ambiguous (used for prediction only when nothing better is known).
    """
    start = sorted({canonical(p) for p in precursors})
    obs = {canonical(p): w for p, w in observed.items() if w >= min_fraction and not is_gas(p)}
    before = predict(store, dict.fromkeys(start, 1.0), temperature_c)
    expected = set(before.phase_set) | set(start)
    present = sorted(obs)
    result = Analysis(fractions=obs)
    atom_share = weight_to_mole_fractions(obs)
    new = [p for p in present if p not in expected]
    consumed = sorted(p for p in expected if p not in obs) or sorted(expected)
    for product in new:
        singles = [(c,) for c in consumed if _can_make(product, (c,))]
        doubles = [pair for pair in itertools.combinations(consumed, 2) if _can_make(product, pair)]
        if not doubles and not singles:
            # maybe a consumed phase reacted with one that is still present
            doubles = [
                tuple(sorted(pair))
                for pair in itertools.product(consumed, sorted(expected & set(obs)))
                if pair[0] != pair[1] and _can_make(product, tuple(sorted(pair)))
            ]
        cands = singles or doubles
        if not cands:
            result.unexplained.append(product)
            continue
        ambiguous = len(cands) > 1
        for pair in cands:
            result.reactions.append((pair, {product: atom_share.get(product, 0.0)}, ambiguous))
    explaining = {pair for pair, _, _ in result.reactions}
    # Phases that sit together after heating did not react with each other at T (unless one of them
    # is a reactant of a reaction seen in this very result: then both remained only partly).
    for combo in itertools.combinations(present, 2):
        if combo not in explaining:
            result.inert.append(combo)
    for p in present:
        if p in start and (p,) not in explaining:
            result.inert.append((p,))
    # A decomposition is partial when its phase survives, or when the same phase also reacted with a
    # partner here and those pair products outweigh the decomposition product (it lost the race).
    pair_weight: dict[str, float] = {}
    for pair, prods, _ in result.reactions:
        if len(pair) == 2:
            for p in pair:
                pair_weight[p] = pair_weight.get(p, 0.0) + sum(obs.get(x, 0.0) for x in prods)
    partial = {
        pair
        for pair, prods, _ in result.reactions
        if len(pair) == 1
        and (pair[0] in obs or sum(obs.get(x, 0.0) for x in prods) < pair_weight.get(pair[0], 0.0))
    }
    result.partial = sorted(partial)
    if update:
        for pair in result.inert:
            store.record_inert(pair, temperature_c, evidence)
        for pair, prods, amb in result.reactions:
            store.record_reaction(
                pair,
                prods,
                temperature_c,
                evidence,
                ambiguous=amb,
                fractions={p: obs[p] for p in prods},
                partial=pair in partial,
            )
    return result
