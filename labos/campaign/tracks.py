"""One target's progress through a campaign: its planner, budget, experiments in the lab, best result.

A target is *active* until it succeeds (an XRD-analysed target fraction above the threshold), its
budget is spent (or its planner has nothing left to propose) with nothing still in the lab, or it
was never attempted (rejected by screening, infeasible from the shelf).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from labos.domain import Outcome
from labos.planners.proposal import Proposal

ACTIVE, SUCCEEDED, EXHAUSTED, INFEASIBLE, REJECTED = (
    "active",
    "succeeded",
    "exhausted",
    "infeasible",
    "rejected",
)


@dataclass
class TargetTrack:
    formula: str
    order: int
    budget: int
    status: str = ACTIVE
    reason: str = ""
    planner: Any = None
    in_flight: dict[str, Proposal] = field(default_factory=dict)  # experiment id -> proposal
    used: int = 0  # experiments handed to the lab (cancelled ones are given back)
    reported: int = 0
    best_fraction: float = 0.0
    best_experiment: str | None = None
    success_experiment: str | None = None
    space_exhausted: bool = False
    written: str | None = None  # status last written to the target row (an event marks each change)

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def room(self) -> int:
        """Experiments the budget still allows."""
        return max(0, self.budget - self.used) if self.active and not self.space_exhausted else 0

    def record(self, experiment_id: str, outcome: Outcome, threshold: float) -> bool:
        """Take in a reported outcome; True when it made the target a success."""
        self.in_flight.pop(experiment_id, None)
        self.reported += 1
        frac = float(outcome.target_fraction)
        if frac > self.best_fraction or self.best_experiment is None:
            self.best_fraction, self.best_experiment = frac, experiment_id
        if frac > threshold and self.status == ACTIVE:
            self.status = SUCCEEDED
            self.success_experiment = experiment_id
            self.reason = f"{frac:.0%} target in {experiment_id} (XRD analysis)"
            return True
        self.settle()
        return False

    def settle(self) -> None:
        """An active target with no budget (or candidates) left and nothing in the lab is exhausted."""
        if self.status != ACTIVE or self.in_flight:
            return
        if self.used >= self.budget:
            self.status = EXHAUSTED
            self.reason = f"budget of {self.budget} experiments spent; best {self.best_fraction:.0%}"
        elif self.space_exhausted:
            self.status = EXHAUSTED
            self.reason = (
                f"every candidate recipe tried ({self.used} experiments); best {self.best_fraction:.0%}"
            )


def planner_seed(seed: int, formula: str) -> int:
    """A per-target seed, stable across processes (tie-breaks differ between targets)."""
    return (seed * 1_000_003 + zlib.crc32(formula.encode())) % (2**31)


def make_planner(
    name: str,
    formula: str,
    inventory,
    thermo,
    priors,
    *,
    seed: int,
    store,
    threshold: float,
    furnace_max_c: float,
):
    from labos.planners import get_planner

    return get_planner(
        name,
        formula,
        inventory,
        thermo,
        priors,
        seed=planner_seed(seed, formula),
        store=store,
        success_threshold=threshold,
        furnace_max_c=furnace_max_c,
    )


def load_priors(use: bool) -> tuple[Any, str]:
    """The literature priors when wanted and available, else None and why."""
    if not use:
        return None, "not used (disabled)"
    try:
        from labos.models.literature import load_priors as _load
    except ImportError as exc:  # the priors are advisory: planning works on thermodynamics alone
        return None, f"unavailable ({exc})"
    return _load()
