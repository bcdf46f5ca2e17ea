"""Universal Robots arm: dashboard server (TCP 29999), URScript on the secondary interface (30002)
and completion through RTDE (30004).

Why three: the dashboard is how a lab checks the robot (remote control, safety status, robot mode,
program state) and runs programs taught on the pendant; parametrised moves between named positions
from the lab configuration are URScript sent to the secondary interface. As in A-Lab, every move
is bracketed by dashboard checks (remote control, ``safetystatus == NORMAL``, robot mode RUNNING)
and "program not running after N s" is an error.

How a move's end is seen: polling the dashboard's ``running`` cannot tell "not started yet" from
"already finished": a program shorter than the poll interval reads as never run, a false start
timeout. So with ``rtde_port`` configured the driver subscribes over RTDE
(:mod:`labos.drivers.rtde`) to ``runtime_state``, ``robot_mode``, ``safety_status`` and one output
integer register, and every generated move ends with ``write_output_integer_register(<reg>,
<seq>)``, a per-move sequence number one past the register's value when the move was sent. The
register keeps its value, so completion is a level that no sampling interval can miss, and it
survives a dropped RTDE connection (the driver reconnects, a read-only act, and reads it again).
A counter was chosen over the primary interface's ``isProgramRunning`` flag (RobotModeData) for
that reason: a flag is as easily missed between samples as the dashboard's. Safety leaving NORMAL,
a pause (popup) or the program stopping before the register is written end the move as faults.
Programs taught on the pendant cannot carry the counter: they are watched through
``runtime_state`` (PLAYING then STOPPED), which is better sampled than the dashboard but not
immune to a program shorter than one RTDE period. Without ``rtde_port`` (old lab configurations)
the driver polls the dashboard as before and logs a warning once.

Nothing with an effect is repeated: a move, ``play``, ``power on`` or ``brake release`` that timed
out or failed raises and latches the driver (:attr:`URArm.fault`) until :meth:`URArm.recover`,
because the arm may be stopped mid-air holding a crucible. Read-only dashboard queries are retried
on a fresh connection (a late reply on the old one can never be taken for the answer).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from labos.drivers import rtde
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.registry import DeviceSpec, construct, lab_context, register_kind
from labos.drivers.transport import ConnectionLost, TcpLine, retry_call
from labos.simulator.clock import Clock, WallClock
from pydantic import BaseModel, ConfigDict, Field, field_validator

from labos.errors import ConfigError

log = logging.getLogger("labos.drivers.ur")

GREETING_PREFIX = "Connected: Universal Robots Dashboard Server"
SAFETY_STATUSES = frozenset(
    {
        "NORMAL",
        "REDUCED",
        "PROTECTIVE_STOP",
        "RECOVERY",
        "SAFEGUARD_STOP",
        "SYSTEM_EMERGENCY_STOP",
        "ROBOT_EMERGENCY_STOP",
        "VIOLATION",
        "FAULT",
        "AUTOMATIC_MODE_SAFEGUARD_STOP",
        "SYSTEM_THREE_POSITION_ENABLING_STOP",
    }
)
ROBOT_MODES = frozenset(
    {
        "NO_CONTROLLER",
        "DISCONNECTED",
        "CONFIRM_SAFETY",
        "BOOTING",
        "POWER_OFF",
        "POWER_ON",
        "IDLE",
        "BACKDRIVE",
        "RUNNING",
    }
)
PROGRAM_STATES = frozenset({"STOPPED", "PLAYING", "PAUSED"})
EMERGENCY = frozenset({"SYSTEM_EMERGENCY_STOP", "ROBOT_EMERGENCY_STOP"})
JOINT_LIMIT_RAD = 2 * math.pi
INT32_MAX = 2**31 - 1
#: runtime_state values during which a program is under way
RUNTIME_ACTIVE = frozenset({"PLAYING", "PAUSING", "RESUMING"})


# -- reply parsers (pure; fuzzed in the tests) ------------------------------------------------
def _bad(what: str, reply: str) -> ProtocolError:
    if reply.startswith("could not understand"):
        return ProtocolError(f"dashboard did not understand {what}: {reply!r}", device="ur", code="unknown")
    return ProtocolError(f"unexpected reply to {what}: {reply!r}", device="ur", code="reply")


def _prefixed(reply: str, prefix: str, allowed: frozenset[str], what: str) -> str:
    m = re.fullmatch(rf"{re.escape(prefix)}:\s*(\S+)", reply.strip(), flags=re.IGNORECASE)
    if m is None or m.group(1).upper() not in allowed:
        raise _bad(what, reply)
    return m.group(1).upper()


def parse_safety_status(reply: str) -> str:
    """``Safetystatus: NORMAL`` → ``"NORMAL"``."""
    return _prefixed(reply, "Safetystatus", SAFETY_STATUSES, "safetystatus")


def parse_robot_mode(reply: str) -> str:
    """``Robotmode: RUNNING`` → ``"RUNNING"``."""
    return _prefixed(reply, "Robotmode", ROBOT_MODES, "robotmode")


def parse_running(reply: str) -> bool:
    """``Program running: true`` → True."""
    m = re.fullmatch(r"Program running:\s*(true|false)", reply.strip(), flags=re.IGNORECASE)
    if m is None:
        raise _bad("running", reply)
    return m.group(1).lower() == "true"


def parse_bool(reply: str, what: str = "is in remote control") -> bool:
    value = reply.strip().lower()
    if value not in ("true", "false"):
        raise _bad(what, reply)
    return value == "true"


def parse_program_state(reply: str) -> tuple[str, str]:
    """``PLAYING move.urp`` → ``("PLAYING", "move.urp")``."""
    parts = reply.strip().split(maxsplit=1)
    if not parts or parts[0].upper() not in PROGRAM_STATES:
        raise _bad("programState", reply)
    return parts[0].upper(), parts[1] if len(parts) > 1 else ""


def check_load_reply(reply: str, program: str) -> None:
    text = reply.strip()
    if text.startswith("Loading program:"):
        return
    if text.startswith("File not found"):
        raise DeviceError(
            f"program {program!r} not found on the robot: {text}", device="ur", code="not_found"
        )
    if text.startswith("Error while loading program"):
        raise DeviceFault(f"cannot load {program!r}: {text}", device="ur", code="load_error")
    raise _bad(f"load {program}", reply)


def check_play_reply(reply: str) -> None:
    text = reply.strip()
    if text == "Starting program":
        return
    if text.startswith("Failed to execute: play"):
        raise DeviceFault("the robot refused to play the program", device="ur", code="play_failed")
    raise _bad("play", reply)


# -- configuration ----------------------------------------------------------------------------
def _joints(value: list[float], what: str) -> list[float]:
    if len(value) != 6:
        raise ValueError(f"{what} needs 6 joint angles (rad), got {len(value)}")
    for q in value:
        if not math.isfinite(q) or abs(q) > JOINT_LIMIT_RAD:
            raise ValueError(f"{what}: joint angle {q} is outside ±2π rad")
    return [float(q) for q in value]


class NamedPosition(BaseModel):
    """A taught position: joint angles in rad, and a clear approach point above it."""

    model_config = ConfigDict(extra="forbid")

    joints: list[float]
    approach: list[float] | None = None

    @field_validator("joints")
    @classmethod
    def _check_joints(cls, v: list[float]) -> list[float]:
        return _joints(v, "joints")

    @field_validator("approach")
    @classmethod
    def _check_approach(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else _joints(v, "approach")


class URMotion(BaseModel):
    """Speed and gripper settings for generated moves (limits checked before anything is sent)."""

    model_config = ConfigDict(extra="forbid")

    joint_speed: float = Field(1.05, gt=0, le=math.pi, description="rad/s")
    joint_accel: float = Field(1.4, gt=0, le=40.0, description="rad/s²")
    approach_speed: float = Field(0.5, gt=0, le=math.pi, description="rad/s near the part")
    gripper_close: str = "set_tool_digital_out(0, True)"
    gripper_open: str = "set_tool_digital_out(0, False)"
    grip_wait_s: float = Field(0.5, ge=0.1, le=10)

    @field_validator("gripper_close", "gripper_open")
    @classmethod
    def _one_line(cls, v: str) -> str:
        if "\n" in v or not v.strip():
            raise ValueError("a gripper command is one URScript line")
        return v.strip()


def move_script(
    source: str,
    destination: str,
    positions: Mapping[str, NamedPosition],
    motion: URMotion,
    name: str = "labos_move",
    done: tuple[int, int] | None = None,
) -> str:
    """URScript that picks at ``source`` and places at ``destination`` via their approach points;
    ``done = (register, seq)`` makes its last statement write ``seq`` to that output int register."""
    for key in (source, destination):
        if key not in positions:
            raise ConfigError(
                f"unknown robot position {key!r}; known: {', '.join(sorted(positions)) or 'none'}"
            )
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"not a URScript program name: {name!r}")
    src, dst = positions[source], positions[destination]

    def mj(q: list[float], v: float) -> str:
        return f"  movej([{', '.join(f'{x:.6f}' for x in q)}], a={motion.joint_accel:g}, v={v:g})"

    lines = [f"def {name}():", f'  textmsg("labos move {source} -> {destination}")']
    lines.append(f"  {motion.gripper_open}")
    if src.approach:
        lines.append(mj(src.approach, motion.joint_speed))
    lines.append(mj(src.joints, motion.approach_speed if src.approach else motion.joint_speed))
    lines += [f"  {motion.gripper_close}", f"  sleep({motion.grip_wait_s:g})"]
    if src.approach:
        lines.append(mj(src.approach, motion.approach_speed))
    if dst.approach:
        lines.append(mj(dst.approach, motion.joint_speed))
    lines.append(mj(dst.joints, motion.approach_speed if dst.approach else motion.joint_speed))
    lines += [f"  {motion.gripper_open}", f"  sleep({motion.grip_wait_s:g})"]
    if dst.approach:
        lines.append(mj(dst.approach, motion.approach_speed))
    if done is not None:
        register, seq = done
        if not (0 <= register <= 47 and -(2**31) <= seq <= INT32_MAX):
            raise ValueError(f"bad completion register/value: {done}")
        lines.append(f"  write_output_integer_register({register}, {seq})")
    lines.append("end")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RTDEState:
    """One RTDE sample of what the driver watches."""

    timestamp: float
    runtime_state: str
    robot_mode: str
    safety_status: str
    register: int

    @classmethod
    def from_values(cls, values: Mapping[str, object], register_name: str) -> RTDEState:
        return cls(
            timestamp=float(values["timestamp"]),
            runtime_state=rtde.RUNTIME_STATES.get(
                int(values["runtime_state"]), f"UNKNOWN({values['runtime_state']})"
            ),
            robot_mode=rtde.ROBOT_MODES.get(int(values["robot_mode"]), f"UNKNOWN({values['robot_mode']})"),
            safety_status=rtde.SAFETY_STATUSES.get(
                int(values["safety_status"]), f"UNKNOWN({values['safety_status']})"
            ),
            register=int(values[register_name]),
        )


@dataclass(frozen=True)
class URStatus:
    remote_control: bool
    safety_status: str
    robot_mode: str
    program_state: str
    program: str
    running: bool


# -- the driver -------------------------------------------------------------------------------
class URArm:
    """A UR5e/UR3e arm over its dashboard server and secondary interface (satisfies ``RobotArm``)."""

    def __init__(
        self,
        host: str,
        *,
        dashboard_port: int = 29999,
        secondary_port: int = 30002,
        positions: Mapping[str, NamedPosition | dict] | None = None,
        motion: URMotion | dict | None = None,
        timeout_s: float = 2.0,
        start_timeout_s: float = 60.0,
        move_timeout_s: float = 300.0,
        poll_s: float = 0.1,
        retries: int = 2,
        rtde_port: int | None = None,
        rtde_register: int = 24,
        rtde_frequency_hz: float = 10.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "ur",
    ):
        """``rtde_port`` (30004 on a real controller) turns on RTDE completion; ``rtde_register`` is
        the output int register the moves write (24..47 are left to external clients, 0..23 to
        fieldbus/PLC); ``rtde_frequency_hz`` the sample rate asked for (≤ 500 Hz)."""
        self.name = name
        self.host = host
        self.dashboard_port = int(dashboard_port)
        self.secondary_port = int(secondary_port)
        try:
            self.positions = {k: NamedPosition.model_validate(v) for k, v in (positions or {}).items()}
            self.motion = URMotion.model_validate(motion or {})
        except ValueError as exc:
            raise ConfigError(f"{name}: bad robot configuration: {exc}") from exc
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.move_timeout_s = move_timeout_s
        self.poll_s = poll_s
        self.retries = retries
        self.clock = clock or WallClock()
        self._sleep = sleep
        self.fault: DeviceError | None = None
        self.moves_done = 0
        if not (0 <= int(rtde_register) <= 47):
            raise ConfigError(f"{name}: rtde_register must be 0..47, got {rtde_register}")
        if not (0 < rtde_frequency_hz <= rtde.MAX_FREQUENCY_HZ):
            raise ConfigError(f"{name}: rtde_frequency_hz must be in (0, 500], got {rtde_frequency_hz}")
        self.rtde_port = None if rtde_port is None else int(rtde_port)
        self.rtde_register = int(rtde_register)
        self.rtde_frequency_hz = float(rtde_frequency_hz)
        self._register_name = f"output_int_register_{self.rtde_register}"
        self._rtde_outputs = (
            "timestamp",
            "runtime_state",
            "robot_mode",
            "safety_status",
            self._register_name,
        )
        self._rtde: rtde.RTDEClient | None = None
        self._rtde_dirty = False
        self.rtde_reconnects = 0
        self._last_rx = 0.0  # time.monotonic() of the last RTDE sample while watching
        self._dash = TcpLine(host, self.dashboard_port, timeout=timeout_s, eol="\n", name=f"{name}-dashboard")
        try:
            self._read_greeting()
            if self.rtde_port is not None:
                self._rtde = rtde.RTDEClient(host, self.rtde_port, timeout_s=timeout_s, name=f"{name}-rtde")
                self._rtde.open(self._rtde_outputs, self.rtde_frequency_hz)
        except DeviceError:
            self.close()
            raise
        if self._rtde is None:
            log.warning(
                "%s: no rtde_port configured: the end of a move is watched by polling the dashboard every "
                "%g s, which misses programs shorter than that (false 'program not running' timeouts); "
                "set options.rtde_port (30004 on a real controller)",
                name,
                poll_s,
            )

    # -- dashboard plumbing --------------------------------------------------------------------
    def _read_greeting(self) -> None:
        line = self._dash.read_line()
        if not line.startswith(GREETING_PREFIX):
            raise ProtocolError(
                f"not a UR dashboard server, greeting was {line!r}", device=self.name, code="greeting"
            )

    def _reconnect(self) -> None:
        """A fresh dashboard connection, so a late reply on the old one is never read as an answer."""
        try:
            self._dash.reconnect()
            self._read_greeting()
        except DeviceError as exc:
            log.warning("%s: reconnect failed: %s", self.name, exc)

    def _ask(self, command: str, parse: Callable[[str], object], *, safe: bool):
        """Send one dashboard command and parse its reply; retry on a fresh link only when ``safe``.

        After any failed exchange the link is renewed, retry or not, so a late reply on the old
        connection is never read as the answer to the next command."""

        def once():
            self._dash.flush_input()
            self._dash.send_line(command)
            return parse(self._dash.read_line())

        try:
            return retry_call(
                once,
                retries=self.retries,
                safe=safe,
                what=repr(command),
                device=self.name,
                retry_if=lambda exc: not (isinstance(exc, ProtocolError) and exc.code == "unknown"),
                on_failure=lambda exc, again: self._reconnect(),
            )
        except DeviceError as exc:
            exc.device = self.name
            raise

    # -- dashboard commands --------------------------------------------------------------------
    def safety_status(self) -> str:
        return self._ask("safetystatus", parse_safety_status, safe=True)

    def robot_mode(self) -> str:
        return self._ask("robotmode", parse_robot_mode, safe=True)

    def is_running(self) -> bool:
        return self._ask("running", parse_running, safe=True)

    def is_in_remote_control(self) -> bool:
        return self._ask("is in remote control", parse_bool, safe=True)

    def program_state(self) -> tuple[str, str]:
        return self._ask("programState", parse_program_state, safe=True)

    def status(self) -> URStatus:
        state, program = self.program_state()
        return URStatus(
            remote_control=self.is_in_remote_control(),
            safety_status=self.safety_status(),
            robot_mode=self.robot_mode(),
            program_state=state,
            program=program,
            running=self.is_running(),
        )

    def close_popup(self) -> None:
        self._ask("close popup", lambda r: _expect(r, "closing popup", "close popup"), safe=True)

    def close_safety_popup(self) -> None:
        self._ask(
            "close safety popup",
            lambda r: _expect(r, "closing safety popup", "close safety popup"),
            safe=True,
        )

    def load(self, program: str) -> None:
        """Load a program taught on the pendant (``.urp``); loading twice is harmless."""
        if not re.fullmatch(r"[\w./ -]+\.urp", program):
            raise ValueError(f"{self.name}: not a .urp program name: {program!r}")
        self._ask(f"load {program}", lambda r: check_load_reply(r, program), safe=True)

    def play(self) -> None:
        """Start the loaded program (sent once, never repeated)."""
        self._ask("play", check_play_reply, safe=False)

    def stop(self) -> None:
        """Stop the program; repeating a stop is always safe."""
        self._ask("stop", lambda r: _expect(r, ("Stopped", "Failed to execute: stop"), "stop"), safe=True)

    def pause(self) -> None:
        self._ask(
            "pause", lambda r: _expect(r, ("Pausing program", "Failed to execute: pause"), "pause"), safe=True
        )

    # -- safety checks -------------------------------------------------------------------------
    def require_normal_safety(self, when: str = "") -> None:
        """DeviceFault (code = the status) unless ``safetystatus`` is NORMAL."""
        safety = self.safety_status()
        if safety != "NORMAL":
            raise DeviceFault(
                f"safety status is {safety}" + (f" {when}" if when else ""), device=self.name, code=safety
            )

    def check_ready(self) -> None:
        """Raise unless the arm is in remote control, safety NORMAL, RUNNING and idle."""
        if not self.is_in_remote_control():
            raise DeviceFault(
                "the robot is in local control; switch the pendant to remote control",
                device=self.name,
                code="local",
            )
        self.require_normal_safety()
        mode = self.robot_mode()
        if mode != "RUNNING":
            raise DeviceFault(
                f"robot mode is {mode}, not RUNNING", device=self.name, code=f"robotmode:{mode}"
            )
        if self.is_running():
            raise DeviceBusy(
                "a program is already running", device=self.name, code="running", safe_to_retry=True
            )

    def _check_after(self, what: str) -> None:
        self.require_normal_safety(f"after {what}")
        if not self.is_in_remote_control():
            raise DeviceFault(f"the robot left remote control during {what}", device=self.name, code="local")

    def _latched(self) -> None:
        if self.fault is not None:
            raise DeviceFault(
                f"a previous command failed ({self.fault}); inspect the cell, then call recover()",
                device=self.name,
                code="latched",
            )

    def _watch(self, what: str) -> None:
        """Wait until the program runs (≤ start_timeout_s), then until it ends (≤ move_timeout_s)."""
        t0 = self.clock.now()
        while not self.is_running():
            state, _ = self.program_state()
            self.require_normal_safety(f"during {what}")
            if state == "PAUSED":
                raise DeviceFault(f"{what} is paused (a popup?)", device=self.name, code="paused")
            if self.clock.now() - t0 > self.start_timeout_s:
                raise DeviceTimeout(
                    f"program not running after {self.start_timeout_s:g} s ({what})",
                    device=self.name,
                    code="start",
                )
            self._sleep(self.poll_s)
        t1 = self.clock.now()
        while True:
            self.require_normal_safety(f"during {what}")
            if not self.is_running():
                state, _ = self.program_state()
                if state == "PAUSED":
                    raise DeviceFault(f"{what} was paused (a popup?)", device=self.name, code="paused")
                return
            if self.clock.now() - t1 > self.move_timeout_s:
                raise DeviceTimeout(
                    f"{what} still running after {self.move_timeout_s:g} s",
                    device=self.name,
                    code="move_timeout",
                )
            self._sleep(self.poll_s)

    # -- RTDE --------------------------------------------------------------------------------
    def _rtde_reopen(self) -> rtde.DataPackage:
        """A fresh RTDE connection, subscribed and started; returns its first sample."""
        assert self._rtde is not None
        self.rtde_reconnects += 1
        self._rtde.reconnect(self._rtde_outputs, self.rtde_frequency_hz)
        self._rtde_dirty = False
        return self._rtde.start()

    def _rtde_start(self) -> rtde.DataPackage:
        """Start the stream (reconnecting on a bad link, a read-only act) and return the first sample."""
        assert self._rtde is not None

        def once() -> rtde.DataPackage:
            if self._rtde_dirty or self._rtde.closed:
                return self._rtde_reopen()
            return self._rtde.start()

        def renew(exc: DeviceError, again: bool) -> None:
            log.warning("%s: RTDE start failed (%s)%s", self.name, exc, "; reconnecting" if again else "")
            self._rtde_dirty = True

        return retry_call(
            once,
            retries=self.retries,
            safe=True,
            what="RTDE start",
            device=self.name,
            on_failure=renew,
        )

    def _rtde_pause(self) -> None:
        """Pause the stream so nothing piles up between moves; a link that fails is renewed later."""
        if self._rtde is None or self._rtde_dirty:
            return
        try:
            self._rtde.pause()
        except DeviceError as exc:
            log.warning(
                "%s: RTDE pause failed (%s); the link is renewed before the next move", self.name, exc
            )
            self._rtde_dirty = True

    def rtde_state(self) -> RTDEState:
        """One fresh RTDE sample (start, read, pause); DeviceError when RTDE is not configured."""
        if self._rtde is None:
            raise ConfigError(f"{self.name}: RTDE is not configured (options.rtde_port)")
        try:
            return RTDEState.from_values(self._rtde_start().values, self._register_name)
        finally:
            self._rtde_pause()

    def _rtde_samples(self, what: str, budget: list[int]) -> list[rtde.DataPackage]:
        """Samples that arrived; a broken or silent link is renewed (the counter survives it)."""
        assert self._rtde is not None
        try:
            got = self._rtde.samples(0.0)
            if got or time.monotonic() - self._last_rx <= self.timeout_s:
                return got
            raise ConnectionLost(f"no RTDE sample for {self.timeout_s:g} s", device=self.name, code="silent")
        except (DeviceTimeout, ProtocolError) as exc:
            while True:
                if budget[0] <= 0:
                    raise DeviceTimeout(
                        f"RTDE link lost during {what} and not recovered: {exc}",
                        device=self.name,
                        code="rtde",
                    ) from exc
                budget[0] -= 1
                log.warning("%s: RTDE link failed during %s (%s); reconnecting", self.name, what, exc)
                try:
                    return [self._rtde_reopen()]
                except DeviceError as again:
                    exc = again  # report the latest failure

    def _watch_rtde(self, what: str, seq: int | None, t0: float) -> None:
        """Follow the RTDE stream until the move's register reads ``seq`` (or, for a pendant program
        with ``seq`` None, until it stops after having played).

        Timeouts are judged on the samples' own timestamps (controller time since ``t0``, the first
        sample's): a stream that went silent says nothing about the program, so it is renewed
        rather than read as "not running"."""
        started_at: float | None = None
        newest = -math.inf
        budget = [3 * (self.retries + 1)]
        self._last_rx = time.monotonic()
        while True:
            samples = self._rtde_samples(what, budget)
            if samples:
                self._last_rx = time.monotonic()
            for sample in samples:
                st = RTDEState.from_values(sample.values, self._register_name)
                if st.timestamp < newest:
                    continue  # an older sample arriving late
                newest = st.timestamp
                if st.safety_status != "NORMAL":
                    raise DeviceFault(
                        f"safety status is {st.safety_status} during {what}",
                        device=self.name,
                        code=st.safety_status,
                    )
                if seq is not None and st.register == seq:
                    return
                if st.robot_mode != "RUNNING":
                    raise DeviceFault(
                        f"robot mode went to {st.robot_mode} during {what}",
                        device=self.name,
                        code=f"robotmode:{st.robot_mode}",
                    )
                if st.runtime_state == "PAUSED":
                    raise DeviceFault(f"{what} is paused (a popup?)", device=self.name, code="paused")
                if st.runtime_state in RUNTIME_ACTIVE:
                    started_at = st.timestamp if started_at is None else started_at
                elif started_at is not None:  # stopped after it played
                    if seq is None:
                        return
                    raise DeviceFault(
                        f"{what} stopped before its end (register {st.register}, expected {seq})",
                        device=self.name,
                        code="aborted",
                    )
            now = newest
            if started_at is None and now - t0 > self.start_timeout_s:
                raise DeviceTimeout(
                    f"program not running after {self.start_timeout_s:g} s ({what}; RTDE register "
                    f"{self.rtde_register} never reached {seq})",
                    device=self.name,
                    code="start",
                )
            if started_at is not None and now - started_at > self.move_timeout_s:
                raise DeviceTimeout(
                    f"{what} still running after {self.move_timeout_s:g} s",
                    device=self.name,
                    code="move_timeout",
                )
            self._sleep(self.poll_s)

    def _guarded(self, what: str, start: Callable[[int | None], None], *, counted: bool = True) -> None:
        """Checks before, start once, watch, checks after; any failure after the start latches
        :attr:`fault`. With RTDE, ``start`` gets the move's sequence number (None when ``counted``
        is False or RTDE is off)."""
        self._latched()
        self.check_ready()
        self.close_popup()
        seq: int | None = None
        t0 = 0.0
        if self._rtde is not None:
            first = RTDEState.from_values(self._rtde_start().values, self._register_name)  # nothing moved yet
            seq = first.register + 1 if first.register < INT32_MAX else 1
            t0 = first.timestamp
        try:
            start(seq if counted else None)
            if self._rtde is not None:
                self._watch_rtde(what, seq if counted else None, t0)
            else:
                self._watch(what)
            self._check_after(what)
        except DeviceError as exc:
            exc.safe_to_retry = False
            self.fault = exc
            log.error("%s: %s failed: %s", self.name, what, exc)
            raise
        finally:
            self._rtde_pause()

    # -- motion --------------------------------------------------------------------------------
    def send_script(self, script: str) -> None:
        """Send URScript to the secondary interface (one connection, closed afterwards)."""
        link = TcpLine(self.host, self.secondary_port, timeout=self.timeout_s, name=f"{self.name}-secondary")
        try:
            link.write(script.encode("ascii"))
        finally:
            link.close()

    def move(self, source: str, destination: str) -> None:
        """Carry whatever is at ``source`` to ``destination`` (named positions from the configuration)."""
        move_script(source, destination, self.positions, self.motion)  # ConfigError before any byte

        def start(seq: int | None) -> None:
            done = None if seq is None else (self.rtde_register, seq)
            self.send_script(move_script(source, destination, self.positions, self.motion, done=done))

        self._guarded(f"move {source} -> {destination}", start)
        self.moves_done += 1

    def run_program(self, program: str) -> None:
        """Load and play a pendant program, and wait for it to end, with the same checks as a move."""
        self._latched()
        self.load(program)
        self._guarded(f"program {program}", lambda _seq: self.play(), counted=False)

    # -- recovery ------------------------------------------------------------------------------
    def recover(self, *, timeout_s: float = 30.0) -> None:
        """Bring the arm back to RUNNING + NORMAL after a person has checked the cell.

        Unlocks a protective stop (the robot allows it 5 s after the stop), closes popups, stops a
        paused program and powers on / releases brakes after an emergency stop once the button is
        released. It never moves the arm.
        """
        safety = self.safety_status()
        if safety in EMERGENCY:
            raise DeviceFault(
                f"{safety}: release the emergency stop button first, then call recover()",
                device=self.name,
                code=safety,
            )
        if safety == "PROTECTIVE_STOP":
            reply = self._ask("unlock protective stop", str, safe=False)
            if not reply.startswith("Protective stop releasing"):
                raise DeviceBusy(
                    f"cannot unlock yet: {reply}", device=self.name, code="unlock", safe_to_retry=True
                )
        elif safety != "NORMAL":
            raise DeviceFault(f"safety status is {safety}; needs a person", device=self.name, code=safety)
        self.close_popup()
        self.close_safety_popup()
        state, _ = self.program_state()
        if state != "STOPPED":
            self.stop()
        t0 = self.clock.now()
        while (mode := self.robot_mode()) != "RUNNING":
            if mode == "POWER_OFF":
                self._ask("power on", lambda r: _expect(r, "Powering on", "power on"), safe=False)
            elif mode == "IDLE":
                self._ask(
                    "brake release", lambda r: _expect(r, "Brake releasing", "brake release"), safe=False
                )
            if self.clock.now() - t0 > timeout_s:
                raise DeviceTimeout(
                    f"robot mode still {mode} after {timeout_s:g} s", device=self.name, code="power"
                )
            self._sleep(self.poll_s)
        self.require_normal_safety("after recovery")
        self.fault = None

    def close(self) -> None:
        if self._rtde is not None:
            self._rtde.close()
        try:
            if not self._dash.closed:
                self._dash.send_line("quit")
        except DeviceError:
            pass
        finally:
            self._dash.close()

    def __enter__(self) -> URArm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _expect(reply: str, wanted: str | tuple[str, ...], what: str) -> str:
    options = (wanted,) if isinstance(wanted, str) else wanted
    text = reply.strip()
    if not any(text.startswith(w) for w in options):
        if text.startswith("Failed to execute"):
            raise DeviceFault(f"the robot refused {what}: {text}", device="ur", code="refused")
        raise _bad(what, reply)
    return text


@register_kind("ur")
def open_ur(spec: DeviceSpec, **context) -> URArm:
    """Registry factory: ``host``, ``tcp_port`` = dashboard port (default 29999); ``options`` may hold
    ``secondary_port``, ``rtde_port`` (30004; strongly advised), ``rtde_register``,
    ``rtde_frequency_hz``, ``positions`` ({name: {joints, approach}}), ``motion``, and timeouts."""
    if not spec.host:
        raise ConfigError(f"device {spec.name!r} (ur) needs host")
    return construct(
        spec,
        URArm,
        spec.host,
        dashboard_port=spec.tcp_port or 29999,
        name=spec.name,
        **lab_context(context),
    )
