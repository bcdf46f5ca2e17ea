"""Eurotherm 2416 / 3216 driver over Modbus RTU on a real pty, in virtual time (ManualClock)."""

from __future__ import annotations

import pytest
from labos.drivers.errors import DeviceBusy, DeviceFault, DeviceTimeout, ProtocolError, SafetyLimitError
from labos.drivers.eurotherm import SERIES, ProgramEncodingError, encode_program
from labos.drivers.protocols import Furnace
from labos.simulator.emulators import WireFault
from labos.simulator.emulators.modbus import crc16

from labos.domain import HeatSegment

from .conftest import make_furnace

PROGRAM = [HeatSegment(ramp_c_per_min=10, target_c=600, dwell_min=60)]


def run_for(clock, furnace, seconds, every=600.0):
    """Advance virtual time, polling the watchdog like the lab OS would; returns the statuses."""
    seen = []
    t = 0.0
    while t < seconds:
        clock.advance(every)
        t += every
        seen.append(furnace.check())
    return seen


def test_crc_check_values_from_the_protocol_notes():
    assert crc16(bytes.fromhex("010300050001")) == bytes.fromhex("940B")
    assert crc16(bytes.fromhex("01030200B8")) == bytes.fromhex("B836")


def test_program_runs_ramps_dwells_and_cools(furnace, furnace_emu, manual_clock):
    assert isinstance(furnace, Furnace)
    st = furnace.status()
    assert st.program_state == "reset" and st.pv_c == pytest.approx(25, abs=1)
    furnace.run_program(PROGRAM)
    assert furnace.status().program_state == "run"
    seen = run_for(manual_clock, furnace, 3600 * 2.5, every=300)
    states = [s.program_state for s in seen]
    assert "run" in states and states[-1] == "complete"
    peak = max(s.pv_c for s in seen)
    assert 590 <= peak <= 615  # reaches the target, little overshoot
    # ramp limited to ~10 °C/min: after 30 min PV is about 25 + 300 °C
    assert 250 < seen[5].pv_c < 360
    run_for(manual_clock, furnace, 3600 * 6, every=1800)
    assert furnace.status().pv_c < 150  # output off after the end segment: it cools
    assert furnace_emu.runs_started == 1
    assert furnace_emu.max_chamber_c < 620


def test_series_differ_only_by_configuration(furnace, furnace_emu):
    furnace.run_program(PROGRAM)
    raw = furnace.read_raw(furnace_emu.reg["program_status"])[0]
    assert raw == {"2416": 2, "3216": 1}[furnace_emu.series.name]
    decimals = furnace_emu.series.temperature_decimals
    sp = furnace.read_raw(furnace_emu.reg["segment_base"] + 1)[0]
    assert sp == 600 * 10**decimals


def test_fast_ramp_is_limited_by_the_heater_and_holds_back(furnace_emu, manual_clock):
    dev = make_furnace(furnace_emu, manual_clock, max_temperature_c=1200, max_ramp_c_per_min=50)
    try:
        dev.run_program([HeatSegment(ramp_c_per_min=50, target_c=1000, dwell_min=10)])
        states = [s.program_state for s in run_for(manual_clock, dev, 3600, every=60)]
        if "holdback" in SERIES[furnace_emu.series.name].program_status_codes.values():
            assert "holdback" in states
        # the heater manages ~30 °C/min near ambient, less when hot: 1000 °C takes well over 20 min
        assert states[:20].count("complete") == 0
    finally:
        dev.close()


def test_setpoint_and_ramp_rate(furnace, furnace_emu, manual_clock):
    furnace.set_ramp_rate(5)
    furnace.set_setpoint(300)
    manual_clock.advance(600)
    st = furnace.status()
    assert st.sp_c == pytest.approx(25 + 50, abs=1)  # working SP ramps at 5 °C/min
    manual_clock.advance(7200)
    assert furnace.pv() == pytest.approx(300, abs=3)
    assert furnace.is_running() is (300 >= furnace.series.running_threshold_c)


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda f: f.set_setpoint(1500), "max_temperature_c"),
        (lambda f: f.set_ramp_rate(30), "max_ramp_c_per_min"),
        (
            lambda f: f.run_program([HeatSegment(ramp_c_per_min=10, target_c=1300, dwell_min=1)]),
            "max_temperature_c",
        ),
        (
            lambda f: f.run_program([HeatSegment(ramp_c_per_min=25, target_c=800, dwell_min=1)]),
            "max_ramp_c_per_min",
        ),
        (
            lambda f: f.run_program([HeatSegment(ramp_c_per_min=5, target_c=800, dwell_min=3000)]),
            "max_dwell_min",
        ),
        (lambda f: f.run_program([]), "program"),
    ],
)
def test_safety_limits_before_any_frame(furnace, furnace_emu, call, code):
    with pytest.raises(SafetyLimitError) as ei:
        call(furnace)
    assert ei.value.code == code
    assert furnace_emu.requests == []


