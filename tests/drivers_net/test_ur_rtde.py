"""UR move completion over RTDE: the counter register, the emulator's RTDE bytes, link faults, fuzzing."""

from __future__ import annotations

import logging
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labos.drivers import rtde
from labos.drivers.errors import DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.ur import move_script
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import WireFault, sleeper_for
from labos.simulator.emulators.ur import UREmulator

from labos.errors import ConfigError
from tests.drivers_net.test_ur import POSITIONS, SETTLED_TIMEOUT_S, during_move, make_arm, wait_until


@pytest.fixture
def emu(fast_clock):
    with UREmulator(fast_clock) as e:
        yield e


# -- the old false timeout ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "use_rtde",
    [
        True,
        pytest.param(
            False,
            marks=pytest.mark.xfail(
                raises=DeviceTimeout,
                strict=True,
                reason="dashboard polling cannot tell 'finished between two polls' from 'never started'",
            ),
        ),
    ],
    ids=["rtde", "dashboard-only"],
)
def test_a_move_shorter_than_the_poll_interval_is_seen_to_complete(use_rtde):
    """The move (≈ 4 clock s) runs to its end before the driver's first look (polls every 10 s)."""
    clock = ManualClock()
    with UREmulator(clock) as emu:
        arm = make_arm(emu, clock, rtde=use_rtde, sleep=sleeper_for(clock), poll_s=10.0, start_timeout_s=30.0)
        send = arm.send_script

        def send_then_time_passes(script: str) -> None:
            send(script)
            wait_until(lambda: emu.snapshot().run is not None)
            clock.advance(60.0)  # the driver is busy elsewhere (or between polls) while the arm moves

        arm.send_script = send_then_time_passes
        try:
            arm.move("rack", "furnace")
            assert emu.programs_completed == ["labos_move"] and arm.fault is None
            assert len(emu.scripts_received) == 1
        finally:
            arm.close()


def test_moves_write_a_fresh_sequence_number(arm_rtde, emu):
    arm_rtde.move("rack", "furnace")
    arm_rtde.move("furnace", "xrd")
    regs = emu.snapshot().int_registers
    assert regs[24] == 2 and arm_rtde.rtde_state().register == 2
    assert "write_output_integer_register(24, 2)" in emu.scripts_received[-1]
    # a register someone else left at the top of the int32 range wraps to 1, never repeats
    with emu.lock:
        emu.state.int_registers[24] = 2**31 - 1
    arm_rtde.move("xrd", "rack")
    assert emu.snapshot().int_registers[24] == 1


@pytest.fixture
def arm_rtde(emu, fast_clock):
    a = make_arm(emu, fast_clock, timeout_s=SETTLED_TIMEOUT_S)
    yield a
    a.close()


def test_dashboard_checks_still_bracket_every_move(arm_rtde, emu):
    arm_rtde.move("rack", "furnace")
    cmds = emu.commands
    assert cmds[:4] == ["is in remote control", "safetystatus", "robotmode", "running"]
    assert cmds[-2:] == ["safetystatus", "is in remote control"]
    assert "running" not in cmds[4:] and "programState" not in cmds  # the end came from RTDE
    assert emu.rtde.requests.count("start") == 1 and emu.rtde.requests.count("pause") == 1


def test_without_rtde_port_the_driver_polls_and_warns(emu, fast_clock, caplog):
    with caplog.at_level(logging.WARNING, logger="labos.drivers.ur"):
        arm = make_arm(emu, fast_clock, rtde=False)
    assert "no rtde_port configured" in caplog.text
    try:
        arm.move("rack", "furnace")
        assert "running" in emu.commands[5:] and emu.rtde.requests == []
        with pytest.raises(ConfigError, match="RTDE is not configured"):
            arm.rtde_state()
    finally:
        arm.close()


def test_rtde_state_snapshot(arm_rtde):
    state = arm_rtde.rtde_state()
    assert (state.runtime_state, state.robot_mode, state.safety_status) == ("STOPPED", "RUNNING", "NORMAL")


