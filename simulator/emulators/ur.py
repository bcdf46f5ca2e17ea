"""Universal Robots emulator: dashboard server (port 29999 role) and secondary interface (30002 role).

Speaks the real text protocols on 127.0.0.1 and keeps the state a UR controller has: robot mode,
safety status, remote/local control, the loaded program, program state, popups and the arm's
joint positions. URScript received on the secondary port is parsed (a subset: ``movej`` with
joint targets, ``movel`` with poses, digital outputs, ``write_output_integer_register`` /
``write_output_float_register``, ``sleep``, ``textmsg``, ``popup``) and run
against the clock: a move takes the time a trapezoidal velocity profile with the script's ``a``
and ``v`` needs, so it follows virtual or real time. Programs "taught on the pendant" are given
as URScript text keyed by their ``.urp`` name. The RTDE interface (port 30004 role) streams this
state, the output registers included, from :mod:`labos.simulator.emulators.ur_rtde`.

Faults (PROTOCOLS.md §7): :meth:`protective_stop`, :meth:`emergency_stop` (latched until
:meth:`release_emergency_stop` and a power-on), :meth:`set_remote_control`, :meth:`fail_next_play`,
a missing program (``File not found``), :meth:`show_popup`, and every link fault of
:class:`~labos.simulator.emulators.WireFault` on the dashboard replies through :meth:`inject` and
on the RTDE link through ``emulator.rtde.inject`` (e.g. a dropped connection mid-move).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

from labos.simulator.clock import Clock
from labos.simulator.emulators import Connection, Emulator, LineEmulator
from labos.simulator.emulators.ur_rtde import N_REGISTERS, RTDEServer

log = logging.getLogger("labos.simulator.emulators.ur")

GREETING = "Connected: Universal Robots Dashboard Server"
JOINT_LIMIT_RAD = 2 * math.pi
MAX_JOINT_SPEED = math.pi  # rad/s, UR5e base/shoulder/elbow nominal maximum
MAX_TOOL_SPEED = 1.0  # m/s
UNLOCK_DELAY_S = 5.0  # UR refuses to unlock a protective stop earlier than 5 s after it occurred
HOME_JOINTS = (0.0, -1.5708, 1.5708, -1.5708, -1.5708, 0.0)


class ScriptError(ValueError):
    """URScript the emulated controller cannot compile."""


@dataclass
class Step:
    """One statement of a running program, with the time it takes."""

    kind: str  # "movej" | "movel" | "sleep" | "out" | "register" | "textmsg" | "popup"
    duration: float
    joints: tuple[float, ...] | None = None
    start: tuple[float, ...] | None = None
    pose: tuple[float, ...] | None = None
    output: tuple[str, int, bool] | None = None
    register: tuple[str, int, float] | None = None  # ("int" | "double", index, value)
    text: str = ""


@dataclass
class Program:
    name: str
    steps: list[Step]
    source: str = "secondary"  # or the .urp name it was loaded from


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _split_args(text: str) -> list[str]:
    """Split a call's argument text on top-level commas."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _vector(text: str, n: int, what: str) -> tuple[float, ...]:
    body = text.strip()
    if body.startswith("p["):
        body = body[1:]
    if not (body.startswith("[") and body.endswith("]")):
        raise ScriptError(f"{what}: expected a list of {n} numbers, got {text!r}")
    try:
        vals = tuple(float(v) for v in body[1:-1].split(","))
    except ValueError:
        raise ScriptError(f"{what}: not numbers: {text!r}") from None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        raise ScriptError(f"{what}: expected {n} finite numbers, got {text!r}")
    return vals


def _profile_time(distance: float, v: float, a: float) -> float:
    """Duration of a trapezoidal (or triangular) velocity profile over ``distance``."""
    if distance <= 0:
        return 0.0
    if distance < v * v / a:
        return 2.0 * math.sqrt(distance / a)
    return distance / v + v / a


def _kwargs(args: list[str], what: str) -> dict[str, float]:
    kw: dict[str, float] = {}
    for item in args:
        m = re.fullmatch(rf"([a-z])\s*=\s*({_NUM})", item)
        if not m:
            raise ScriptError(f"{what}: cannot read argument {item!r}")
        kw[m.group(1)] = float(m.group(2))
    return kw