def test_too_many_segments_refused_before_any_frame(furnace, furnace_emu):
    program = [HeatSegment(ramp_c_per_min=5, target_c=100 + 10 * i, dwell_min=1) for i in range(8)]
    with pytest.raises(ProgramEncodingError, match="holds 16"):
        furnace.run_program(program)
    assert furnace_emu.requests == []


def test_encode_program_matches_alab_units():
    seg = HeatSegment(ramp_c_per_min=7.5, target_c=900, dwell_min=120)
    assert encode_program(SERIES["2416"], [seg]) == [[1, 900, 75, 0], [3, 900, 1200, 0], [0, 0, 0, 2]]
    assert encode_program(SERIES["3216"], [seg])[0] == [1, 9000, 75, 0]


def test_never_restarts_a_running_program(furnace, furnace_emu, manual_clock):
    furnace.run_program(PROGRAM)
    manual_clock.advance(600)
    with pytest.raises(DeviceBusy):
        furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 1
    furnace.reset_program()
    assert furnace.status().program_state == "reset"
    furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 2


def test_complete_program_is_reset_before_a_new_one(furnace, furnace_emu, manual_clock):
    furnace.run_program([HeatSegment(ramp_c_per_min=20, target_c=100, dwell_min=1)])
    run_for(manual_clock, furnace, 3600, every=600)
    assert furnace.status().program_state == "complete"
    furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 2


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.BAD_CRC, WireFault.PARTIAL])
def test_lost_run_reply_is_checked_not_resent(furnace, furnace_emu, fault):
    run_key = furnace_emu.key(6, furnace_emu.reg["program_status"])
    furnace_emu.inject(fault, match=run_key)
    furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 1
    assert furnace_emu.requests.count(run_key) == 1
    assert furnace.status().program_state == "run"


def test_run_refused_busy_is_not_retried(furnace, furnace_emu):
    run_key = furnace_emu.key(6, furnace_emu.reg["program_status"])
    furnace_emu.inject_exception(6, match=run_key)
    with pytest.raises(DeviceBusy):
        furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 0 and furnace_emu.requests.count(run_key) == 1


def test_sensor_break(furnace, furnace_emu, manual_clock):
    furnace.run_program(PROGRAM)
    manual_clock.advance(600)
    furnace_emu.set_sensor_break()
    assert furnace.status().sensor_break
    with pytest.raises(DeviceFault) as ei:
        furnace.check()
    assert ei.value.code == "sensor_break"
    furnace.reset_program()
    with pytest.raises(DeviceFault):
        furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 1
    manual_clock.advance(600)
    assert furnace.status().output_pct == 0.0


def test_runaway_is_detected_and_overtemperature_latches(furnace, furnace_emu, manual_clock):
    furnace.run_program(PROGRAM)
    run_for(manual_clock, furnace, 3600, every=600)
    furnace_emu.stick_output(100.0)  # welded contactor: heats whatever the controller says
    with pytest.raises(DeviceFault) as ei:
        run_for(manual_clock, furnace, 3600, every=300)
    assert ei.value.code == "runaway"
    assert furnace.status().program_state == "reset"  # the driver cut the programme
    manual_clock.advance(3 * 3600)  # the independent limit trips at 1250 °C and latches
    furnace_emu.advance()
    assert furnace_emu.alarm_latched and furnace_emu.max_chamber_c < 1300
    with pytest.raises(DeviceFault) as ei:
        furnace.check()
    assert ei.value.code == "overtemp"
    with pytest.raises(DeviceFault):
        furnace.run_program(PROGRAM)  # refused while latched
    furnace_emu.stick_output(None)  # repaired
    manual_clock.advance(600)
    furnace_emu.advance()
    if furnace_emu.chamber_c > furnace_emu.overtemp_trip_c - 10:
        with pytest.raises(DeviceFault):
            furnace.acknowledge_alarms()
    manual_clock.advance(4 * 3600)
    furnace.acknowledge_alarms()  # explicit reset once cool
    assert not furnace_emu.alarm_latched
    furnace.run_program(PROGRAM)
    assert furnace_emu.runs_started == 2


