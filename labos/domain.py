"""The domain model shared by every part of labos (pydantic 2).

Units at every interface: temperatures in °C, masses in mg, times in minutes (dwell, mixing) or
seconds (counting), angles in degrees 2θ, wavelengths in Å. Thermodynamics converts to kelvin
internally. Every validator raises a :class:`pydantic.ValidationError` whose message names the
field and the problem, so a bad recipe never reaches a driver.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from labos.errors import FormulaError

# Default rating of a box furnace when the lab configuration does not say otherwise (°C).
DEFAULT_FURNACE_MAX_C = 1200.0
GASES = ("O2", "CO2", "H2O", "NH3", "N2", "NO2", "NO")

_FORMULA_CHARS = re.compile(r"^[A-Za-z0-9().\[\]·*+\- ]+$")


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_formula(formula: str) -> str:
    """Validate a chemical formula and return its reduced formula.

    Raises FormulaError naming the problem: empty, unbalanced brackets, an element that does not
    exist, or a string pymatgen cannot read.
    """
    from pymatgen.core import Composition, Element

    if not isinstance(formula, str) or not formula.strip():
        raise FormulaError("formula is empty")
    text = formula.strip()
    if not _FORMULA_CHARS.match(text):
        raise FormulaError(f"formula {text!r} contains characters that are not part of a chemical formula")
    depth = 0
    for ch in text:
        depth += ch in "(["
        depth -= ch in ")]"
        if depth < 0:
            break
    if depth != 0:
        raise FormulaError(f"formula {text!r} has unbalanced brackets")
    for symbol in re.findall(r"[A-Z][a-z]?", text):
        if not Element.is_valid_symbol(symbol):
            raise FormulaError(f"formula {text!r}: {symbol!r} is not a chemical element")
    try:
        comp = Composition(text)
    except Exception as exc:  # pymatgen raises several types for unreadable strings
        raise FormulaError(f"formula {text!r} cannot be parsed: {exc}") from None
    if comp.num_atoms <= 0:
        raise FormulaError(f"formula {text!r} has no atoms")
    return comp.reduced_formula


def _formula_field(value: str) -> str:
    parse_formula(value)
    return value.strip()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------
# Targets and precursors


class Target(_Model):
    """A compound the lab should make, usually a predicted-stable phase."""

    formula: str
    structure: dict[str, Any] | None = Field(default=None, description="pymatgen Structure.as_dict()")
    source: str = "user"
    source_id: str | None = None
    e_above_hull: float | None = Field(default=None, description="eV/atom")

    _check_formula = field_validator("formula")(classmethod(lambda cls, v: _formula_field(v)))

    @field_validator("e_above_hull")
    @classmethod
    def _ehull(cls, v: float | None) -> float | None:
        if v is not None and (v < -1e-6 or not np.isfinite(v)):
            raise ValueError(f"energy above hull must be finite and >= 0 eV/atom, got {v}")
        return v

    @property
    def reduced_formula(self) -> str:
        return parse_formula(self.formula)


class PrecursorForm(StrEnum):
    POWDER = "powder"
    SOLUTION = "solution"
    PELLET = "pellet"


class Precursor(_Model):
    formula: str
    inventory_id: str = Field(default_factory=lambda: new_id("pre"))
    form: PrecursorForm = PrecursorForm.POWDER
    purity: float = Field(default=0.99, gt=0, le=1, description="mass fraction")
    available_mg: float = Field(default=100_000.0, ge=0, description="stock on hand, mg")
    lot: str | None = None

    _check_formula = field_validator("formula")(classmethod(lambda cls, v: _formula_field(v)))


class PrecursorSet(_Model):
    precursors: list[str] = Field(min_length=1)

    @field_validator("precursors")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        reduced = [parse_formula(p) for p in v]
        if len(set(reduced)) != len(reduced):
            raise ValueError(f"precursor set {v} lists the same compound twice")
        return [p.strip() for p in v]

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(sorted(parse_formula(p) for p in self.precursors))


# --------------------------------------------------------------------------------------------
# Recipes


class Atmosphere(StrEnum):
    AIR = "air"
    O2 = "O2"
    N2 = "N2"
    AR = "Ar"
    H2_AR = "H2/Ar"
    VACUUM = "vacuum"


class HeatSegment(_Model):
    """Ramp at ``ramp_c_per_min`` to ``target_c`` then hold for ``dwell_min``."""

    ramp_c_per_min: float = Field(gt=0, le=50, description="°C/min")
    target_c: float = Field(ge=20, description="°C")
    dwell_min: float = Field(ge=0, le=7 * 24 * 60, description="min")


class DoseStep(_Model):
    kind: Literal["dose"] = "dose"
    precursor: str
    mass_mg: float = Field(description="mg")

    _check_formula = field_validator("precursor")(classmethod(lambda cls, v: _formula_field(v)))

    @field_validator("mass_mg")
    @classmethod
    def _mass(cls, v: float) -> float:
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"dose mass must be a positive number of mg, got {v}")
        if v > 50_000:
            raise ValueError(f"dose mass {v} mg exceeds 50 g, the largest crucible batch")
        return v


class MixStep(_Model):
    kind: Literal["mix"] = "mix"
    method: Literal["shaker", "ball_mill", "mortar", "wet"] = "shaker"
    duration_min: float = Field(default=10, gt=0, le=24 * 60)


class HeatStep(_Model):
    kind: Literal["heat"] = "heat"
    segments: list[HeatSegment] = Field(min_length=1)
    atmosphere: Atmosphere = Atmosphere.AIR
    cool_c_per_min: float = Field(default=5.0, gt=0, le=50)

    @model_validator(mode="after")
    def _rating(self, info: ValidationInfo) -> HeatStep:
        limit = DEFAULT_FURNACE_MAX_C
        if info.context and "furnace_max_c" in info.context:
            limit = float(info.context["furnace_max_c"])
        for i, seg in enumerate(self.segments):
            if seg.target_c > limit:
                raise ValueError(
                    f"heat segment {i + 1} goes to {seg.target_c} °C, above the furnace rating of {limit} °C"
                )
        return self

    @property
    def max_temperature_c(self) -> float:
        return max(s.target_c for s in self.segments)

    @property
    def total_dwell_min(self) -> float:
        return sum(s.dwell_min for s in self.segments)

    def duration_min(self, start_c: float = 25.0) -> float:
        """Programme length including ramps and cooling back to room temperature."""
        t, temp = 0.0, start_c
        for s in self.segments:
            t += abs(s.target_c - temp) / s.ramp_c_per_min + s.dwell_min
            temp = s.target_c
        return t + max(temp - start_c, 0.0) / self.cool_c_per_min


class GrindStep(_Model):
    kind: Literal["grind"] = "grind"
    duration_min: float = Field(default=5, gt=0, le=120)


class XRDStep(_Model):
    kind: Literal["xrd"] = "xrd"
    two_theta_start: float = Field(default=10.0, ge=0, lt=180)
    two_theta_end: float = Field(default=80.0, gt=0, le=180)
    step_deg: float = Field(default=0.02, gt=0, le=1)
    counting_time_s: float = Field(default=0.5, gt=0)

    @model_validator(mode="after")
    def _range(self) -> XRDStep:
        if self.two_theta_end <= self.two_theta_start:
            raise ValueError(
                f"2θ range is empty: start {self.two_theta_start}° must be below end {self.two_theta_end}°"
            )
        return self


RecipeStep = Annotated[DoseStep | MixStep | HeatStep | GrindStep | XRDStep, Field(discriminator="kind")]


class Recipe(_Model):
    """An ordered list of steps; the planner writes it, the lab OS executes it."""

    steps: list[RecipeStep] = Field(min_length=1)

    @property
    def doses(self) -> list[DoseStep]:
        return [s for s in self.steps if isinstance(s, DoseStep)]

    @property
    def heat(self) -> HeatStep | None:
        return next((s for s in self.steps if isinstance(s, HeatStep)), None)

    @property
    def heats(self) -> list[HeatStep]:
        return [s for s in self.steps if isinstance(s, HeatStep)]

    @property
    def precursors(self) -> list[str]:
        return [d.precursor for d in self.doses]

    @property
    def total_mass_mg(self) -> float:
        return sum(d.mass_mg for d in self.doses)


# --------------------------------------------------------------------------------------------
# Samples and experiments


class SampleEvent(_Model):
    at: datetime = Field(default_factory=utcnow)
    position: str
    cause: str


class Sample(_Model):
    id: str = Field(default_factory=lambda: new_id("smp"))
    container: Literal["vial", "crucible", "xrd_holder"] = "vial"
    position: str
    history: list[SampleEvent] = Field(default_factory=list)


class ExperimentStatus(StrEnum):
    PROPOSED = "proposed"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING_OPERATOR = "waiting_operator"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Experiment(_Model):
    id: str = Field(default_factory=lambda: new_id("exp"))
    target: Target
    recipe: Recipe
    samples: list[Sample] = Field(default_factory=list)
    status: ExperimentStatus = ExperimentStatus.PROPOSED
    explanation: str = ""
    campaign_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


# --------------------------------------------------------------------------------------------
# Diffraction and outcomes

CU_KA1 = 1.540598
CU_KA2 = 1.544426


class XRDPattern(BaseModel):
    """A measured or simulated powder pattern (2θ in degrees, counts)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    two_theta: list[float]
    counts: list[float]
    wavelengths: list[float] = Field(default_factory=lambda: [CU_KA1, CU_KA2])
    wavelength_weights: list[float] = Field(default_factory=lambda: [1.0, 0.5])
    counting_time_s: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shape(self) -> XRDPattern:
        n = len(self.two_theta)
        if n < 10:
            raise ValueError(f"a pattern needs at least 10 points, got {n}")
        if len(self.counts) != n:
            raise ValueError(f"2θ has {n} points but counts has {len(self.counts)}")
        tt = np.asarray(self.two_theta)
        if not np.all(np.isfinite(tt)) or not np.all(np.isfinite(self.counts)):
            raise ValueError("pattern contains NaN or infinite values")
        if np.any(np.diff(tt) <= 0):
            raise ValueError("2θ values must be strictly increasing")
        if len(self.wavelengths) != len(self.wavelength_weights) or not self.wavelengths:
            raise ValueError("each wavelength needs one weight")
        if any(w <= 0 for w in self.wavelengths):
            raise ValueError("wavelengths must be positive (Å)")
        return self

    @property
    def x(self) -> np.ndarray:
        return np.asarray(self.two_theta, dtype=float)

    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.counts, dtype=float)


class PhaseResult(_Model):
    phase_id: str
    formula: str
    spacegroup: str | None = None
    weight_fraction: float = Field(ge=0, le=1)
    uncertainty: float = Field(default=0.0, ge=0)


class Outcome(_Model):
    """What an experiment produced, as measured (XRD analysis) or as the simulator's truth."""

    experiment_id: str
    phases: list[PhaseResult] = Field(default_factory=list)
    target_formula: str | None = None
    target_fraction: float = Field(default=0.0, ge=0, le=1)
    success: bool = False
    confidence: float = Field(default=1.0, ge=0, le=1)
    rwp: float | None = None
    source: Literal["xrd", "simulator", "replay", "operator"] = "xrd"
    measured_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _fractions(self) -> Outcome:
        total = sum(p.weight_fraction for p in self.phases)
        if total > 1.05:
            raise ValueError(f"phase weight fractions sum to {total:.3f}, more than 1")
        return self

    def fraction_of(self, formula: str) -> float:
        want = parse_formula(formula)
        return sum(p.weight_fraction for p in self.phases if parse_formula(p.formula) == want)