# -- faults during a move ---------------------------------------------------------------------
def _during_move(arm, emu, inject):
    return during_move(arm, emu, inject, join_s=10.0)


SLOW = {"joint_speed": 0.2, "approach_speed": 0.2}


@pytest.mark.parametrize(
    "fault", [WireFault.DROP, WireFault.GARBAGE, WireFault.PARTIAL, WireFault.OTHER_REPLY, WireFault.LATE]
)
def test_a_broken_rtde_link_mid_move_is_renewed_and_the_move_is_not_resent(emu, fast_clock, fault):
    arm = make_arm(emu, fast_clock, motion=SLOW)
    try:
        err = _during_move(arm, emu, lambda: emu.rtde.inject(fault, match="data", delay_s=0.3))
        assert err is None, err
        assert emu.programs_completed == ["labos_move"] and len(emu.scripts_received) == 1
        if fault is not WireFault.LATE:
            assert arm.rtde_reconnects >= 1
        arm.move("furnace", "rack")  # the driver is in step again
    finally:
        arm.close()


def test_lost_samples_do_not_matter(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion=SLOW)
    try:
        assert _during_move(arm, emu, lambda: emu.rtde.inject(WireFault.NO_REPLY, 5, match="data")) is None
        assert arm.rtde_reconnects == 0 and emu.programs_completed == ["labos_move"]
    finally:
        arm.close()


def test_a_dead_rtde_link_is_a_typed_latched_error(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion=SLOW)
    try:
        err = _during_move(arm, emu, lambda: emu.rtde.inject(WireFault.NO_REPLY, None, match="data"))
        assert isinstance(err, DeviceTimeout) and err.code == "rtde" and not err.safe_to_retry
        assert arm.fault is err and len(emu.scripts_received) == 1
        emu.rtde.clear_faults()
        wait_until(lambda: emu.snapshot().run is None)
        arm.recover()
        arm.move("furnace", "rack")
    finally:
        arm.close()


def test_program_stopped_by_someone_else_is_aborted(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion=SLOW)
    try:

        def stop_once_seen_playing():
            sent = emu.rtde.packages_sent  # the program runs: the next samples show it playing
            wait_until(lambda: emu.rtde.packages_sent >= sent + 2)
            emu.handle_dashboard("stop")

        err = _during_move(arm, emu, stop_once_seen_playing)
        assert isinstance(err, DeviceFault) and err.code == "aborted"
        assert emu.programs_completed == []
    finally:
        arm.close()


def test_a_refused_stream_start_is_retried_on_a_fresh_link(arm_rtde, emu):
    emu.rtde.inject(WireFault.NO_REPLY, match="start")
    arm_rtde.move("rack", "furnace")
    assert arm_rtde.rtde_reconnects == 1 and emu.programs_completed == ["labos_move"]


def test_no_stream_means_no_move(arm_rtde, emu):
    emu.rtde.inject(WireFault.DROP, None, match="start")
    with pytest.raises(DeviceTimeout) as err:
        arm_rtde.move("rack", "furnace")
    assert err.value.safe_to_retry and arm_rtde.fault is None  # nothing was sent: not latched
    assert emu.scripts_received == []
    emu.rtde.clear_faults()
    arm_rtde.move("rack", "furnace")


def test_rtde_configuration_errors(emu, fast_clock):
    with pytest.raises(ConfigError, match="rtde_register"):
        make_arm(emu, fast_clock, rtde_register=48)
    with pytest.raises(ConfigError, match="rtde_frequency_hz"):
        make_arm(emu, fast_clock, rtde_frequency_hz=0)
    with UREmulator(fast_clock, rtde=False) as old:
        with socket.socket() as s:  # a port where nothing listens
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        with pytest.raises(DeviceError, match="cannot connect"):
            make_arm(old, fast_clock, rtde_port=free)


