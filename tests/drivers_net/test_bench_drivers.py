"""The driver latency benchmark runs end to end for every protocol and reports comparable numbers."""

from __future__ import annotations

import json

import pytest
from labos.drivers.benchmarks import PROTOCOLS, TARGET_OVERHEAD_RATIO, compare, measure_protocols, summarize
from typer.testing import CliRunner


def test_measure_every_protocol_small():
    result = measure_protocols(5)
    assert (
        set(result)
        == set(PROTOCOLS)
        == {
            "mtsics",
            "modbus_rtu",
            "modbus_tcp",
            "ei_bisynch",
            "door_tcp",
            "ur_dashboard",
            "ur_rtde",
            "aeris",
            "opentrons_http",
        }
    )
    for row in result.values():
        assert row["n"] == 5
        assert row["driver_us"] > 0 and row["raw_us"] > 0
        assert row["ratio"] == pytest.approx(row["driver_us"] / row["raw_us"], rel=1e-2)
        assert row["overhead_ratio"] == pytest.approx(row["ratio"] - 1.0, abs=2e-3)  # added time / raw
        assert row["within_target"] is (row["overhead_ratio"] <= TARGET_OVERHEAD_RATIO)
    ref = result["opentrons_http"]["httpx_reference"]
    assert ref["driver_us"] > 0 and ref["raw_us"] > 0 and "httpx" in ref["request"]


def test_compare_alternates_and_counts():
    calls: list[str] = []
    driver, raw = compare(lambda: calls.append("d"), lambda: calls.append("r"), 7, blocks=3, warmup=1)
    assert len(driver) == len(raw) == 7
    timed = "".join(calls[2:])  # after one warm-up call of each
    assert timed == "rrr" + "ddd" + "rr" + "dd" + "rr" + "dd"


def test_summary_reads_the_target_as_added_time():
    row = summarize("x", driver=[3.0e-6] * 3, raw=[1.0e-6] * 3)
    assert row["ratio"] == 3.0 and row["overhead_ratio"] == 2.0 and row["within_target"]
    row = summarize("x", driver=[3.1e-6] * 3, raw=[1.0e-6] * 3)
    assert row["overhead_ratio"] == pytest.approx(2.1) and not row["within_target"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="n must be at least 1"):
        measure_protocols(0)
    with pytest.raises(ValueError, match="unknown protocols"):
        measure_protocols(1, ["telnet"])


def test_cli_json_names_the_target():
    from labos.cli.main import app

    out = CliRunner().invoke(
        app, ["bench", "drivers", "--json", "--n", "3", "-p", "door_tcp", "-p", "mtsics"]
    )
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert set(report["protocols"]) == {"door_tcp", "mtsics"}
    assert report["target"]["max_overhead_ratio"] == 2.0 and "added time" in report["target"]["reading"]
    assert report["all_within_target"] == all(r["within_target"] for r in report["protocols"].values())
