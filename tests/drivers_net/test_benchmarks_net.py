"""The network latency benchmark runs end to end and reports comparable numbers."""

from __future__ import annotations

import pytest
from labos.drivers.benchmarks_net import measure_network_protocols


def test_measure_network_protocols_small():
    result = measure_network_protocols(5)
    assert set(result) == {"ur_dashboard", "aeris", "opentrons_http"}
    for row in result.values():
        assert row["n"] == 5
        assert row["driver_us"] > 0 and row["raw_us"] > 0
        assert row["ratio"] == pytest.approx(row["driver_us"] / row["raw_us"], rel=1e-2)
        assert isinstance(row["within_target"], bool)
    assert result["opentrons_http"]["httpx_us"] > 0


def test_n_must_be_positive():
    with pytest.raises(ValueError, match="n must be at least 1"):
        measure_network_protocols(0)
