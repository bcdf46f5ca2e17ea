"""Fixtures for the network drivers: emulators on 127.0.0.1 and a clock that runs faster than the wall."""

from __future__ import annotations

import numpy as np
import pytest
from labos.simulator.emulators import ScaledClock

from labos.domain import XRDPattern


@pytest.fixture
def fast_clock() -> ScaledClock:
    """Wall time × 50: a UR move of several seconds takes a fraction of a second in a test."""
    return ScaledClock(50.0)


def demo_pattern(sample_id: str) -> XRDPattern:
    """Two Gaussian peaks whose positions depend on the sample id, so results can be told apart."""
    tt = np.linspace(10.0, 80.0, 1401)
    shift = (sum(map(ord, sample_id)) % 50) / 10.0
    counts = 50 + 2000 * np.exp(-(((tt - 30 - shift) / 0.08) ** 2)) + 900 * np.exp(-(((tt - 45) / 0.1) ** 2))
    return XRDPattern(
        two_theta=tt.tolist(), counts=np.round(counts, 3).tolist(), metadata={"sample_id": sample_id}
    )
