"""The one Eurotherm furnace driver over Modbus TCP (EPC3016, pymodbus) and EI-Bisynch (pty), in virtual time."""

from __future__ import annotations

import pytest
from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
    SafetyLimitError,
)
from labos.drivers.eurotherm import EurothermFurnace
from labos.drivers.furnace_transport import ModbusTcpLink
from labos.drivers.registry import DeviceSpec, open_device
from labos.drivers.transport import ConnectionLost
from labos.simulator.emulators import Connection, WireFault
from labos.simulator.emulators.eurotherm_frontends import EurothermBisynchEmulator, EurothermTcpEmulator

from labos.domain import HeatSegment
from labos.errors import ConfigError, NotImplementedYet

PROGRAM = [HeatSegment(ramp_c_per_min=10, target_c=600, dwell_min=60)]
LIMITS = {"max_temperature_c": 1200, "max_ramp_c_per_min": 20, "max_dwell_min": 2000}


def run_for(clock, furnace, seconds, every=600.0):
    seen, t = [], 0.0
    while t < seconds:
        clock.advance(every)
        t += every
        seen.append(furnace.check())
    return seen


@pytest.fixture
def tcp_emu(manual_clock):
    emu = EurothermTcpEmulator(manual_clock, series="epc3016")
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def tcp(tcp_emu, manual_clock):
    dev = open_device(
        DeviceSpec(name="epc", kind="epc3016", **tcp_emu.address, limits=LIMITS, options={"timeout_s": 0.08}),
        clock=manual_clock,
    )
    yield dev
    dev.close()


@pytest.fixture
def bis_emu(manual_clock):
    emu = EurothermBisynchEmulator(manual_clock, slave_address=12)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def bis(bis_emu, manual_clock):
    dev = open_device(
        DeviceSpec(
            name="bis",
            kind="eurotherm2416_bisynch",
            **bis_emu.address,
            limits=LIMITS,
            options={"timeout_s": 0.08, "address": 12},
        ),
        clock=manual_clock,
    )
    yield dev
    dev.close()


# -- Modbus TCP ----------------------------------------------------------------------------------
def test_tcp_is_the_same_driver_class_over_another_link(tcp):
    assert type(tcp) is EurothermFurnace and isinstance(tcp.link, ModbusTcpLink)


def test_tcp_program_runs_with_the_2400_status_encoding(tcp, tcp_emu, manual_clock):
    tcp.run_program(PROGRAM)
    assert tcp.read_raw(tcp_emu.reg["program_status"]) == [2]  # 2400/EPC3016: 2 = run
    assert tcp.read_raw(tcp_emu.reg["segment_base"] + 1) == [6000]  # one implied decimal
    seen = run_for(manual_clock, tcp, 3600 * 2.5, every=300)
    assert seen[-1].program_state == "complete" and 590 <= max(s.pv_c for s in seen) <= 615
    assert tcp_emu.runs_started == 1
    tcp.run_program(PROGRAM)  # a complete programme is reset first
    with pytest.raises(DeviceBusy):
        tcp.run_program(PROGRAM)  # never restarted while running
    assert tcp_emu.runs_started == 2


def test_tcp_limits_before_any_frame(tcp, tcp_emu):
    with pytest.raises(SafetyLimitError):
        tcp.set_setpoint(1500)
    with pytest.raises(SafetyLimitError):
        tcp.run_program([HeatSegment(ramp_c_per_min=50, target_c=800, dwell_min=1)])
    assert tcp_emu.requests == []


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.GARBAGE])
def test_tcp_lost_run_reply_is_checked_not_resent(tcp, tcp_emu, fault):
    run_key = tcp_emu.key(6, tcp_emu.reg["program_status"])
    tcp_emu.inject(fault, match=run_key)
    tcp.run_program(PROGRAM)
    assert tcp_emu.runs_started == 1 and tcp_emu.requests.count(run_key) == 1
    assert tcp.status().program_state == "run"


TCP_READ_FAULTS = [
    (WireFault.NO_REPLY, DeviceTimeout),
    (WireFault.PARTIAL, ProtocolError),
    (WireFault.LATE, DeviceTimeout),
    (WireFault.DROP, ConnectionLost),
    (WireFault.GARBAGE, ProtocolError),
    (WireFault.OTHER_REPLY, ProtocolError),  # another transaction id
    (WireFault.WRONG_ADDRESS, ProtocolError),  # another unit id
]


