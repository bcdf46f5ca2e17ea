"""What a campaign is asked to do: targets, budget, time, planner, and the (simulated) lab it runs in."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labos.domain import parse_formula


class LabSpec(BaseModel):
    """The lab a campaign runs in: a lab configuration file, or the built-in simulated layout."""

    model_config = ConfigDict(extra="forbid")

    config_path: str | None = Field(
        default=None, description="lab configuration TOML (None: simulated layout)"
    )
    furnaces: int = Field(default=4, ge=1, le=64, description="furnaces of the simulated layout")
    furnace_slots: int = Field(default=4, ge=1, le=64, description="crucibles per furnace run")
    xrd: Literal["pattern", "truth"] = Field(
        default="pattern",
        description="'pattern': simulate an .xrdml and analyse it (phase ID + quantification); "
        "'truth': the simulator's phases through a measurement-error model (fast, any chemistry)",
    )
    measurement_sigma: float = Field(
        default=0.03,  # labos.campaign.measure.DEFAULT_SIGMA (calibrated there)
        ge=0,
        le=0.2,
        description="'truth' mode: weight-fraction error of the quantification",
    )
    detection_limit: float = Field(
        default=0.01, ge=0, le=0.2, description="'truth' mode: smallest phase reported"
    )
    persist_world: bool = Field(
        default=True, description="keep the simulated physical world on disk (restarts)"
    )
    simulated_operator: bool = Field(
        default=True, description="answer the lab's 'confirm what happened' requests from the simulated deck"
    )


class CampaignConfig(BaseModel):
    """Everything that defines a campaign; stored with it, so a resumed campaign runs the same way."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="campaign", min_length=1, max_length=200)
    targets: list[str] = Field(min_length=1, description="target formulas")
    budget_per_target: int = Field(default=8, ge=1, le=1000, description="experiments allowed per target")
    days: float = Field(default=17.0, gt=0, le=3650, description="virtual (lab) time allowed")
    planner: str = Field(default="labos", description="labos, arrows3, thermo, bo or random")
    seed: int = Field(default=0, ge=0)
    threshold: float | None = Field(
        default=None, gt=0, le=1, description="success: target wt fraction above this"
    )
    chemistry: Literal["demo", "full"] = Field(
        default="demo",
        description="simulated world: the built-in demo chemistry, or 'full' (the whole thermodynamic database)",
    )
    world_seed: int | None = Field(default=None, ge=0, description="hidden kinetics (default: seed)")
    screen: bool = Field(default=True, description="screen targets (hull, air stability, elements) first")
    max_ehull: float = Field(default=0.05, ge=0, le=1, description="screening: eV/atom above the hull")
    use_priors: bool = Field(default=True, description="literature priors for first recipes, when available")
    reuse_knowledge: bool = Field(
        default=True, description="start from the pairwise reactions already in the DB"
    )
    max_parallel_per_target: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="experiments of one target in the lab at once (None: automatic)",
    )
    crucibles_per_run: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="crucibles fed per free furnace (None: from XRD vs furnace time)",
    )
    lead_min: float = Field(
        default=60.0, ge=0, le=24 * 60, description="feed a furnace this long before it frees"
    )
    lab: LabSpec = Field(default_factory=LabSpec)

    @field_validator("targets")
    @classmethod
    def _formulas(cls, v: list[str]) -> list[str]:
        out, seen = [], set()
        for f in v:
            f = f.strip()
            key = parse_formula(f)  # raises a FormulaError naming the bad formula
            if key in seen:
                raise ValueError(f"target {f} is listed twice")
            seen.add(key)
            out.append(f)
        return out

    @field_validator("planner")
    @classmethod
    def _planner(cls, v: str) -> str:
        from labos.planners.registry import PLANNERS

        if v not in PLANNERS:
            raise ValueError(f"unknown planner {v!r}; choose one of {', '.join(PLANNERS)}")
        return v

    @property
    def success_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        from labos.config import get_settings

        return get_settings().success_threshold

    @property
    def hidden_seed(self) -> int:
        return self.seed if self.world_seed is None else self.world_seed
