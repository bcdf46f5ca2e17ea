"""URArm against the UR emulator over real TCP: moves, pendant programs, every §7 fault."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.protocols import RobotArm
from labos.drivers.registry import open_device
from labos.drivers.ur import (
    NamedPosition,
    URArm,
    URMotion,
    move_script,
    parse_bool,
    parse_program_state,
    parse_robot_mode,
    parse_running,
    parse_safety_status,
)
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import LINK_FAULTS, WireFault
from labos.simulator.emulators.ur import HOME_JOINTS, UREmulator, compile_script

from labos.errors import ConfigError

POSITIONS = {
    "rack": {"joints": [0.0, -1.6, 1.6, -1.5, -1.57, 0.0], "approach": [0.0, -1.4, 1.4, -1.5, -1.57, 0.0]},
    "furnace": {"joints": [1.2, -1.6, 1.6, -1.5, -1.57, 0.0], "approach": [1.2, -1.4, 1.4, -1.5, -1.57, 0.0]},
    "xrd": {"joints": [-1.0, -1.2, 1.3, -1.5, -1.57, 0.0]},
}
PICK_PLACE = """def pick_place():
  movej([0.5, -1.5, 1.5, -1.5, -1.57, 0.0], a=1.4, v=1.05)
  set_tool_digital_out(0, True)
  sleep(1.0)
  movej([0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0], a=1.4, v=1.05)