@pytest.mark.parametrize("fault, error", TCP_READ_FAULTS)
def test_tcp_read_faults_retried_then_typed(tcp, tcp_emu, fault, error):
    key = tcp_emu.key(3, tcp_emu.reg["pv"])
    tcp_emu.inject(fault, match=key, delay_s=0.3)
    assert tcp.pv() == pytest.approx(25, abs=1)
    tcp_emu.inject(fault, match=key, count=3, delay_s=0.3)
    with pytest.raises(error) as ei:
        tcp.pv()
    assert ei.value.safe_to_retry
    assert tcp.pv() == pytest.approx(25, abs=1)  # a fresh connection: no late reply read as an answer


@pytest.mark.parametrize("code, error", [(2, ProtocolError), (3, ProtocolError), (4, DeviceFault)])
def test_tcp_exceptions_are_typed(tcp, tcp_emu, code, error):
    tcp_emu.inject_exception(code, match=tcp_emu.key(3, tcp_emu.reg["pv"]))
    with pytest.raises(error) as ei:
        tcp.pv()
    assert ei.value.code == code
    tcp_emu.inject_exception(6)
    assert tcp.pv() == pytest.approx(25, abs=1)  # busy: retried
    tcp_emu.make_read_only(tcp_emu.reg["sp_rate"])
    with pytest.raises(ProtocolError):
        tcp.set_ramp_rate(5)


def test_tcp_sensor_break_and_overtemperature(tcp, tcp_emu, manual_clock):
    tcp.run_program(PROGRAM)
    manual_clock.advance(600)
    tcp_emu.set_sensor_break()
    with pytest.raises(DeviceFault) as ei:
        tcp.check()
    assert ei.value.code == "sensor_break"
    tcp.reset_program()
    tcp_emu.set_sensor_break(False)
    tcp_emu.trip_overtemperature()
    with pytest.raises(DeviceFault) as ei:
        tcp.run_program(PROGRAM)
    assert ei.value.code == "overtemp" and tcp_emu.runs_started == 1
    tcp.acknowledge_alarms()
    tcp.run_program(PROGRAM)
    assert tcp_emu.runs_started == 2


# -- EI-Bisynch ----------------------------------------------------------------------------------
def test_bisynch_setpoint_ramp_and_status(bis, bis_emu, manual_clock):
    st = bis.status()
    assert st.program_state == "reset" and not st.sensor_break and st.pv_c == pytest.approx(25, abs=1)
    bis.set_ramp_rate(5)
    bis.set_setpoint(300)
    assert "SL=300" in bis_emu.requests and "RR=5" in bis_emu.requests
    manual_clock.advance(600)
    assert bis.status().sp_c == pytest.approx(75, abs=1)
    manual_clock.advance(7200)
    assert bis.pv() == pytest.approx(300, abs=3)
    assert bis.alarms() == {"alarm1": False, "sensor_break": False}


def test_bisynch_programme_upload_is_not_implemented_and_sends_nothing(bis, bis_emu):
    with pytest.raises(SafetyLimitError):
        bis.run_program([HeatSegment(ramp_c_per_min=10, target_c=1300, dwell_min=1)])
    with pytest.raises(NotImplementedYet, match="not implemented: the protocol does not reach"):
        bis.run_program(PROGRAM)
    with pytest.raises(NotImplementedYet):
        bis.upload_program(PROGRAM)
    assert bis_emu.requests == [] and bis_emu.runs_started == 0
    with pytest.raises(NotImplementedYet, match="ack_alarms"):
        bis.acknowledge_alarms()


def test_bisynch_sensor_break_and_overtemperature_from_the_status_word(bis, bis_emu):
    bis_emu.set_sensor_break()
    assert bis.status().sensor_break
    with pytest.raises(DeviceFault) as ei:
        bis.check()
    assert ei.value.code == "sensor_break"
    bis_emu.set_sensor_break(False)
    bis_emu.trip_overtemperature()
    with pytest.raises(DeviceFault) as ei:
        bis.check()
    assert ei.value.code == "overtemp"


BIS_READ_FAULTS = [
    (WireFault.NO_REPLY, DeviceTimeout),
    (WireFault.PARTIAL, ProtocolError),
    (WireFault.LATE, DeviceTimeout),
    (WireFault.GARBAGE, ProtocolError),
    (WireFault.OTHER_REPLY, ProtocolError),
    (WireFault.BAD_CRC, ProtocolError),  # bad BCC
]


@pytest.mark.parametrize("fault, error", BIS_READ_FAULTS)
def test_bisynch_read_faults_retried_then_typed(bis, bis_emu, fault, error):
    bis_emu.inject(fault, match="PV?", delay_s=1.0)
    assert bis.pv() == pytest.approx(25, abs=1)
    bis_emu.inject(fault, match="PV?", count=3, delay_s=1.0)
    with pytest.raises(error) as ei:
        bis.pv()
    assert ei.value.safe_to_retry
    assert bis.pv() == pytest.approx(25, abs=1)


