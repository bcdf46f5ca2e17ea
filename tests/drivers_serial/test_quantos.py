"""Quantos powder doser: doses within tolerance, refuses unsafe doses, never doses twice."""

from __future__ import annotations

import pytest
from labos.drivers.errors import DeviceBusy, DeviceFault, DeviceTimeout, ProtocolError, SafetyLimitError
from labos.drivers.protocols import PowderDoser
from labos.simulator.emulators import WireFault

START = "QRA 61 1"


def starts(emu) -> int:
    return emu.requests.count(START)


def test_dose_within_tolerance_and_hook_told(quantos, quantos_emu):
    assert isinstance(quantos, PowderDoser)
    quantos.zero()
    result = quantos.dose(150.0, tolerance_pct=2.0)
    assert result.within_tolerance
    assert result.target_mg == pytest.approx(150.0)
    assert abs(result.dosed_mg - 150.0) <= 3.0
    assert quantos_emu.hook_calls == [pytest.approx(result.dosed_mg, abs=1e-3)]
    assert quantos.weight_mg() == pytest.approx(result.dosed_mg, abs=0.05)  # the powder is on the pan
    assert starts(quantos_emu) == 1
    assert not quantos_emu.door_open


def test_two_doses_accumulate(quantos, quantos_emu):
    a = quantos.dose(50.0)
    b = quantos.dose(80.0, tolerance_pct=1.0)
    assert quantos_emu.hook_calls == [
        pytest.approx(a.dosed_mg, abs=1e-3),
        pytest.approx(b.dosed_mg, abs=1e-3),
    ]
    assert b.within_tolerance and abs(b.dosed_mg - 80.0) <= 0.8


@pytest.mark.parametrize(
    "target, tol, code",
    [(5000.0, 2.0, "max_dose_mg"), (0.5, 2.0, "min_dose_mg"), (-1.0, 2.0, "dose"), (10.0, 0.0, "tolerance")],
)
def test_safety_limits_checked_before_any_byte(quantos, quantos_emu, target, tol, code):
    with pytest.raises(SafetyLimitError) as ei:
        quantos.dose(target, tolerance_pct=tol)
    assert ei.value.code == code
    assert quantos_emu.requests == []
    assert quantos_emu.hook_calls == []


@pytest.mark.parametrize("code, error", [(2, DeviceBusy), (6, DeviceBusy), (1, DeviceFault), (5, DeviceBusy)])
def test_refused_start_dispenses_nothing(quantos, quantos_emu, code, error):
    quantos_emu.fail_next_dose(code)
    with pytest.raises(error) as ei:
        quantos.dose(100.0)
    assert ei.value.code == code
    assert ei.value.dosed_mg == 0.0
    assert ei.value.safe_to_retry  # refused outright: nothing left the head
    assert quantos_emu.hook_calls == []
    assert starts(quantos_emu) == 1


def test_unstable_weight_refuses_dose(quantos, quantos_emu):
    quantos_emu.set_drift(0.05)
    with pytest.raises(DeviceBusy) as ei:
        quantos.dose(100.0)
    assert ei.value.code == 6
    assert quantos_emu.hook_calls == []


@pytest.mark.parametrize("code", [7, 13, 9])
def test_failure_midway_reports_partial_mass_and_is_not_repeated(quantos, quantos_emu, code):
    quantos_emu.fail_next_dose(code)
    with pytest.raises(DeviceFault) as ei:
        quantos.dose(400.0)
    exc = ei.value
    assert exc.code == code and not exc.safe_to_retry
    assert 0 < exc.dosed_mg < 400.0
    assert quantos_emu.hook_calls == [pytest.approx(exc.dosed_mg, abs=1e-3)]
    assert starts(quantos_emu) == 1
    assert quantos_emu.job is None  # the doser is idle: a defined state


def test_empty_head_is_a_powder_flow_error(quantos, quantos_emu):
    quantos_emu.head_content_mg = 30.0
    with pytest.raises(DeviceFault) as ei:
        quantos.dose(100.0)
    assert ei.value.code == 7
    assert sum(quantos_emu.hook_calls) <= 30.0 + 1e-9
    assert starts(quantos_emu) == 1


def test_front_door_left_open(quantos, quantos_emu):
    quantos_emu.door_stuck_open = True
    with pytest.raises(DeviceFault, match="front door did not close"):
        quantos.dose(100.0)
    assert starts(quantos_emu) == 0
    assert quantos_emu.hook_calls == []


def test_door_open_at_start_is_refused_by_the_doser(quantos, quantos_emu):
    """If the door is opened behind the driver's back, the doser itself refuses (I 5)."""
    quantos.set_front_door(True)
    quantos_emu.fail_next_dose(5)
    with pytest.raises(DeviceBusy):
        quantos.dose(10.0)
    assert quantos_emu.hook_calls == []


def test_lost_start_reply_but_dose_finishes_in_time(quantos, quantos_emu):
    """The B line is lost but the final A line comes within the reply timeout: one good dose."""
    quantos_emu.inject(WireFault.NO_REPLY, match=START)
    result = quantos.dose(100.0)  # 28 s of clock time = 28 ms, inside the 150 ms reply timeout
    assert result.within_tolerance
    assert starts(quantos_emu) == 1 and len(quantos_emu.hook_calls) == 1


def test_lost_start_reply_stops_and_reports(quantos, quantos_emu):
    quantos_emu.inject(WireFault.NO_REPLY, match=START)
    with pytest.raises(DeviceTimeout) as ei:
        quantos.dose(1500.0)  # 308 s of clock time: the reply timeout passes first
    exc = ei.value
    assert not exc.safe_to_retry
    assert exc.dosed_mg == pytest.approx(sum(quantos_emu.hook_calls), abs=1e-3)
    assert starts(quantos_emu) == 1 and "QRA 61 4" in quantos_emu.requests
    assert quantos_emu.job is None


@pytest.mark.parametrize("fault", [WireFault.GARBAGE, WireFault.OTHER_REPLY, WireFault.WRONG_EOL])
def test_corrupt_start_reply_stops_and_reports(quantos, quantos_emu, fault):
    quantos_emu.inject(fault, match=START)
    with pytest.raises(ProtocolError) as ei:
        quantos.dose(1500.0)
    assert ei.value.dosed_mg == pytest.approx(sum(quantos_emu.hook_calls), abs=1e-3)
    assert starts(quantos_emu) == 1
    assert len(quantos_emu.hook_calls) <= 1


def test_dose_timeout_stops_the_doser(quantos_emu, fast_clock):
    from labos.drivers.registry import DeviceSpec, open_device

    dev = open_device(
        DeviceSpec(
            name="q", kind="quantos", **quantos_emu.address, options={"timeout_s": 0.15, "dose_timeout_s": 12}
        ),
        clock=fast_clock,
    )
    try:
        with pytest.raises(DeviceTimeout) as ei:
            dev.dose(500.0)  # takes 8 s + 100 s of clock time
        assert ei.value.code == "dose"
        assert ei.value.dosed_mg == pytest.approx(sum(quantos_emu.hook_calls), abs=1e-3)
        assert starts(quantos_emu) == 1 and quantos_emu.job is None
    finally:
        dev.close()


def test_result_xml_is_read(quantos, quantos_emu):
    quantos.dose(20.0)
    res = quantos.read_dose_result()
    assert res["result"] == "OK" and res["target_mg"] == pytest.approx(20.0)


def test_sampler(quantos, quantos_emu):
    quantos.set_sampler(7)
    assert quantos_emu.sampler == 7
    with pytest.raises(ValueError):
        quantos.set_sampler(31)