end
"""


@pytest.fixture
def emu(fast_clock):
    with UREmulator(fast_clock, programs={"pick_place.urp": PICK_PLACE}) as e:
        yield e


# The shared fixtures give a reply 1 s: on a loaded machine the RTDE handshake once missed 0.25 s on
# loopback. Tests that build their own arm with make_arm keep 0.25 s, so a silent link fails fast.
SETTLED_TIMEOUT_S = 1.0


def make_arm(emu, clock, *, rtde: bool = True, **kw) -> URArm:
    """The driver on ``emu``; ``rtde=False`` is an old configuration without the RTDE port."""
    opts = dict(positions=POSITIONS, clock=clock, poll_s=0.005, timeout_s=0.25, start_timeout_s=10.0)
    if rtde:
        opts["rtde_port"] = emu.rtde_port
    opts.update(kw)
    return URArm("127.0.0.1", dashboard_port=emu.dashboard_port, secondary_port=emu.secondary_port, **opts)


@pytest.fixture
def arm(emu, fast_clock):
    a = make_arm(emu, fast_clock, timeout_s=SETTLED_TIMEOUT_S)
    yield a
    a.close()


def wait_until(cond, timeout=3.0):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.002)


# -- normal operation -------------------------------------------------------------------------
def test_move_carries_between_named_positions_with_checks_before_and_after(arm, emu):
    assert isinstance(arm, RobotArm)
    arm.move("rack", "furnace")
    state = emu.snapshot()
    assert emu.programs_completed == ["labos_move"]
    assert state.joints == pytest.approx(tuple(POSITIONS["furnace"]["approach"]))
    assert state.outputs[("set_tool_digital_out", 0)] is False  # released at the destination
    assert emu.messages == ["labos move rack -> furnace"]
    cmds = emu.commands
    before = cmds[: cmds.index("close popup")]
    assert before == ["is in remote control", "safetystatus", "robotmode", "running"], cmds
    assert cmds[-2:] == ["safetystatus", "is in remote control"]
    assert arm.moves_done == 1 and arm.fault is None


def test_move_takes_clock_time_from_the_velocity_profile(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion={"joint_speed": 0.5, "approach_speed": 0.5})
    t0 = fast_clock.now()
    arm.move("rack", "xrd")
    elapsed = fast_clock.now() - t0
    program = compile_script(move_script("rack", "xrd", arm.positions, arm.motion), HOME_JOINTS, None)
    expected = sum(s.duration for s in program.steps)
    assert expected > 5
    assert expected * 0.95 <= elapsed <= expected + 30  # the driver polls; allow a loaded machine
    arm.close()


def test_pendant_program_load_and_play(arm, emu):
    arm.run_program("pick_place.urp")
    assert emu.programs_started == ["pick_place"]
    assert emu.programs_completed == ["pick_place"]
    assert arm.program_state() == ("STOPPED", "pick_place.urp")
    assert arm.status().safety_status == "NORMAL"


def test_missing_program_is_reported_and_nothing_plays(arm, emu):
    with pytest.raises(DeviceError) as err:
        arm.run_program("nope.urp")
    assert err.value.code == "not_found"
    assert "play" not in emu.commands


def test_unknown_position_fails_before_any_byte(arm, emu):
    n = len(emu.commands)
    with pytest.raises(ConfigError, match="unknown robot position 'oven'"):
        arm.move("rack", "oven")
    assert len(emu.commands) == n and emu.scripts_received == []


@pytest.mark.parametrize(
    "positions, motion",
    [
        ({"a": {"joints": [0, 0, 0, 0, 0]}}, None),
        ({"a": {"joints": [0, 0, 0, 0, 0, 7.0]}}, None),
        ({"a": {"joints": [0, 0, 0, 0, 0, 0]}}, {"joint_speed": 5.0}),
        ({"a": {"joints": [0, 0, 0, 0, 0, 0]}}, {"gripper_close": "a()\nb()"}),
    ],
)
def test_bad_configuration_is_a_config_error(emu, fast_clock, positions, motion):
    with pytest.raises(ConfigError):
        make_arm(emu, fast_clock, positions=positions, motion=motion)


def test_registry_opens_a_ur(emu, fast_clock):
    spec = {
        "name": "arm1",
        "kind": "ur",
        "host": "127.0.0.1",
        "tcp_port": emu.dashboard_port,
        "options": {"secondary_port": emu.secondary_port, "positions": POSITIONS, "poll_s": 0.005},
    }
    arm = open_device(spec, clock=fast_clock)
    try:
        assert isinstance(arm, URArm) and arm.name == "arm1"
        arm.move("xrd", "rack")
    finally:
        arm.close()


# -- safety faults ----------------------------------------------------------------------------
def test_local_control_refuses_before_sending_a_script(arm, emu):
    emu.set_remote_control(False)
    with pytest.raises(DeviceFault) as err:
        arm.move("rack", "furnace")
    assert err.value.code == "local"
    assert emu.scripts_received == []


def test_failed_play_latches_until_recover(arm, emu):
    emu.fail_next_play()
    with pytest.raises(DeviceFault) as err:
        arm.run_program("pick_place.urp")
    assert err.value.code == "play_failed" and not err.value.safe_to_retry
    assert emu.commands.count("play") == 1
    with pytest.raises(DeviceFault, match="recover"):
        arm.move("rack", "furnace")
    assert emu.scripts_received == []
    arm.recover()
    arm.run_program("pick_place.urp")
    assert emu.programs_completed == ["pick_place"]


def during_move(arm, emu, inject, join_s: float = 5.0):
    """Start a move in a thread, inject a fault once the program runs; return the error."""
    import threading

    box = {}

    def go():
        try:
            arm.move("rack", "furnace")
        except DeviceError as exc:
            box["err"] = exc

    t = threading.Thread(target=go)
    t.start()
    wait_until(lambda: emu.snapshot().run is not None)
    inject()
    t.join(join_s)
    assert not t.is_alive()
    return box.get("err")


def test_protective_stop_mid_move_is_a_fault_and_is_not_resent(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion={"joint_speed": 0.1, "approach_speed": 0.1})
    err = during_move(arm, emu, emu.protective_stop)
    assert isinstance(err, DeviceFault) and err.code == "PROTECTIVE_STOP"
    assert len(emu.scripts_received) == 1 and emu.programs_completed == []
    stopped_at = emu.snapshot().joints
    assert stopped_at != tuple(POSITIONS["furnace"]["approach"])
    with pytest.raises(DeviceFault, match="latched|recover"):
        arm.move("rack", "furnace")
    fast_clock.advance(6.0)
    arm.recover()
    assert arm.safety_status() == "NORMAL" and arm.fault is None
    assert emu.snapshot().joints == stopped_at  # recovery never moves the arm
    arm.close()


def test_protective_stop_cannot_be_unlocked_within_5_s():
    clock = ManualClock()
    with UREmulator(clock) as emu:
        arm = make_arm(emu, clock)
        emu.protective_stop()
        with pytest.raises(DeviceFault) as err:
            arm.check_ready()
        assert err.value.code == "PROTECTIVE_STOP"
        clock.advance(3.0)
        with pytest.raises(DeviceBusy, match="Cannot unlock protective stop until 5s") as busy:
            arm.recover()
        assert busy.value.safe_to_retry
        clock.advance(2.5)
        arm.recover()
        assert arm.safety_status() == "NORMAL"
        arm.close()


def test_emergency_stop_latches_until_released_and_powered_on(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion={"joint_speed": 0.1, "approach_speed": 0.1})
    err = during_move(arm, emu, emu.emergency_stop)
    assert isinstance(err, DeviceFault) and err.code == "SYSTEM_EMERGENCY_STOP"
    with pytest.raises(DeviceFault, match="emergency stop button"):
        arm.recover()
    assert arm.safety_status() == "SYSTEM_EMERGENCY_STOP"  # software cannot clear it
    emu.release_emergency_stop()
    assert arm.robot_mode() == "POWER_OFF"
    with pytest.raises(DeviceFault, match="robot mode is POWER_OFF|recover"):
        arm.move("xrd", "rack")
    arm.recover()
    assert arm.robot_mode() == "RUNNING"
    assert "power on" in emu.commands and "brake release" in emu.commands
    arm.move("xrd", "rack")
    assert emu.programs_completed == ["labos_move"]
    arm.close()


def test_popup_before_a_move_is_closed(arm, emu):
    emu.show_popup("Tool not calibrated")
    arm.move("rack", "furnace")
    assert emu.state.popup is None and emu.programs_completed == ["labos_move"]


def test_popup_during_a_move_pauses_it_and_the_driver_stops_there(emu, fast_clock):
    arm = make_arm(emu, fast_clock, motion={"joint_speed": 0.1, "approach_speed": 0.1})
    err = during_move(arm, emu, emu.show_popup)
    assert isinstance(err, DeviceFault) and err.code == "paused"
    assert arm.program_state()[0] == "PAUSED"
    assert emu.commands.count("play") == 0 and len(emu.scripts_received) == 1
    arm.recover()  # closes the popup and stops the paused program
    assert arm.program_state()[0] == "STOPPED"
    arm.close()


def test_program_not_running_after_n_seconds_is_a_timeout(emu, fast_clock):
    # a gripper command the controller does not know: the script never compiles, nothing runs
    arm = make_arm(emu, fast_clock, motion={"gripper_close": "rq_close()"}, start_timeout_s=20.0)
    with pytest.raises(DeviceTimeout, match="program not running after 20 s") as err:
        arm.move("rack", "furnace")
    assert not err.value.safe_to_retry
    assert len(emu.scripts_received) == 1 and "compile error" in emu.scripts_rejected[0][1]
    arm.close()


# -- wire faults ------------------------------------------------------------------------------
WIRE = sorted(LINK_FAULTS)


@pytest.mark.parametrize("fault", WIRE)
def test_one_bad_reply_to_a_read_is_retried_on_a_fresh_connection(arm, emu, fault):
    emu.inject(fault, match="safetystatus", delay_s=0.6)
    assert arm.safety_status() == "NORMAL"
    assert arm.is_running() is False  # the stream is in step again (a late reply was not taken)
    assert arm.robot_mode() == "RUNNING"


@pytest.mark.parametrize("fault", WIRE)
def test_a_persistently_bad_link_gives_a_typed_error(arm, emu, fault):
    emu.inject(fault, match="safetystatus", count=None, delay_s=2.0)
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        arm.safety_status()
    assert err.value.safe_to_retry
    emu.faults.clear()
    assert arm.safety_status() == "NORMAL"


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.GARBAGE, WireFault.LATE])
def test_lost_reply_to_play_is_never_resent(arm, emu, fault):
    emu.inject(fault, match="play", delay_s=2.0)
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        arm.run_program("pick_place.urp")
    assert not err.value.safe_to_retry
    assert emu.commands.count("play") == 1
    assert arm.fault is not None
    wait_until(lambda: emu.snapshot().run is None)
    assert emu.programs_started == ["pick_place"]  # it ran once; the driver did not start it again


def test_unknown_command_reply(arm):
    with pytest.raises(ProtocolError) as err:
        arm._ask("frobnicate", parse_running, safe=True)
    assert err.value.code == "unknown"


# -- parsers ----------------------------------------------------------------------------------
def test_parsers_accept_real_replies():
    assert parse_safety_status("Safetystatus: PROTECTIVE_STOP") == "PROTECTIVE_STOP"
    assert parse_robot_mode("Robotmode: POWER_OFF") == "POWER_OFF"
    assert parse_running("Program running: true") is True
    assert parse_bool("false") is False
    assert parse_program_state("PAUSED move.urp") == ("PAUSED", "move.urp")
    with pytest.raises(ProtocolError):
        parse_safety_status("Program running: true")  # a reply meant for another command
    with pytest.raises(ProtocolError):
        parse_running("Safetystatus: NORMAL")


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(
        st.text(max_size=60),
        st.sampled_from(["Safetystatus: ", "Robotmode: ", "Program running: "]).map(lambda p: p + "x"),
    )
)
def test_parsers_never_fail_untyped(reply):
    for parse in (parse_safety_status, parse_robot_mode, parse_running, parse_bool, parse_program_state):
        try:
            parse(reply)
        except ProtocolError:
            pass


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-6.2, 6.2), min_size=6, max_size=6),
    st.lists(st.floats(-6.2, 6.2), min_size=6, max_size=6),
    st.floats(0.05, 3.1),
)
def test_generated_scripts_always_compile(a, b, v):
    positions = {"a": NamedPosition(joints=a), "b": NamedPosition(joints=b, approach=a)}
    script = move_script("a", "b", positions, URMotion(joint_speed=v))
    program = compile_script(script, HOME_JOINTS, None)
    assert program.steps[-1].joints == pytest.approx(tuple(a), abs=1e-5)
