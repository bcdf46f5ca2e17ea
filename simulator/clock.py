"""Time for the lab: one SimPy environment drives both virtual and real time.

Work that waits (a furnace programme, a scan, a robot move) is written as SimPy processes that
``yield env.timeout(seconds)``. In a simulated lab the environment is a plain
``simpy.Environment`` (hours pass in microseconds); against hardware, or to watch a simulation
in real time, it is ``simpy.rt.RealtimeEnvironment``. Emulators read ``clock.now()`` to evolve
their physical state, so they follow whichever time the lab runs on.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import simpy
import simpy.rt


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the clock's epoch."""


class SimClock:
    """Reads time from a SimPy environment (virtual or real-time)."""

    def __init__(self, env: simpy.Environment):
        self.env = env

    def now(self) -> float:
        return float(self.env.now)


class WallClock:
    """Monotonic wall time, for emulators and drivers run outside any simulation."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0


class ManualClock:
    """A clock a test advances by hand."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time cannot run backwards")
        self.t += seconds


def make_env(realtime: bool = False, factor: float = 1.0) -> simpy.Environment:
    """A virtual-time environment, or a real-time one where ``factor`` wall seconds make one second."""
    if realtime:
        return simpy.rt.RealtimeEnvironment(factor=factor, strict=False)
    return simpy.Environment()
