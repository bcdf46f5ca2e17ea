"""ARROWS3 as published (Szymanski et al., Nat. Commun. 14, 6956, 2023), as a reference planner.

1. Rank precursor sets by the reaction energy to the target (most negative first; ties: more
   pairwise interfaces). 2. Test the top set over its temperature ladder (ascending). 3. Retro-analyse
   each result into the pairwise store. 4. Re-rank the untested sets by the driving force left after
   their predicted intermediates form (largest first), skipping sets whose predicted intermediates
   already appeared in a failed experiment. Intermediates come from observed pairwise reactions and,
   for pairs never tested, from thermodynamics (the most exergonic interface reaction; see
   ``planners.pairwise.predict``). Repeat.
"""

from __future__ import annotations

from labos.planners.base import BasePlanner, Cell, Decision, Observation


class Arrows3Planner(BasePlanner):
    name = "arrows3"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._queue: list[Cell] = []
        self._current: tuple[str, ...] | None = None
        self._why: str = ""

    def _learn(self, obs: Observation) -> None:
        self._analyse(obs)

    def _set_score(self, cells: list[Cell]) -> tuple[float, bool, int, float, str]:
        """Sort key of a set from its untested cells (lower is better), with a reason."""
        top = max(cells, key=lambda c: c.temperature_c)
        pred = self.predict_cell(top)
        failed = self.failed_with(top, pred) if self.observations else None
        dg = self.remaining_driving_force(top, pred) if self.observations else self.reaction_energy(top)
        value = dg if dg is not None else float("inf")
        if self.observations and pred.applied:
            inter = ", ".join(sorted(pred.phase_set))
            steps = "; ".join(r.describe() for r in pred.applied)
            why = (
                f"expects {steps}; predicted intermediates at {top.temperature_c:.0f} °C: {inter}; "
                f"remaining ΔG′ = {value * 1000:.0f} meV/atom"
            )
        elif dg is not None:
            why = f"reaction energy {value * 1000:.0f} meV/atom at {top.temperature_c:.0f} °C"
        else:
            why = "no energy available"
        if failed is not None:
            why += f"; its intermediates already failed in {failed.experiment_id}"
        return (value, failed is not None, -len(top.candidate.pairs), self._tiebreak[top.key], why)

    def _choose(self, available: list[Cell], n: int) -> list[Decision]:
        out: list[Decision] = []
        pool = {c.key: c for c in available}
        while len(out) < n and pool:
            self._queue = [c for c in self._queue if c.key in pool]
            if not self._queue:
                by_set: dict[tuple[str, ...], list[Cell]] = {}
                for c in pool.values():
                    by_set.setdefault(c.set_key, []).append(c)
                scored = {k: self._set_score(v) for k, v in by_set.items()}
                # skipped sets (failed intermediates) go last, then by remaining driving force
                best = min(scored, key=lambda k: (scored[k][1], scored[k][0], *scored[k][2:4]))
                self._queue = sorted(by_set[best], key=lambda c: c.temperature_c)
                self._current = best
                rank = (
                    sorted(scored, key=lambda k: (scored[k][1], scored[k][0], *scored[k][2:4])).index(best)
                    + 1
                )
                self._why = f"Set ranked {rank} of {len(scored)}: {scored[best][4]}. Testing its temperature ladder (ascending)."
            cell = self._queue.pop(0)
            pool.pop(cell.key)
            out.append(
                Decision(cell=cell, why=self._why, intermediates=sorted(self.predict_cell(cell).phase_set))
            )
        return out
