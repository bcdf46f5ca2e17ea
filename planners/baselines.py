"""Baselines every planner is compared against in the same benchmark run.

* RandomPlanner — uniform random order over the search space (seeded).
* ThermoOnlyPlanner — ranks cells by the reaction energy to the target at the cell's temperature
  (most negative first; ties: more distinct pairwise interfaces), never learns.
* BOPlanner — Bayesian optimisation over one-hot precursor sets + temperature with a random-forest
  surrogate (extremely randomised trees; mean and spread across trees) and expected improvement, the
  baseline of the ARROWS3 paper.
"""

from __future__ import annotations

import numpy as np
from labos.planners.base import BasePlanner, Cell, Decision, Observation
from scipy.stats import norm


class RandomPlanner(BasePlanner):
    name = "random"

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        order = sorted(available, key=lambda c: self._tiebreak[c.key])
        return [
            Decision(cell=c, why="Chosen uniformly at random (baseline).", expected_yield=0.0)
            for c in order[:n]
        ]


class ThermoOnlyPlanner(BasePlanner):
    name = "thermo"

    def _score(self, cell: Cell) -> tuple[float, int, float]:
        """Reaction energy, penalised by pairwise competition; ties: more distinct interfaces."""
        dg = self.reaction_energy(cell)
        if dg is None:
            return (np.inf, 0, self._tiebreak[cell.key])
        sel = self.selectivity(cell.candidate) or 0.0
        return (dg + max(sel, 0.0), -len(cell.candidate.pairs), self._tiebreak[cell.key])

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        ranked = sorted(available, key=self._score)
        out = []
        for rank, c in enumerate(ranked[:n]):
            dg = self.reaction_energy(c)
            if dg is None:
                why = "No reaction energy available; order is arbitrary."
            else:
                sel = self.selectivity(c.candidate)
                comp = (
                    f"; pairwise competition {sel * 1000:+.0f} meV/atom (≤ 0: no pair prefers a side reaction)"
                    if sel is not None
                    else ""
                )
                why = (
                    f"Ranked {rank + 1} of {len(available)} untested cells by reaction energy to the target"
                    f"{comp}, then {len(c.candidate.pairs)} pairwise interfaces (thermodynamics only, no learning)."
                )
            out.append(Decision(cell=c, why=why, expected_yield=0.0))
        return out


class BOPlanner(BasePlanner):
    """Random-forest Bayesian optimisation over (one-hot precursors, temperature)."""

    name = "bo"
    n_initial = 5
    n_trees = 25

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        vocab = sorted({p for c in self.cells for p in c.set_key})
        self._col = {p: i for i, p in enumerate(vocab)}
        temps = [c.temperature_c for c in self.cells]
        self._t_lo, self._t_span = min(temps), max(max(temps) - min(temps), 1.0)

    def _x(self, cells: list[Cell]) -> np.ndarray:
        x = np.zeros((len(cells), len(self._col) + 2))
        for i, c in enumerate(cells):
            for p in c.set_key:
                x[i, self._col.get(p, 0)] = 1.0
            x[i, -2] = (c.temperature_c - self._t_lo) / self._t_span
            x[i, -1] = c.dwell_min / 600.0
        return x

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        obs: list[Observation] = self.observations
        if len(obs) < self.n_initial:
            order = sorted(available, key=lambda c: self._tiebreak[c.key])
            return [
                Decision(cell=c, why=f"Initial random design ({len(obs) + i + 1}/{self.n_initial}).")
                for i, c in enumerate(order[:n])
            ]
        from sklearn.ensemble import ExtraTreesRegressor

        model = ExtraTreesRegressor(
            n_estimators=self.n_trees, min_samples_leaf=1, random_state=self.seed + len(obs), n_jobs=1
        )
        y = np.array([o.target_fraction for o in obs])
        model.fit(self._x([o.cell for o in obs]), y)
        xa = self._x(available)
        per_tree = np.stack([t.predict(xa) for t in model.estimators_])
        mu, sd = per_tree.mean(axis=0), per_tree.std(axis=0) + 1e-6
        best = y.max()
        z = (mu - best - 0.01) / sd
        ei = (mu - best - 0.01) * norm.cdf(z) + sd * norm.pdf(z)
        tb = np.array([self._tiebreak[c.key] for c in available]) * 1e-9
        order = np.argsort(-(ei + tb), kind="stable")[:n]
        return [
            Decision(
                cell=available[i],
                why=f"Random-forest BO: expected improvement {ei[i]:.3f} over the best fraction {best:.2f}.",
                expected_yield=float(np.clip(mu[i], 0, 1)),
                uncertainty=float(sd[i]),
            )
            for i in order
        ]
