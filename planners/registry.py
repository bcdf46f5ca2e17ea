"""Planners by name, for the CLI, the campaign runner and the replay benchmark."""

from __future__ import annotations

from typing import Any

from labos.planners.active import ActiveLearningPlanner
from labos.planners.arrows import Arrows3Planner
from labos.planners.base import BasePlanner
from labos.planners.baselines import BOPlanner, RandomPlanner, ThermoOnlyPlanner
from labos.planners.errors import PlannerError

PLANNERS: dict[str, type[BasePlanner]] = {
    "labos": ActiveLearningPlanner,
    "arrows3": Arrows3Planner,
    "thermo": ThermoOnlyPlanner,
    "bo": BOPlanner,
    "random": RandomPlanner,
}
# Planners that are deterministic apart from tie-breaks: the replay perturbs their energies per seed.
DETERMINISTIC = frozenset({"labos", "arrows3", "thermo"})


def get_planner(name: str, *args: Any, **kwargs: Any) -> BasePlanner:
    """``get_planner("labos", target, inventory, thermo, priors, seed=0, ...)``."""
    try:
        cls = PLANNERS[name]
    except KeyError:
        raise PlannerError(f"unknown planner {name!r}; choose one of {', '.join(PLANNERS)}") from None
    return cls(*args, **kwargs)