def compile_script(
    text: str, start_joints: tuple[float, ...], start_pose: tuple[float, ...] | None
) -> Program:
    """Parse the URScript subset into timed steps; ScriptError names the first bad line."""
    lines = [ln.split("#", 1)[0].strip() for ln in text.replace("\r\n", "\n").split("\n")]
    lines = [ln for ln in lines if ln]
    if len(lines) < 2 or not re.fullmatch(r"def\s+(\w+)\s*\(\s*\)\s*:", lines[0]) or lines[-1] != "end":
        raise ScriptError("a program must be 'def name():' ... 'end'")
    name = re.fullmatch(r"def\s+(\w+)\s*\(\s*\)\s*:", lines[0]).group(1)
    joints, pose = start_joints, start_pose
    steps: list[Step] = []
    for ln in lines[1:-1]:
        m = re.fullmatch(r"(\w+)\s*\((.*)\)", ln)
        if not m:
            raise ScriptError(f"cannot compile line {ln!r}")
        fn, args = m.group(1), _split_args(m.group(2))
        if fn == "movej":
            if not args:
                raise ScriptError("movej needs a target")
            target = _vector(args[0], 6, "movej")
            if args[0].strip().startswith("p["):
                raise ScriptError(
                    "movej to a pose needs inverse kinematics; the emulator takes joint targets"
                )
            kw = _kwargs(args[1:], "movej")
            v, a = kw.get("v", 1.05), kw.get("a", 1.4)
            if any(abs(q) > JOINT_LIMIT_RAD for q in target):
                raise ScriptError(f"movej target outside joint limits ±2π: {target}")
            if not (0 < v <= MAX_JOINT_SPEED) or a <= 0:
                raise ScriptError(f"movej speed/acceleration out of range: v={v}, a={a}")
            dist = max(abs(t - q) for t, q in zip(target, joints, strict=True))
            duration = kw["t"] if kw.get("t", 0) > 0 else _profile_time(dist, v, a)
            steps.append(Step("movej", duration, joints=target, start=joints))
            joints, pose = target, None
        elif fn == "movel":
            target = _vector(args[0] if args else "", 6, "movel")
            kw = _kwargs(args[1:], "movel")
            v, a = kw.get("v", 0.25), kw.get("a", 1.2)
            if not (0 < v <= MAX_TOOL_SPEED) or a <= 0:
                raise ScriptError(f"movel speed/acceleration out of range: v={v}, a={a}")
            dist = math.dist(target[:3], pose[:3]) if pose is not None else 0.3  # unknown start: nominal
            steps.append(Step("movel", _profile_time(dist, v, a), joints=joints, pose=target))
            pose = target
        elif fn in ("set_standard_digital_out", "set_tool_digital_out", "set_digital_out"):
            if len(args) != 2 or args[1] not in ("True", "False") or not args[0].isdigit():
                raise ScriptError(f"{fn} needs (n, True|False), got {ln!r}")
            steps.append(Step("out", 0.0, output=(fn, int(args[0]), args[1] == "True")))
        elif fn in ("write_output_integer_register", "write_output_float_register"):
            is_int = fn == "write_output_integer_register"
            if (
                len(args) != 2
                or not args[0].isdigit()
                or not int(args[0]) < N_REGISTERS
                or not re.fullmatch(r"[-+]?\d+" if is_int else _NUM, args[1])
            ):
                raise ScriptError(f"{fn} needs (0..{N_REGISTERS - 1}, a number), got {ln!r}")
            value = int(args[1]) if is_int else float(args[1])
            if is_int and not -(2**31) <= value < 2**31:
                raise ScriptError(f"{fn}: {value} does not fit an int32 register")
            steps.append(Step("register", 0.0, register=("int" if is_int else "double", int(args[0]), value)))
        elif fn == "sleep":
            if len(args) != 1 or not re.fullmatch(_NUM, args[0]) or float(args[0]) < 0:
                raise ScriptError(f"sleep needs seconds, got {ln!r}")
            steps.append(Step("sleep", float(args[0])))
        elif fn in ("textmsg", "popup"):
            steps.append(Step(fn, 0.0, text=m.group(2).strip().strip('"')))
        else:
            raise ScriptError(f"unknown function {fn!r} in line {ln!r}")
    return Program(name, steps)


