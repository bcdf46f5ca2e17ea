"""labos's active-learning planner: ARROWS3's pairwise reasoning inside a Bayesian model of yield.

Why this beats a pure ranking (ARROWS3): the published algorithm turns each result into pairwise
knowledge but then ranks sets by one number (remaining driving force), tests whole temperature
ladders, and ignores partial yields. Here every cell (precursor set, temperature) gets

* a **mechanistic prior** for its target fraction: the intermediates predicted at T (observed pairwise
  reactions first; pairs never tested form their most exergonic interface products, flagged as
  predicted and counted as uncertain),
  the driving force left for the target-forming step (ΔG′, and its rank among the sets), pairwise
  competition (a precursor pair whose best reaction is not the target), a known route to the target
  (expected to give about what it gave), a dead end (every pair of the predicted phases already seen
  inert at ≥ T, or the same intermediates already failed), a temperature factor (around the literature
  model's temperature for the set) and the literature recommender's vote for the set;
* a **Gaussian-process correction** learned from every measured fraction (partial yields count) with
  a kernel that couples cells sharing the set, the precursors, or the *predicted intermediates* —
  so one failure lowers every cell heading into the same dead end, and one partial yield raises its
  neighbours;
* a prior **uncertainty** that grows with the share of untested pairs, so the choice between
  exploring and exploiting is the probability of success, P(fraction ≥ threshold).

Batches are chosen greedily with a pessimistic "constant liar" (each pick is assumed to return its
mean minus one sd, so a batch spreads over different sets instead of one set's temperatures).
Once a set gives a partial yield, continuous parameters (temperature, dwell, regrind + reheat) are
tuned with the bayesian-optimization package (lab mode only; a replay has a fixed grid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from labos.planners.base import BasePlanner, Cell, Decision, Observation
from labos.planners.chemistry import canonical
from labos.planners.pairwise import Prediction
from scipy.linalg import solve_triangular

# Prior model constants (dimensionless or as named); see the module docstring for the reasoning.
DG_SCALE_EV = 0.02  # ΔG′ width of the driving-force sigmoid, eV/atom
DG_OFFSET_EV = 0.01  # ΔG′ at which a set is even odds to win against competing reactions
DG_RANK_WEIGHT = 0.6  # how much the rank of ΔG among the sets at one temperature matters
SEL_WEIGHT = 0.5  # how much pairwise competition (selectivity > 0) can lower the prior
SEL_SCALE_EV = 0.04
T_WIDTH_C = 110.0  # width of the temperature factor
T_LEAD_C = 60.0  # the factor reaches ~0.7 at the reference temperature
HOT_MARGIN_C = 200.0  # far above the reference temperature ...
HOT_PENALTY = 0.4  # ... the temperature factor drops by up to this share
MAX_PRIOR = 0.7
ROUTE_MARGIN = 0.2  # a known route may do a little better than it did (hotter, longer)
DEAD_PRIOR = 0.05
DEAD_SD_FACTOR = 0.5  # dead ends are predictions, not facts: data on the same set must still move them
LIKELY_DEAD_PRIOR = 0.15  # a dead end reached through thermodynamically predicted (untested) steps
PRIOR_SD = 0.3
TUNE_BELOW_BEST_C = 150.0  # tuned recipes go at most this far below the best partial result
NOISE_SD = 0.06  # measured weight fractions (XRD) are good to a few percent
LENGTH_T_C = 200.0
W_SET, W_PREC, W_PHASE = 0.35, 0.2, 0.45
DEFAULT_REFERENCE_C = 800.0


@dataclass
class CellView:
    """Everything the model knows about one cell right now."""

    pred: Prediction
    dg: float | None  # remaining driving force (or total ΔG before anything is known)
    route: float  # fraction of atoms predicted to be target via known reactions
    dead: str | None  # why the cell is a dead end, if it is
    unknown_share: float
    phases: frozenset[str]
    prior: float
    prior_sd: float
    likely_dead: str | None = None  # a dead end predicted through untested (thermodynamic) steps


class ActiveLearningPlanner(BasePlanner):
    name = "labos"
    extrapolate_c = 150.0

    def __init__(self, *args, tune_recipes: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.tune_recipes = tune_recipes and not self.fixed_space
        self._views: dict[tuple[Any, ...], tuple[tuple[int, int, int], CellView]] = {}
        self._lit_rank = self._literature_ranks()
        self._t_ref: dict[tuple[str, ...], tuple[float, str]] = {}
        self._tuners: dict[tuple[str, ...], Any] = {}
        self._tuned_keys: set[tuple[Any, ...]] = set()
        vocab = sorted({p for c in self.cells for p in c.set_key})
        self._prec_col = {p: i for i, p in enumerate(vocab)}
        self._set_id: dict[tuple[str, ...], int] = {}
        self._dg_by_t: dict[float, np.ndarray] = {}

    # ------------------------------------------------------------------ priors

    def _literature_ranks(self) -> dict[tuple[str, ...], float]:
        """Score in (0, 1] per set from the literature recommender (1 = its first choice)."""
        if self.priors is None:
            return {}
        sets = {c.set_key for c in self.cells}
        inventory = sorted({p for k in sets for p in k})
        try:
            recs = self.priors.recommend(self.target, k=min(len(sets), 30), inventory=inventory)
        except Exception as exc:  # the priors are advisory: a failure must not stop planning
            self.flags.append(f"literature recommender failed ({exc}); thermodynamics only")
            return {}
        out: dict[tuple[str, ...], float] = {}
        for rank, rec in enumerate(recs):
            key = tuple(sorted(canonical(p) for p in rec.precursors))
            if key in sets and key not in out:
                out[key] = 1.0 / (1.0 + 0.5 * rank)
        return out

    def reference_temperature(self, cell: Cell) -> tuple[float, str]:
        """The temperature the literature model expects for this set (default 800 °C without priors), °C."""
        t, src = self._base_reference(cell)
        cal = self.store.calibration
        offset = cal.offset_c()
        if abs(offset) < 1.0:
            return t, src
        n = cal.n_successes
        return (
            t + offset,
            f"{src} {offset:+.0f} °C learned from {n} success{'es' if n != 1 else ''} in this lab",
        )

    def _base_reference(self, cell: Cell) -> tuple[float, str]:
        if not self._t_ref:
            self._fill_reference_temperatures()
        if cell.set_key not in self._t_ref:
            self._t_ref[cell.set_key] = (DEFAULT_REFERENCE_C, "default")
        return self._t_ref[cell.set_key]

    def _fill_reference_temperatures(self) -> None:
        sets = sorted({c.set_key: c.candidate.precursors for c in self.cells}.items())
        preds = None
        if self.priors is not None:
            try:
                preds = self.priors.predict_conditions_many(self.target, [list(p) for _, p in sets])
            except Exception as exc:  # advisory, see _literature_ranks
                self.flags.append(f"literature temperature model failed ({exc})")
        for i, (key, _) in enumerate(sets):
            if preds is not None:
                self._t_ref[key] = (float(preds[i].temperature_c), "literature temperature model")
            else:
                self._t_ref[key] = (DEFAULT_REFERENCE_C, "default without literature priors")

    def _dg_percentile(self, cell: Cell, dg: float) -> float:
        """Share of the sets at this temperature whose total ΔG is more negative than ``dg``."""
        t = round(cell.temperature_c, 1)
        arr = self._dg_by_t.get(t)
        if arr is None:
            vals = [self.reaction_energy(c) for c in self.cells if round(c.temperature_c, 1) == t]
            arr = np.sort(np.array([v for v in vals if v is not None]))
            self._dg_by_t[t] = arr
        if arr.size <= 1:
            return 0.0
        return float(np.searchsorted(arr, dg)) / arr.size

    def view(self, cell: Cell) -> CellView:
        """The mechanistic prior for a cell, recomputed only when the store changed around it."""
        # the calibration offset moves with other targets' successes: part of the view's generation
        gen = (len(self.observations), self.store.version, round(self.store.calibration.offset_c()))
        cached = self._views.get(cell.key)
        if cached is not None and cached[0] == gen:
            return cached[1]
        pred = self.predict_cell(cell)
        dg = self.remaining_driving_force(cell, pred)
        atoms = {p: n for p, n in pred.phases.items()}
        total = sum(atoms.values()) or 1.0
        # a known route: the target comes out of an observed reaction (thermodynamic guesses only
        # shape the driving force, they are not a route)
        observed = pred.observed
        known_route = any(self.target_key in r.products for r in observed)
        route = atoms.get(self.target_key, 0.0) / total if known_route else 0.0
        guessed = pred.predicted
        dead = None
        likely_dead = None
        failed = self.failed_with(cell, pred)
        if failed is not None:
            why = f"its predicted intermediates ({', '.join(sorted(pred.phase_set))}) already failed in {failed.experiment_id}"
            if guessed:  # the intermediates rest on thermodynamics: likely, not certain
                likely_dead = why + " (intermediates partly predicted from thermodynamics)"
            else:
                dead = why
        elif route < 1e-6 and len(pred.phase_set) > 1 and not pred.unknown_pairs and observed and not guessed:
            dead = "every pair of its predicted phases was seen inert at this temperature or above"
        # uncertainty: untested pairs among the predicted phases, and steps that rest on thermodynamics
        # alone, each count as unknown; observed steps and inert pairs as known
        pairs = max(1, len(pred.unknown_pairs) + len(pred.inert_pairs) + len(pred.applied))
        unknown_share = (len(pred.unknown_pairs) + len(guessed)) / pairs
        t_ref, _ = self.reference_temperature(cell)
        # rises through the reference temperature; well above it, volatility and decomposition of the
        # target make success less likely (a mild penalty: the reference is a typical, not an upper, value)
        f_t = _phi((cell.temperature_c - t_ref + T_LEAD_C) / T_WIDTH_C) * (
            1.0 - HOT_PENALTY * _phi((cell.temperature_c - t_ref - HOT_MARGIN_C) / T_WIDTH_C)
        )
        if dg is None:
            f_dg = 0.5
        else:
            # absolute: a (nearly) spent driving force cannot win against competing reactions;
            # relative: among sets at this temperature, larger driving force ranks higher
            f_abs = 1.0 / (1.0 + math.exp(-(-dg - DG_OFFSET_EV) / DG_SCALE_EV))
            f_dg = f_abs * (1.0 - DG_RANK_WEIGHT * self._dg_percentile(cell, dg))
            sel = self.selectivity(cell.candidate)
            if sel is not None:  # a pair that would rather make something else lowers the odds
                f_dg *= 1.0 - SEL_WEIGHT / (1.0 + math.exp(-sel / SEL_SCALE_EV))
        lit = 0.55 + 0.45 * self._lit_rank.get(cell.set_key, 0.0) if self._lit_rank else 0.8
        prior = MAX_PRIOR * f_dg * f_t * lit
        if cell.candidate.reaction is None:
            prior, dead = 0.0, dead or "the set cannot balance to the target"
        if route > 0:
            # a known route to the target: expect about what it gave before (observed fraction)
            # a known route: about what the prediction says, at most a little better than seen so far
            seen = max((r.max_fraction.get(self.target_key, 0.0) for r in observed), default=0.0)
            prior = max(prior, min(0.95, route, seen + ROUTE_MARGIN))
        if dead:
            prior = min(prior, DEAD_PRIOR)
        elif likely_dead:
            prior = min(prior, LIKELY_DEAD_PRIOR)
        sd = PRIOR_SD * ((0.35 + 0.65 * unknown_share) if not dead else DEAD_SD_FACTOR)
        phases = frozenset(pred.phase_set - {self.target_key})
        v = CellView(pred, dg, route, dead, unknown_share, phases, float(prior), float(sd), likely_dead)
        self._views[cell.key] = (gen, v)
        return v

    # ------------------------------------------------------------------ learning

    def _learn(self, obs: Observation) -> None:
        self._analyse(obs)
        base, _ = self._base_reference(obs.cell)
        self.store.calibration.record(
            obs.cell.temperature_c, base, obs.target_fraction, obs.target_fraction >= self.threshold
        )
        if self.tune_recipes and 0.05 <= obs.target_fraction < self.threshold:
            self._tuner_for(obs.cell)

    # ------------------------------------------------------------------ GP

    def _phase_vocab(self, views: list[CellView]) -> dict[str, int]:
        vocab = sorted({p for v in views for p in v.phases})
        return {p: i for i, p in enumerate(vocab)}

    def _features(self, cells: list[Cell], views: list[CellView], phase_col: dict[str, int]):
        prec = np.zeros((len(cells), len(self._prec_col)))
        ph = np.zeros((len(cells), max(1, len(phase_col))))
        for i, (c, v) in enumerate(zip(cells, views, strict=True)):
            for p in c.set_key:
                if p in self._prec_col:
                    prec[i, self._prec_col[p]] = 1.0
            for p in v.phases:
                if p in phase_col:
                    ph[i, phase_col[p]] = 1.0
        sets = np.array([self._set_id.setdefault(c.set_key, len(self._set_id)) for c in cells])
        temps = np.array([c.temperature_c for c in cells])
        sd = np.array([v.prior_sd for v in views])
        return sets, prec, ph, temps, sd

    @staticmethod
    def _tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        inter = a @ b.T
        union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        return out

    def _kernel(self, fa, fb) -> np.ndarray:
        sa, pa, ha, ta, da = fa
        sb, pb, hb, tb, db = fb
        same = (sa[:, None] == sb[None, :]).astype(float)
        k = W_SET * same + W_PREC * self._tanimoto(pa, pb) + W_PHASE * self._tanimoto(ha, hb)
        k *= np.exp(-0.5 * ((ta[:, None] - tb[None, :]) / LENGTH_T_C) ** 2)
        return k * da[:, None] * db[None, :]

    def posterior(
        self, cells: list[Cell], extra: list[tuple[Cell, float]] = ()
    ) -> tuple[np.ndarray, np.ndarray, list[CellView]]:
        """Mean and sd of the target fraction for ``cells`` given all observations (+ ``extra``)."""
        views = [self.view(c) for c in cells]
        mean = np.array([v.prior for v in views])
        sd = np.array([v.prior_sd for v in views])
        data = [(o.cell, o.target_fraction) for o in self.observations] + list(extra)
        if not data:
            return mean, sd, views
        ocells = [c for c, _ in data]
        oviews = [self.view(c) for c in ocells]
        y = np.array([v for _, v in data]) - np.array([v.prior for v in oviews])
        col = self._phase_vocab(views + oviews)
        fo = self._features(ocells, oviews, col)
        fa = self._features(cells, views, col)
        koo = self._kernel(fo, fo) + (NOISE_SD**2 + 1e-9) * np.eye(len(ocells))
        kao = self._kernel(fa, fo)
        chol = np.linalg.cholesky(koo)
        w_y = solve_triangular(chol, y, lower=True)
        w = solve_triangular(chol, kao.T, lower=True)
        mu = mean + w.T @ w_y
        var = np.maximum(sd**2 - (w * w).sum(0), 1e-6)
        return mu, np.sqrt(var), views

    # ------------------------------------------------------------------ choosing

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        from threadpoolctl import threadpool_limits

        # Small matrices: BLAS threads only add contention (the lab machine runs other work).
        with threadpool_limits(1):
            return self._choose_batch(available, n)

    def _choose_batch(self, available: list[Cell], n: int) -> list[Decision]:
        extra: list[tuple[Cell, float]] = []
        chosen: list[Decision] = []
        pool = list(available)
        tb = np.array([self._tiebreak[c.key] for c in pool]) * 1e-7
        for _ in range(n):
            mu, sd, views = self.posterior(pool, extra)
            z = (mu - self.threshold) / sd
            score = z + tb[: len(pool)]
            i = int(np.argmax(score))
            decision = self._decision(pool[i], float(mu[i]), float(sd[i]), views[i])
            tuned = self._tuned_decision(decision)
            decision = tuned or decision
            chosen.append(decision)
            # pessimistic "constant liar": assume the pick disappoints, so the batch spreads out
            extra.append((decision.cell, float(np.clip(mu[i] - sd[i], 0, 1))))
            if decision.cell is pool[i]:
                pool.pop(i)
                tb = np.delete(tb, i)
            if not pool:
                break
        return chosen

    def _decision(self, cell: Cell, mu: float, sd: float, v: CellView) -> Decision:
        p = 1.0 - _phi((self.threshold - mu) / sd)
        parts = []
        if v.pred.applied:
            steps = "; ".join(r.describe() for r in v.pred.applied)
            parts.append(f"Expects {steps}.")
            parts.append(
                f"Predicted phases at {cell.temperature_c:.0f} °C: {', '.join(sorted(v.pred.phase_set))}."
            )
        if v.dg is not None:
            label = "remaining driving force ΔG′" if v.pred.applied else "driving force"
            parts.append(f"The {label} to the target is {v.dg * 1000:.0f} meV/atom.")
        sel = self.selectivity(cell.candidate)
        if sel is not None:
            verdict = (
                "no precursor pair prefers a side reaction"
                if sel <= 0
                else "a precursor pair prefers a side reaction"
            )
            parts.append(f"Pairwise competition {sel * 1000:+.0f} meV/atom ({verdict}).")
        if v.route > 0:
            parts.append(f"A known route forms the target ({v.route:.0%} of atoms).")
        if v.dead:
            parts.append(f"Dead end expected: {v.dead}.")
        elif v.likely_dead:
            parts.append(f"Likely dead end: {v.likely_dead}.")
        t_ref, src = self.reference_temperature(cell)
        parts.append(f"Reference temperature {t_ref:.0f} °C ({src}).")
        if cell.set_key in self._lit_rank:
            parts.append("The literature recommender proposes this set.")
        total_pairs = len(v.pred.unknown_pairs) + len(v.pred.inert_pairs)
        mode = "exploring" if sd > abs(mu - self.threshold) else "exploiting"
        parts.append(
            f"{len(v.pred.unknown_pairs)} of {total_pairs} phase pairs untested at this temperature; "
            f"{mode} (model fraction {mu:.2f} ± {sd:.2f})."
        )
        near = self._nearest_result(cell)
        if near:
            parts.append(near)
        return Decision(
            cell=cell,
            why=" ".join(parts),
            expected_yield=float(np.clip(mu, 0, 1)),
            success_probability=p,
            uncertainty=sd,
            intermediates=sorted(v.pred.phase_set),
        )

    def _nearest_result(self, cell: Cell) -> str:
        same = [o for o in self.observations if o.cell.set_key == cell.set_key]
        if not same:
            return ""
        o = min(same, key=lambda o: abs(o.cell.temperature_c - cell.temperature_c))
        return f"This set gave {o.target_fraction:.2f} target at {o.cell.temperature_c:.0f} °C."

    # ------------------------------------------------------------------ continuous tuning

    def _tuner_for(self, cell: Cell):
        key = cell.set_key
        if key not in self._tuners:
            from labos.planners.tuning import RecipeTuner

            # around what already worked: a partial yield at T says the reaction runs there, so the
            # search starts a little below the best result rather than at the bottom of the ladder
            same = [o for o in self.observations if o.cell.set_key == key]
            best_t = max(same, key=lambda o: o.target_fraction).cell.temperature_c if same else None
            t_lo = min(c.temperature_c for c in self.cells) - 100
            if best_t is not None:
                t_lo = max(t_lo, best_t - TUNE_BELOW_BEST_C)
            t_lo = max(300.0, min(t_lo, self.furnace_max_c - 50.0))
            self._tuners[key] = RecipeTuner(t_lo, self.furnace_max_c, seed=self.seed)
        tuner = self._tuners[key]
        for o in self.observations:
            if o.cell.set_key == key:
                tuner.register(
                    o.cell.temperature_c, o.cell.dwell_min, o.cell.regrind_reheat, o.target_fraction
                )
        return tuner

    def _expand(self) -> list[Cell]:
        """With the grid used up, a partly working set still has continuous parameters to tune."""
        if not self._tuners:
            return []
        key, tuner = self._best_tuner()
        for _ in range(3):
            if tuner.n_suggested >= tuner.budget:
                return []
            cell = self._tuned_cell(key, tuner)
            if cell is not None:
                return [cell]
        return []

    def _best_tuner(self):
        return max(
            self._tuners.items(),
            key=lambda kv: max(o.target_fraction for o in self.observations if o.cell.set_key == kv[0]),
        )

    def _tuned_cell(self, key, tuner) -> Cell | None:
        suggestion = tuner.suggest()
        if suggestion is None:
            return None
        temperature, dwell, regrind = suggestion
        template = next(c for c in self.cells if c.set_key == key)
        cell = Cell(template.candidate, temperature, dwell, regrind)
        if cell.key in self._by_key:
            return None
        self.cells.append(cell)
        self._by_key[cell.key] = cell
        self._tiebreak[cell.key] = float(self.rng.random())
        self._tuned_keys.add(cell.key)
        return cell

    def _tuned_decision(self, best: Decision) -> Decision | None:
        """Prefer a tuned recipe of a partly working set when nothing in the grid looks better."""
        if best.cell.key in self._tuned_keys:
            return self._explain_tuned(best)
        if not self._tuners or (best.success_probability or 0) >= 0.5:
            return None
        key, tuner = self._best_tuner()
        if tuner.n_suggested >= tuner.budget:
            return None
        cell = self._tuned_cell(key, tuner)
        if cell is None:
            return None
        return self._explain_tuned(Decision(cell=cell, why="", success_probability=best.success_probability))

    def _explain_tuned(self, d: Decision) -> Decision:
        cell = d.cell
        key = cell.set_key
        tuner = self._tuners[key]
        best_frac = max(o.target_fraction for o in self.observations if o.cell.set_key == key)
        why = (
            f"This set reached {best_frac:.2f} target fraction (partial yield) and no untested grid cell looks "
            f"likely to succeed; Bayesian optimisation of temperature, dwell and regrind-and-reheat "
            f"proposes this recipe ({tuner.n_suggested}/{tuner.budget})."
        )
        return Decision(cell=cell, why=why, expected_yield=best_frac, uncertainty=d.uncertainty)


def _phi(x: float) -> float:
    """Standard normal CDF (math.erf: scipy's is slow for scalars)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
