"""Request and response shapes of the console API (pydantic 2); the CLI prints the same models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labos.domain import Outcome, parse_formula


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# ------------------------------------------------------------------------------------ health / auth


class Health(Out):
    status: Literal["ok", "degraded"]
    version: str
    database: str
    lab: str = Field(description="'connected' when labos.lab is importable, else 'not available'")


class LoginRequest(In):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(Out):
    username: str
    role: str
    active: bool = True
    created_at: datetime | None = None
    last_login_at: datetime | None = None


class Me(Out):
    username: str
    role: str
    via: str
    expires_at: datetime
    csrf_token: str | None = Field(None, description="send as X-CSRF-Token with cookie-authenticated changes")


class TokenRequest(In):
    label: str = Field(default="api", min_length=1, max_length=120)
    ttl_days: float = Field(default=30, gt=0, le=366)


class TokenOut(Out):
    token: str = Field(description="shown once; send as 'Authorization: Bearer <token>'")
    expires_at: datetime
    label: str


class UserCreate(In):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=256)
    role: Literal["viewer", "operator", "admin"] = "viewer"


class UserUpdate(In):
    role: Literal["viewer", "operator", "admin"] | None = None
    active: bool | None = None
    password: str | None = Field(default=None, min_length=8, max_length=256)


class AuditOut(Out):
    id: int
    at: datetime
    username: str | None
    role: str | None
    action: str
    subject: str | None
    ok: bool
    detail: dict[str, Any]
    client: str | None


# ------------------------------------------------------------------------------- campaigns / targets


class TargetOut(Out):
    id: int
    formula: str
    status: str
    source: str
    source_id: str | None = None
    e_above_hull: float | None = None
    n_experiments: int = 0
    best_fraction: float | None = None
    best_experiment_id: str | None = None
    succeeded: bool = False


class CampaignSummary(Out):
    id: str
    name: str
    status: str
    created_at: datetime
    updated_at: datetime
    n_targets: int
    n_succeeded: int
    n_experiments: int
    n_running: int
    n_completed: int
    n_failed: int
    success_rate: float | None = Field(None, description="succeeded targets / targets")
    experiments_per_success: float | None = None


class ExperimentSummary(Out):
    id: str
    campaign_id: str | None
    target_formula: str
    status: str
    planner: str | None
    created_at: datetime
    updated_at: datetime
    precursors: list[str]
    max_temperature_c: float | None
    dwell_min: float | None
    target_fraction: float | None = Field(None, description="latest measured target weight fraction")
    success: bool | None = None


class CampaignDetail(CampaignSummary):
    config: dict[str, Any]
    targets: list[TargetOut]
    experiments: list[ExperimentSummary]


class CampaignSubmit(In):
    """Queue a campaign for the campaign runner: a name and the target formulas."""

    name: str = Field(min_length=1, max_length=200)
    targets: list[str] = Field(min_length=1, max_length=500)
    budget_per_target: int = Field(default=10, ge=1, le=1000)
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("targets")
    @classmethod
    def _formulas(cls, v: list[str]) -> list[str]:
        out = []
        for f in v:
            parse_formula(f)
            out.append(f.strip())
        if len({parse_formula(f) for f in out}) != len(out):
            raise ValueError("the same target is listed twice")
        return out


# ------------------------------------------------------------------------------ experiments / samples


class SampleEventOut(Out):
    at: datetime
    position: str
    cause: str


class SampleSummary(Out):
    id: str
    experiment_id: str | None
    target_formula: str | None = None
    container: str
    position: str
    created_at: datetime
    last_moved_at: datetime | None = None
    n_moves: int = 0


class OutcomeOut(Out):
    id: int
    source: str
    created_at: datetime
    xrd_file: str | None
    success: bool
    target_fraction: float
    outcome: Outcome


class ExperimentDetail(ExperimentSummary):
    target: dict[str, Any]
    recipe: dict[str, Any]
    explanation: str
    samples: list[SampleSummary]
    outcomes: list[OutcomeOut]


class Lineage(Out):
    """Where a sample came from: the decision, the precursors and weighed masses, the heat, the XRD."""

    experiment: ExperimentSummary | None
    explanation: str | None = None
    doses: list[dict[str, Any]] = Field(description="precursor, planned mg and, when recorded, weighed mg")
    heat: list[dict[str, Any]] = Field(description="heat steps of the recipe")
    xrd_files: list[str]
    outcomes: list[OutcomeOut]
    related_samples: list[str] = Field(description="other samples of the same experiment")
    provenance: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the lab OS's records: doses with lots, heat run, XRD file, analysis",
    )
    parents: list[str] = Field(default_factory=list, description="samples this one was derived from")
    children: list[str] = Field(default_factory=list, description="samples derived from this one")


class SampleDetail(SampleSummary):
    data: dict[str, Any]
    history: list[SampleEventOut]
    lineage: Lineage


class EventOut(Out):
    id: int
    at: datetime
    kind: str
    subject: str | None
    data: dict[str, Any]


class TimelineItem(Out):
    """A task (an interval) or another event (a point) in an experiment's life."""

    task: str
    kind: str | None = None
    status: str = Field(
        description="blocked, ready, running, done, failed, cancelled, waiting_operator or event"
    )
    start: datetime | None = None
    end: datetime | None = None
    start_min: float | None = Field(None, description="lab clock (virtual in simulation), minutes")
    end_min: float | None = None
    device: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @property
    def start_label(self) -> str | None:
        return _clock_label(self.start_min, self.start)

    @property
    def end_label(self) -> str | None:
        return _clock_label(self.end_min, self.end)


def _clock_label(minutes: float | None, at: datetime | None) -> str | None:
    if minutes is not None:
        return f"t+{minutes / 60:.2f} h"
    return at.strftime("%H:%M:%S") if at else None


class Series(Out):
    t_min: list[float]
    temperature_c: list[float]


class FurnaceProfile(Out):
    """Programmed setpoint (from the recipe) against measured furnace temperature (from lab events)."""

    setpoint: Series
    measured: Series | None = None
    furnace: str | None = None
    atmosphere: str | None = None


class PhaseCurve(Out):
    name: str
    formula: str | None = None
    weight_fraction: float | None = None
    curve: list[float] | None = None
    ticks: list[float] | None = Field(None, description="2θ of the phase's reflections")


class XRDPlot(Out):
    """Observed pattern, fitted pattern, difference and per-phase contributions where the analysis kept them."""

    experiment_id: str
    xrd_file: str | None
    two_theta: list[float]
    observed: list[float]
    calculated: list[float] | None = None
    background: list[float] | None = None
    difference: list[float] | None = None
    phases: list[PhaseCurve] = Field(default_factory=list)
    rwp: float | None = Field(None, description="weighted profile R of the fit, as a fraction")
    target_formula: str | None = None
    target_fraction: float | None = None
    success: bool | None = None
    source: str = Field(description="where the curves came from")


class Page(Out):
    total: int
    items: list[Any]