def test_unknown_output_variable_is_named(emu):
    client = rtde.RTDEClient("127.0.0.1", emu.rtde_port, timeout_s=0.5)
    try:
        with pytest.raises(DeviceError, match="no_such_variable"):
            client.open(["timestamp", "no_such_variable"], 10)
    finally:
        client.close()


# -- the emulator speaks the guide's bytes ------------------------------------------------------
def test_emulator_rtde_bytes(emu):
    with socket.create_connection(("127.0.0.1", emu.rtde_port)) as s:

        def ask(ptype: bytes, payload: bytes = b"") -> bytes:
            s.sendall(struct.pack(">H", 3 + len(payload)) + ptype + payload)
            size = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
            return s.recv(size - 2, socket.MSG_WAITALL)

        assert ask(b"V", b"\x00\x02") == b"V\x01"
        assert ask(b"v") == b"v" + struct.pack(">4I", 5, 11, 0, 108249)
        reply = ask(b"O", struct.pack(">d", 125.0) + b"runtime_state,output_int_register_24")
        assert reply == b"O\x01UINT32,INT32"
        assert ask(b"S") == b"S\x01"
        size = struct.unpack(">H", s.recv(2, socket.MSG_WAITALL))[0]
        assert s.recv(size - 2, socket.MSG_WAITALL) == b"U\x01" + struct.pack(">Ii", 1, 0)


# -- fuzzing the parser -------------------------------------------------------------------------
RECIPE = rtde.Recipe(
    1,
    ("timestamp", "runtime_state", "safety_status", "output_int_register_24"),
    ("DOUBLE", "UINT32", "INT32", "INT32"),
)
TYPES = sorted(rtde.PACKET_TYPES)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_split_packets_never_fails_untyped(data):
    try:
        packets, rest = rtde.split_packets(data)
    except ProtocolError:
        return
    assert len(rest) < 3 or struct.unpack_from(">H", rest)[0] > len(rest)
    assert sum(3 + len(p) for _, p in packets) + len(rest) == len(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TYPES), st.binary(max_size=40))
def test_decode_never_fails_untyped(ptype, payload):
    try:
        rtde.decode(ptype, payload, RECIPE)
    except ProtocolError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TYPES), st.binary(max_size=30)), max_size=6), st.integers(0, 40))
def test_well_framed_streams_split_back_into_their_packets(packets, cut):
    stream = b"".join(rtde.encode(t, p) for t, p in packets)
    got, rest = rtde.split_packets(stream)
    assert got == packets and rest == b""
    head, tail = rtde.split_packets(stream[: max(0, len(stream) - cut)])
    assert head == packets[: len(head)]


def test_malformed_replies_are_protocol_errors():
    with pytest.raises(ProtocolError, match="below the 3-byte header"):
        rtde.split_packets(b"\x00\x01U")
    with pytest.raises(ProtocolError, match="unknown packet type"):
        rtde.split_packets(b"\x00\x03Z")
    with pytest.raises(ProtocolError, match="recipe 2"):
        RECIPE.unpack(bytes([2]) + bytes(20))
    with pytest.raises(ProtocolError, match="needs 21"):
        RECIPE.unpack(bytes([1]) + bytes(4))
    with pytest.raises(ProtocolError, match="0 or 1"):
        rtde.decode(ord("S"), b"\x07")
    assert rtde.decode(ord("M"), b"\x02hi\x04RTDE\x01") == rtde.TextMessage("hi", "RTDE", 1)


def test_move_script_ends_with_the_counter():
    from labos.drivers.ur import NamedPosition, URMotion

    positions = {k: NamedPosition.model_validate(v) for k, v in POSITIONS.items()}
    script = move_script("rack", "xrd", positions, URMotion(), done=(24, 7))
    assert script.splitlines()[-2:] == ["  write_output_integer_register(24, 7)", "end"]
    with pytest.raises(ValueError):
        move_script("rack", "xrd", positions, URMotion(), done=(48, 7))