def test_bisynch_refusals_eot_and_nak(bis, bis_emu):
    bis_emu.inject_exception(2, match="PV?")  # the controller answers EOT: no such parameter
    with pytest.raises(ProtocolError) as ei:
        bis.pv()
    assert ei.value.code == "eot"
    bis_emu.inject_exception(3, match="SL=")  # NAK: refused, and a refusal is not retried
    with pytest.raises(ProtocolError) as ei:
        bis.set_setpoint(200)
    assert ei.value.code == "nak" and bis_emu.requests.count("SL=200") == 1
    bis_emu.make_read_only(bis_emu.reg["sp_rate"])
    with pytest.raises(ProtocolError, match="NAK"):
        bis.set_ramp_rate(5)
    bis_emu.inject(WireFault.BAD_CRC, match="SL=")  # the ACK comes back damaged: retried (idempotent)
    bis.set_setpoint(250)
    assert bis_emu.tsp_c == 250 and bis_emu.requests.count("SL=250") == 2


def test_bisynch_other_address_is_silent(bis_emu, manual_clock):
    dev = open_device(
        DeviceSpec(
            name="b",
            kind="eurotherm_bisynch",
            **bis_emu.address,
            options={"timeout_s": 0.03, "address": 13, "retries": 0},
        )
    )
    try:
        with pytest.raises(DeviceTimeout):
            dev.pv()
    finally:
        dev.close()
    assert bis_emu.frames_ignored == 1


def test_bisynch_emulator_framing_and_parity():
    from labos.drivers.bisynch import bcc, poll_frame, select_frame
    from labos.simulator.clock import ManualClock

    emu = EurothermBisynchEmulator(ManualClock(), slave_address=1)
    sent: list[bytes] = []
    conn = Connection(sent.append, lambda: None, "test")
    emu.on_data(conn, poll_frame(1, "PV")[:3])  # split across reads
    emu.on_data(conn, poll_frame(1, "PV")[3:])
    assert sent[-1][:3] == b"\x02PV" and sent[-1][-1] == bcc(sent[-1][1:-1])
    emu.on_data(conn, b"\x04" + poll_frame(1, "XX"))  # lone EOT, then an unknown mnemonic
    assert sent[-1] == b"\x04"
    bad = bytearray(select_frame(1, "SL", "100"))
    bad[-1] ^= 0x01
    emu.on_data(conn, bytes(bad))
    assert sent[-1] == b"\x15" and emu.tsp_c == 0  # bad BCC: NAK, nothing written
    n = len(sent)
    emu.on_data(conn, poll_frame(1, "PV")[:-1] + b"\x85")  # bit 7 set: a parity error on a 7E1 line
    assert len(sent) == n and emu.parity_errors == 1
    emu.on_data(conn, select_frame(1, "SL", "100"))
    assert sent[-1] == b"\x06" and emu.tsp_c == 100


# -- configuration -------------------------------------------------------------------------------
def test_configuration_errors(tcp_emu, bis_emu):
    with pytest.raises(ConfigError, match="Modbus TCP needs a host"):
        open_device(DeviceSpec(name="e", kind="epc3016", port="/dev/null"))
    with pytest.raises(ConfigError, match="unknown Eurotherm options"):
        open_device(DeviceSpec(name="e", kind="epc3016", **tcp_emu.address, options={"slave_address": 1}))
    with pytest.raises(ConfigError, match="EI-Bisynch needs a serial port"):
        open_device(DeviceSpec(name="e", kind="eurotherm2416_bisynch", host="127.0.0.1", tcp_port=1))
    with pytest.raises(ConfigError, match="unknown register name"):
        open_device(
            DeviceSpec(
                name="e",
                kind="eurotherm2416_bisynch",
                **bis_emu.address,
                options={"mnemonics": {"nope": "NO"}},
            )
        )
    with pytest.raises(ConfigError, match="two printable ASCII"):
        open_device(
            DeviceSpec(
                name="e",
                kind="eurotherm2416_bisynch",
                **bis_emu.address,
                options={"mnemonics": {"pv": "PVX"}},
            )
        )
    with pytest.raises(DeviceError, match="cannot connect"):
        open_device(
            DeviceSpec(name="e", kind="epc3016", host="127.0.0.1", tcp_port=1, options={"timeout_s": 0.2})
        )
