"""What the lab OS needs from each device family, as structural protocols (ophyd style).

A driver class satisfies a protocol by having these methods; no inheritance needed. Units:
mg, °C, °C/min, minutes, degrees 2θ. Every driver raises subclasses of
:class:`labos.drivers.errors.DeviceError` with the device's own error code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from labos.domain import HeatSegment


@runtime_checkable
class Closable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class DoseResult:
    target_mg: float
    dosed_mg: float
    within_tolerance: bool
    raw: str = ""


@runtime_checkable
class Balance(Closable, Protocol):
    def identify(self) -> str: ...
    def zero(self) -> None: ...
    def tare(self) -> float: ...
    def weight_mg(self, stable: bool = True) -> float: ...


@runtime_checkable
class PowderDoser(Balance, Protocol):
    def dose(self, target_mg: float, tolerance_pct: float = 2.0) -> DoseResult: ...


@dataclass(frozen=True)
class FurnaceStatus:
    pv_c: float
    sp_c: float
    output_pct: float
    program_state: str  # "reset" | "run" | "hold" | "holdback" | "complete"
    segment: int
    sensor_break: bool


@runtime_checkable
class Furnace(Closable, Protocol):
    def status(self) -> FurnaceStatus: ...
    def run_program(self, segments: Sequence[HeatSegment]) -> None: ...
    def reset_program(self) -> None: ...


@runtime_checkable
class Door(Closable, Protocol):
    def open(self) -> None: ...
    def close_door(self) -> None: ...
    def state(self) -> str: ...


@runtime_checkable
class RobotArm(Closable, Protocol):
    def move(self, source: str, destination: str) -> None:
        """Carry whatever is at named position ``source`` to ``destination``."""
        ...

    def safety_status(self) -> str: ...


@runtime_checkable
class Diffractometer(Closable, Protocol):
    def ready(self) -> bool: ...
    def add_sample(self, sample_id: str, slot: int, application: str) -> None: ...
    def measure(self, sample_id: str, application: str) -> None: ...
    def remove_sample(self, sample_id: str) -> None: ...
    def wait_for_result(self, sample_id: str, timeout_s: float) -> Path: ...


@runtime_checkable
class LiquidHandler(Closable, Protocol):
    def run_protocol(self, protocol_text: str, name: str) -> str:
        """Upload and run a Protocol API v2 protocol; returns the run id."""
        ...

    def run_status(self, run_id: str) -> str: ...
