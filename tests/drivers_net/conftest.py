"""Fixtures for the network drivers: emulators on 127.0.0.1 and a clock that runs faster than the wall."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from labos.domain import XRDPattern


class FastClock:
    """Wall time × ``factor``: a UR move of several seconds takes a fraction of a second in a test."""

    def __init__(self, factor: float = 50.0):
        self.factor = factor
        self._t0 = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return (time.monotonic() - self._t0) * self.factor + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds


@pytest.fixture
def fast_clock() -> FastClock:
    return FastClock()


def demo_pattern(sample_id: str) -> XRDPattern:
    """Two Gaussian peaks whose positions depend on the sample id, so results can be told apart."""
    tt = np.linspace(10.0, 80.0, 1401)
    shift = (sum(map(ord, sample_id)) % 50) / 10.0
    counts = 50 + 2000 * np.exp(-(((tt - 30 - shift) / 0.08) ** 2)) + 900 * np.exp(-(((tt - 45) / 0.1) ** 2))
    return XRDPattern(
        two_theta=tt.tolist(), counts=np.round(counts, 3).tolist(), metadata={"sample_id": sample_id}
    )
