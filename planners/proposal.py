"""What a planner hands the lab: a precursor set, a full recipe, and why (pydantic data)."""

from __future__ import annotations

from labos.planners.candidates import CandidateSet
from pydantic import BaseModel, ConfigDict, Field

from labos.domain import (
    Atmosphere,
    DoseStep,
    GrindStep,
    HeatSegment,
    HeatStep,
    MixStep,
    Recipe,
    XRDStep,
    new_id,
)

DEFAULT_DWELL_MIN = 240.0
DEFAULT_RAMP_C_PER_MIN = 10.0


class Proposal(BaseModel):
    """One experiment to run: ``recipe`` is complete (doses in mg, heating in °C, XRD)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: new_id("prop"))
    planner: str
    target: str
    precursors: list[str]
    recipe: Recipe
    temperature_c: float
    dwell_min: float = DEFAULT_DWELL_MIN
    explanation: str
    expected_yield: float = Field(ge=0, le=1, description="expected target weight fraction")
    success_probability: float | None = Field(default=None, ge=0, le=1)
    uncertainty: float | None = Field(default=None, ge=0, description="std of the expected yield")
    expected_reaction: str | None = None
    expected_intermediates: list[str] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list, description="estimates and fallbacks used")
    seed: int = 0


def build_recipe(
    candidate: CandidateSet,
    temperature_c: float,
    dwell_min: float = DEFAULT_DWELL_MIN,
    ramp_c_per_min: float = DEFAULT_RAMP_C_PER_MIN,
    atmosphere: str = "air",
    regrind_reheat: bool = False,
) -> Recipe:
    """Dose → mix → heat (→ grind → reheat) → grind → XRD, A-Lab style."""
    masses = candidate.masses_mg or {p: candidate.batch_mg / candidate.size for p in candidate.precursors}
    steps: list = [DoseStep(precursor=p, mass_mg=max(masses[p], 0.01)) for p in candidate.precursors]
    steps.append(MixStep(method="shaker", duration_min=10))
    heat = HeatStep(
        segments=[HeatSegment(ramp_c_per_min=ramp_c_per_min, target_c=temperature_c, dwell_min=dwell_min)],
        atmosphere=Atmosphere(atmosphere),
    )
    steps.append(heat)
    if regrind_reheat:
        steps += [GrindStep(duration_min=5), heat.model_copy()]
    steps += [GrindStep(duration_min=5), XRDStep()]
    return Recipe(steps=steps)