@dataclass
class _Run:
    program: Program
    started: float
    paused_at: float | None = None
    paused_total: float = 0.0
    applied: int = 0  # steps whose end effects have been applied
    t_applied: float = 0.0  # program time at the end of the last applied step


@dataclass
class UREmulatorState:
    robot_mode: str = "RUNNING"
    safety_status: str = "NORMAL"
    remote_control: bool = True
    loaded: str | None = None
    run: _Run | None = None
    last_program: str = "<unnamed>"
    popup: str | None = None
    safety_popup: bool = False
    protective_stop_at: float | None = None
    estop_pressed: bool = False
    joints: tuple[float, ...] = HOME_JOINTS
    pose: tuple[float, ...] | None = None
    outputs: dict[tuple[str, int], bool] = field(default_factory=dict)
    int_registers: list[int] = field(default_factory=lambda: [0] * N_REGISTERS)
    double_registers: list[float] = field(default_factory=lambda: [0.0] * N_REGISTERS)


class UREmulator(LineEmulator):
    """A UR controller on two loopback ports: ``dashboard_port`` and ``secondary_port``."""

    eol = b"\n"
    encoding = "utf-8"
    default_transport = "tcp"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        programs: dict[str, str] | None = None,
        dashboard_port: int = 0,
        secondary_port: int = 0,
        rtde_port: int = 0,
        rtde: bool = True,
        name: str = "ur",
    ):
        super().__init__(clock, name=name, tcp_port=dashboard_port)
        self.programs: dict[str, str] = dict(programs or {})
        self.state = UREmulatorState()
        self._fail_play = 0
        # what happened, for tests and the simulated lab
        self.commands: list[str] = []
        self.scripts_received: list[str] = []
        self.scripts_rejected: list[tuple[str, str]] = []
        self.programs_started: list[str] = []
        self.programs_completed: list[str] = []
        self.messages: list[str] = []
        self.secondary = _ScriptPort(self, secondary_port)
        self.rtde: RTDEServer | None = RTDEServer(self, rtde_port) if rtde else None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def dashboard_port(self) -> int:
        return self.address["tcp_port"]

    @property
    def secondary_port(self) -> int:
        return self.secondary.address["tcp_port"]

    @property
    def rtde_port(self) -> int | None:
        """The RTDE port, or None for a controller without RTDE (``rtde=False``)."""
        return self.rtde.port if self.rtde is not None else None

    def start(self, transport: str | None = None) -> UREmulator:
        super().start(transport)
        try:
            self.secondary.start("tcp")
            if self.rtde is not None:
                self.rtde.start("tcp")
        except Exception:
            self.secondary.stop()
            super().stop()
            raise
        return self

    def stop(self) -> None:
        if self.rtde is not None:
            self.rtde.stop()
        self.secondary.stop()
        super().stop()

    # -- fault injection -----------------------------------------------------------------------
    def protective_stop(self) -> None:
        """The arm hit something: motion stops, the program stops, unlock possible after 5 s."""
        with self.lock:
            self._update()
            self._halt_program()
            self.state.safety_status = "PROTECTIVE_STOP"
            self.state.protective_stop_at = self.clock.now()

    def emergency_stop(self) -> None:
        """Someone pressed the e-stop: latched until :meth:`release_emergency_stop` and power-on."""
        with self.lock:
            self._update()
            self._halt_program()
            self.state.estop_pressed = True
            self.state.safety_status = "SYSTEM_EMERGENCY_STOP"
            self.state.robot_mode = "POWER_OFF"
            self.state.safety_popup = True

    def release_emergency_stop(self) -> None:
        """The operator twists the e-stop button out; the arm stays powered off until powered on."""
        with self.lock:
            self.state.estop_pressed = False
            self.state.safety_status = "NORMAL"

    def set_remote_control(self, remote: bool) -> None:
        """The pendant switched between local and remote control."""
        with self.lock:
            self.state.remote_control = bool(remote)

    def fail_next_play(self, count: int = 1) -> None:
        """The next ``play`` commands answer ``Failed to execute: play`` and start nothing."""
        with self.lock:
            self._fail_play += count

    def show_popup(self, text: str = "Check gripper") -> None:
        """A blocking popup on the pendant: a running program pauses until it is closed and played."""
        with self.lock:
            self._update()
            self.state.popup = text
            run = self.state.run
            if run is not None and run.paused_at is None:
                run.paused_at = self.clock.now()

    # -- state evolution -----------------------------------------------------------------------
    def snapshot(self) -> UREmulatorState:
        with self.lock:
            self._update()
            return self.state

    def _halt_program(self) -> None:
        self.state.run = None

    def _apply(self, step: Step) -> None:
        if step.kind in ("movej", "movel"):
            self.state.joints = step.joints or self.state.joints
            self.state.pose = step.pose
        elif step.kind == "out" and step.output is not None:
            fn, n, value = step.output
            self.state.outputs[(fn, n)] = value
        elif step.kind == "register" and step.register is not None:
            kind, n, value = step.register
            if kind == "int":
                self.state.int_registers[n] = int(value)
            else:
                self.state.double_registers[n] = float(value)
        elif step.kind == "textmsg":
            self.messages.append(step.text)
        elif step.kind == "popup":
            self.state.popup = step.text

    def _update(self) -> None:
        """Advance the running program to ``clock.now()``."""
        run = self.state.run
        if run is None:
            return
        now = self.clock.now() if run.paused_at is None else run.paused_at
        elapsed = now - run.started - run.paused_total
        steps = run.program.steps
        while run.applied < len(steps):
            step = steps[run.applied]
            if run.t_applied + step.duration > elapsed:
                if step.kind == "movej" and step.start is not None and step.joints is not None:
                    frac = max(0.0, (elapsed - run.t_applied) / step.duration)
                    self.state.joints = tuple(
                        s + (e - s) * frac for s, e in zip(step.start, step.joints, strict=True)
                    )
                    self.state.pose = None
                return
            run.t_applied += step.duration
            self._apply(step)
            run.applied += 1
        self.programs_completed.append(run.program.name)
        self.state.run = None

    def _start(self, program: Program) -> None:
        self.state.run = _Run(program, started=self.clock.now())
        self.state.last_program = program.name
        self.programs_started.append(program.name)
        self._update()

    def _can_move(self) -> str | None:
        s = self.state
        if s.estop_pressed or s.safety_status != "NORMAL":
            return f"safety status {s.safety_status}"
        if s.robot_mode != "RUNNING":
            return f"robot mode {s.robot_mode}"
        return None

    # -- dashboard -----------------------------------------------------------------------------
    def on_connect(self, conn: Connection) -> None:
        conn.send((GREETING + "\n").encode())

    def handle_line(self, conn: Connection, line: str) -> None:
        command = line.strip()
        self.reply(conn, self.handle_dashboard(command), command, close_after=command == "quit")

    def other_reply(self, request: str, reply: str) -> str:
        return self.handle_dashboard("safetystatus" if request != "safetystatus" else "running", record=False)

    def handle_dashboard(self, command: str, record: bool = True) -> str:
        """The reply a UR dashboard server gives to one command line."""
        with self.lock:
            if record:
                self.commands.append(command)
            self._update()
            s = self.state
            cmd = command.strip()
            low = cmd.lower()
            if low.startswith("load "):
                name = cmd[5:].strip()
                if name not in self.programs:
                    return f"File not found: {name}"
                if not s.remote_control:
                    return f"Error while loading program: {name} (robot is in local control)"
                s.loaded = name
                return f"Loading program: /programs/{name}"
            if low == "play":
                if self._fail_play > 0:
                    self._fail_play -= 1
                    return "Failed to execute: play"
                run = s.run
                if run is not None and run.paused_at is not None and s.popup is None and s.remote_control:
                    run.paused_total += self.clock.now() - run.paused_at
                    run.paused_at = None
                    return "Starting program"
                if s.loaded is None or not s.remote_control or self._can_move() or s.popup or run is not None:
                    return "Failed to execute: play"
                try:
                    program = compile_script(self.programs[s.loaded], s.joints, s.pose)
                except ScriptError as exc:
                    self.scripts_rejected.append((s.loaded, str(exc)))
                    return "Failed to execute: play"
                program.source = s.loaded
                self._start(program)
                return "Starting program"
            if low == "stop":
                if s.run is None:
                    return "Failed to execute: stop"
                self._halt_program()
                return "Stopped"
            if low == "pause":
                if s.run is None or s.run.paused_at is not None:
                    return "Failed to execute: pause"
                s.run.paused_at = self.clock.now()
                return "Pausing program"
            if low == "running":
                return (
                    f"Program running: {'true' if s.run is not None and s.run.paused_at is None else 'false'}"
                )
            if low == "robotmode":
                return f"Robotmode: {s.robot_mode}"
            if low == "safetystatus":
                return f"Safetystatus: {s.safety_status}"
            if low == "safetymode":
                return f"Safetymode: {s.safety_status}"
            if low == "programstate":
                if s.run is None:
                    state = "STOPPED"
                else:
                    state = "PAUSED" if s.run.paused_at is not None else "PLAYING"
                name = s.run.program.source if s.run is not None else (s.loaded or s.last_program)
                if name == "secondary":
                    name = s.run.program.name if s.run is not None else s.last_program
                return f"{state} {name}"
            if low == "is in remote control":
                return "true" if s.remote_control else "false"
            if low == "get loaded program":
                return f"Loaded program: /programs/{s.loaded}" if s.loaded else "No program loaded"
            if low == "close popup":
                s.popup = None
                return "closing popup"
            if low.startswith("popup "):
                s.popup = cmd[6:]
                return "showing popup"
            if low == "close safety popup":
                s.safety_popup = False
                return "closing safety popup"
            if low == "unlock protective stop":
                if s.safety_status != "PROTECTIVE_STOP":
                    return "Protective stop releasing"
                since = self.clock.now() - (s.protective_stop_at or 0.0)
                if since < UNLOCK_DELAY_S:
                    return (
                        "Cannot unlock protective stop until 5s after occurrence. "
                        "Always inspect cause of protective stop before unlocking"
                    )
                s.safety_status = "NORMAL"
                s.protective_stop_at = None
                return "Protective stop releasing"
            if low == "power on":
                if s.estop_pressed or s.safety_status != "NORMAL":
                    return "Failed to execute: power on"
                if s.robot_mode == "POWER_OFF":
                    s.robot_mode = "IDLE"
                return "Powering on"
            if low == "power off":
                self._halt_program()
                s.robot_mode = "POWER_OFF"
                return "Powering off"
            if low == "brake release":
                if s.robot_mode not in ("IDLE", "RUNNING") or s.safety_status != "NORMAL":
                    return "Failed to execute: brake release"
                s.robot_mode = "RUNNING"
                return "Brake releasing"
            if low == "polyscopeversion":
                return "URSoftware 5.11.0 (emulated)"
            if low == "quit":
                return "Disconnected"
            return f"could not understand: '{cmd}'"

    # -- secondary interface ------------------------------------------------------------------
    def _consume_scripts(self, buf: str, final: bool = False) -> str:
        while True:
            m = re.search(r"^end[ \t]*\r?\n", buf, flags=re.MULTILINE)
            if m is None:
                if final and buf.strip():
                    self.receive_script(buf)
                    return ""
                return buf
            script, buf = buf[: m.end()], buf[m.end() :]
            self.receive_script(script)

    def receive_script(self, script: str) -> bool:
        """Run a URScript program now; False (and logged) when the controller would ignore it."""
        with self.lock:
            self._update()
            self.scripts_received.append(script)
            s = self.state
            reason = None
            if not s.remote_control:
                reason = "robot is in local control"
            elif (why := self._can_move()) is not None:
                reason = why
            elif s.run is not None:
                reason = "another program is running"
            if reason is None:
                try:
                    program = compile_script(script, s.joints, s.pose)
                except ScriptError as exc:
                    reason = f"compile error: {exc}"
                else:
                    self._start(program)
                    return True
            self.scripts_rejected.append((script, reason))
            log.info("UR emulator ignored a script: %s", reason)
            return False


class _ScriptPort(Emulator):
    """The secondary interface (port 30002 role): URScript text in, each ``def ... end`` one program."""

    supported_faults = frozenset()

    def __init__(self, arm: UREmulator, tcp_port: int):
        super().__init__(arm.clock, name=f"{arm.name}-secondary", tcp_port=tcp_port)
        self.lock = arm.lock
        self.arm = arm

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        rest = self.arm._consume_scripts(conn.buffer.decode("utf-8", "replace"))
        conn.buffer = bytearray(rest.encode("utf-8"))

    def on_disconnect(self, conn: Connection) -> None:
        text = conn.buffer.decode("utf-8", "replace")
        conn.buffer.clear()
        if text.strip():
            self.arm._consume_scripts(text + "\n", final=True)
