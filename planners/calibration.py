"""What firing temperatures work in this lab, learned across the targets of a campaign.

The reference temperature a planner starts from (the literature model's, or a fixed default without
priors) is a typical value from other labs and other chemistries. Its error is shared between the
targets of one lab: furnace calibration, crucibles, batch size and the chemistry of the campaign's
targets all shift it the same way. Every success says how far above (or below) its reference the
working temperature was; the shrunk mean of those differences is added to every later reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHRINK_N = 2.0  # pseudo-successes at zero offset: one lucky result moves the reference only a third
MAX_OFFSET_C = 400.0


@dataclass
class Firing:
    temperature_c: float
    reference_c: float
    target_fraction: float
    success: bool


@dataclass
class TemperatureCalibration:
    """Offsets of working temperatures from their references, shared by a campaign's planners."""

    firings: list[Firing] = field(default_factory=list)
    n_successes: int = 0
    _sum_offset_c: float = 0.0  # running sum over successes: planners read the offset for every cell

    def record(self, temperature_c: float, reference_c: float, target_fraction: float, success: bool) -> None:
        self.firings.append(Firing(float(temperature_c), float(reference_c), float(target_fraction), success))
        if success:
            self.n_successes += 1
            self._sum_offset_c += float(temperature_c) - float(reference_c)

    def offset_c(self) -> float:
        """Shrunk mean of (working − reference) over successes, °C; 0 before any success."""
        if not self.n_successes:
            return 0.0
        mean = self._sum_offset_c / (self.n_successes + SHRINK_N)
        return max(-MAX_OFFSET_C, min(MAX_OFFSET_C, mean))
