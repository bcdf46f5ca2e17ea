"""labos.planners — precursor selection, heating recipes and active learning (ask/tell).

    planner = Planner(target, inventory, thermo, priors, seed=0)
    proposal = planner.ask()            # or planner.ask_batch(4) for four furnaces
    planner.tell(proposal, outcome)     # an labos.domain.Outcome from XRD analysis

``Planner`` is labos's active-learning planner; ``get_planner(name, ...)`` gives it or a baseline
(``random``, ``thermo``, ``bo``) or the published ARROWS3 algorithm (``arrows3``).
"""

from labos.planners.active import ActiveLearningPlanner
from labos.planners.arrows import Arrows3Planner
from labos.planners.base import BasePlanner, Cell, Observation
from labos.planners.baselines import BOPlanner, RandomPlanner, ThermoOnlyPlanner
from labos.planners.candidates import CandidateSet, enumerate_sets
from labos.planners.errors import (
    InfeasibleTargetError,
    PlannerError,
    PlannerExhaustedError,
    ReplayFormatError,
    UnknownPhaseError,
)
from labos.planners.pairwise import PairRecord, PairwiseStore
from labos.planners.proposal import Proposal
from labos.planners.registry import PLANNERS, get_planner

Planner = ActiveLearningPlanner

__all__ = [
    "PLANNERS",
    "ActiveLearningPlanner",
    "Arrows3Planner",
    "BOPlanner",
    "BasePlanner",
    "CandidateSet",
    "Cell",
    "InfeasibleTargetError",
    "Observation",
    "PairRecord",
    "PairwiseStore",
    "Planner",
    "PlannerError",
    "PlannerExhaustedError",
    "Proposal",
    "RandomPlanner",
    "ReplayFormatError",
    "ThermoOnlyPlanner",
    "UnknownPhaseError",
    "enumerate_sets",
    "get_planner",
]
