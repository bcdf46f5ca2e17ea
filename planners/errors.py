"""Errors the planner raises; each names the problem in words a chemist can act on."""

from labos.errors import LabosError


class PlannerError(LabosError):
    """Base class for planning problems."""


class InfeasibleTargetError(PlannerError):
    """The target cannot be made from the inventory (a missing element, or no set that balances)."""


class UnknownPhaseError(PlannerError, ValueError):
    """An outcome names a phase the planner cannot read as a chemical formula."""


class PlannerExhaustedError(PlannerError):
    """Every candidate (precursor set, temperature) has already been proposed."""


class ReplayFormatError(PlannerError, ValueError):
    """A replay dataset does not follow the documented JSON format."""