@pytest.mark.parametrize("stuck", ["hold", "holdback"])
def test_program_stuck_in_hold(furnace, furnace_emu, manual_clock, stuck):
    if stuck not in furnace_emu.series.program_status_codes.values():
        pytest.skip(f"series {furnace_emu.series.name} has no {stuck} state")
    furnace.run_program(PROGRAM)
    furnace_emu.stick_program(stuck)
    manual_clock.advance(60)
    assert furnace.check().program_state == stuck
    with pytest.raises(DeviceFault) as ei:
        run_for(manual_clock, furnace, 1800, every=300)
    assert ei.value.code == "stuck"


def test_trip_overtemperature_directly(furnace, furnace_emu):
    furnace_emu.trip_overtemperature()
    assert furnace.alarms()["alarm1"]
    with pytest.raises(DeviceFault):
        furnace.run_program(PROGRAM)
    furnace.acknowledge_alarms()
    assert not furnace.alarms()["alarm1"]


READ_FAULTS = [
    (WireFault.NO_REPLY, DeviceTimeout),
    (WireFault.PARTIAL, ProtocolError),
    (WireFault.LATE, DeviceTimeout),
    (WireFault.GARBAGE, ProtocolError),
    (WireFault.OTHER_REPLY, ProtocolError),
    (WireFault.BAD_CRC, ProtocolError),
    (WireFault.WRONG_ADDRESS, ProtocolError),
    (WireFault.LONG, ProtocolError),
]


@pytest.mark.parametrize("fault, error", READ_FAULTS)
def test_read_faults_retried_then_typed(furnace, furnace_emu, fault, error):
    key = furnace_emu.key(3, furnace_emu.reg["pv"])
    furnace_emu.inject(fault, match=key, delay_s=1.0)
    assert furnace.pv() == pytest.approx(25, abs=1)  # one bad reply: the read is retried
    furnace_emu.inject(fault, match=key, count=3, delay_s=1.0)
    with pytest.raises(error) as ei:
        furnace.pv()
    assert ei.value.safe_to_retry  # a read
    assert furnace.pv() == pytest.approx(25, abs=1)  # the line recovers


@pytest.mark.parametrize("code, error", [(2, ProtocolError), (3, ProtocolError), (4, DeviceFault)])
def test_exceptions_are_typed(furnace, furnace_emu, code, error):
    furnace_emu.inject_exception(code, match=furnace_emu.key(3, furnace_emu.reg["pv"]))
    with pytest.raises(error) as ei:
        furnace.pv()
    assert ei.value.code == code


def test_busy_exception_is_retried_on_reads(furnace, furnace_emu):
    furnace_emu.inject_exception(6)
    assert furnace.pv() == pytest.approx(25, abs=1)
    furnace_emu.inject_exception(6, count=3)
    with pytest.raises(DeviceBusy):
        furnace.pv()


def test_write_to_read_only_register(furnace, furnace_emu):
    furnace_emu.make_read_only(furnace_emu.reg["sp_rate"])
    with pytest.raises(ProtocolError) as ei:
        furnace.set_ramp_rate(5)
    assert ei.value.code == 2


def test_unknown_series_is_a_config_error(furnace_emu):
    from labos.drivers.registry import DeviceSpec, open_device

    from labos.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown Eurotherm series"):
        open_device(DeviceSpec(name="f", kind="eurotherm", **furnace_emu.address, options={"series": "9999"}))
    with pytest.raises(ConfigError, match="unknown Eurotherm options"):
        open_device(DeviceSpec(name="f", kind="eurotherm", **furnace_emu.address, options={"colour": "red"}))
