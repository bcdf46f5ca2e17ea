"""labos.planners — precursor selection, heating recipes and active learning (ask/tell).

    planner = Planner(target, inventory, thermo, priors, seed=0)
    proposal = planner.ask()            # or planner.ask_batch(4) for four furnaces
    planner.tell(proposal, outcome)     # an labos.domain.Outcome from XRD analysis

``Planner`` is labos's active-learning planner; ``get_planner(name, ...)`` gives it or a baseline
(``random``, ``thermo``, ``bo``) or the published ARROWS3 algorithm (``arrows3``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module; imported on first use so that ``labos.planners.store`` (loaded with every
# database table) does not pull in scipy, scikit-learn and the planners themselves.
_EXPORTS = {
    "ActiveLearningPlanner": "labos.planners.active",
    "Planner": "labos.planners.active",
    "Arrows3Planner": "labos.planners.arrows",
    "BasePlanner": "labos.planners.base",
    "Cell": "labos.planners.base",
    "Observation": "labos.planners.base",
    "BOPlanner": "labos.planners.baselines",
    "RandomPlanner": "labos.planners.baselines",
    "ThermoOnlyPlanner": "labos.planners.baselines",
    "CandidateSet": "labos.planners.candidates",
    "enumerate_sets": "labos.planners.candidates",
    "InfeasibleTargetError": "labos.planners.errors",
    "PlannerError": "labos.planners.errors",
    "PlannerExhaustedError": "labos.planners.errors",
    "ReplayFormatError": "labos.planners.errors",
    "UnknownPhaseError": "labos.planners.errors",
    "PairRecord": "labos.planners.pairwise",
    "PairwiseStore": "labos.planners.pairwise",
    "Proposal": "labos.planners.proposal",
    "PLANNERS": "labos.planners.registry",
    "get_planner": "labos.planners.registry",
}

if TYPE_CHECKING:  # pragma: no cover
    from labos.planners.active import ActiveLearningPlanner as Planner  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labos.planners' has no attribute {name!r}")
    if name == "Planner":
        name = "ActiveLearningPlanner"
    return getattr(import_module(module), name)


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
