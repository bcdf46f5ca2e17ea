"""The RTDE server of the UR emulator (port 30004 role): real RTDE v2 bytes on 127.0.0.1.

It answers the requests a client makes (protocol version 'V', controller version 'v', output
set-up 'O', start 'S', pause 'P'; input set-up 'I' is answered with ``NOT_FOUND`` because the
emulator has no input registers) and, while a client's stream is started, sends data packages
('U') with the arm's state sampled on the emulator's clock: one at start, then one per
``1 / frequency`` clock seconds. After a jump of the clock one sample is sent, not a burst; at a
large clock speed-up the rate is bounded by the emulator loop (about 500 per wall second, the
e-series controller's own maximum). A client that does not read is skipped rather than allowed to
block the emulator. The byte layouts are written here from the UR RTDE guide independently of the
driver's codec, so a mistake in one is not mirrored in the other.

Faults: every :class:`~labos.simulator.emulators.WireFault` link fault except ``wrong_eol`` (a
binary protocol has no line end), matched on the packet names ``request_protocol_version``,
``get_urcontrol_version``, ``setup_outputs``, ``start``, ``pause`` and ``data`` (each data package
sent counts as a reply to ``data``: ``no_reply`` loses one sample, ``drop`` closes the link in
the middle of a move, ``other_reply`` sends a controller-version packet into the stream).
"""

from __future__ import annotations

import logging
import select
import struct
from dataclasses import dataclass, field
from typing import Any

from labos.simulator.emulators import LINK_FAULTS, Connection, Emulator, WireFault

log = logging.getLogger("labos.simulator.emulators.ur_rtde")

CONTROLLER_VERSION = (5, 11, 0, 108249)  # matches the dashboard's "URSoftware 5.11.0"
MAX_FREQUENCY_HZ = 500.0
N_REGISTERS = 48

_NAMES = {
    ord("V"): "request_protocol_version",
    ord("v"): "get_urcontrol_version",
    ord("M"): "text_message",
    ord("U"): "data_package",
    ord("O"): "setup_outputs",
    ord("I"): "setup_inputs",
    ord("S"): "start",
    ord("P"): "pause",
}
_FMT = {"BOOL": "?", "UINT32": "I", "UINT64": "Q", "INT32": "i", "DOUBLE": "d", "VECTOR6D": "6d"}

#: output variables this controller offers: name -> RTDE type
OUTPUTS: dict[str, str] = {
    "timestamp": "DOUBLE",
    "robot_mode": "INT32",
    "safety_mode": "INT32",
    "safety_status": "INT32",
    "safety_status_bits": "UINT32",
    "runtime_state": "UINT32",
    "actual_q": "VECTOR6D",
    "target_q": "VECTOR6D",
    "speed_scaling": "DOUBLE",
    "target_speed_fraction": "DOUBLE",
    **{f"output_int_register_{i}": "INT32" for i in range(N_REGISTERS)},
    **{f"output_double_register_{i}": "DOUBLE" for i in range(N_REGISTERS)},
}
_ROBOT_MODE = {
    "NO_CONTROLLER": -1,
    "DISCONNECTED": 0,
    "CONFIRM_SAFETY": 1,
    "BOOTING": 2,
    "POWER_OFF": 3,
    "POWER_ON": 4,
    "IDLE": 5,
    "BACKDRIVE": 6,
    "RUNNING": 7,
}
_SAFETY = {
    "NORMAL": 1,
    "REDUCED": 2,
    "PROTECTIVE_STOP": 3,
    "RECOVERY": 4,
    "SAFEGUARD_STOP": 5,
    "SYSTEM_EMERGENCY_STOP": 6,
    "ROBOT_EMERGENCY_STOP": 7,
    "VIOLATION": 8,
    "FAULT": 9,
    "AUTOMATIC_MODE_SAFEGUARD_STOP": 12,
    "SYSTEM_THREE_POSITION_ENABLING_STOP": 13,
}
# safety_status_bits: 0 normal, 1 reduced, 2 protective stopped, 3 recovery, 4 safeguard stopped,
# 5 system emergency stopped, 6 robot emergency stopped, 7 emergency stopped, 8 violation, 9 fault
_SAFETY_BITS = {
    "NORMAL": 1 << 0,
    "REDUCED": 1 << 1,
    "PROTECTIVE_STOP": 1 << 2,
    "RECOVERY": 1 << 3,
    "SAFEGUARD_STOP": 1 << 4,
    "SYSTEM_EMERGENCY_STOP": (1 << 5) | (1 << 7),
    "ROBOT_EMERGENCY_STOP": (1 << 6) | (1 << 7),
    "VIOLATION": 1 << 8,
    "FAULT": 1 << 9,
}
RUNTIME_STOPPED, RUNTIME_PLAYING, RUNTIME_PAUSED = 1, 2, 4


def packet(ptype: int | str, payload: bytes = b"") -> bytes:
    code = ord(ptype) if isinstance(ptype, str) else ptype
    return struct.pack(">HB", 3 + len(payload), code) + payload


def text_message(message: str, source: str = "RTDE", level: int = 1) -> bytes:
    m, s = message.encode("ascii", "replace")[:255], source.encode("ascii", "replace")[:255]
    return packet("M", bytes([len(m)]) + m + bytes([len(s)]) + s + bytes([level]))


@dataclass
class _Session:
    version: int = 1  # until the client negotiates
    recipes: dict[int, tuple[tuple[str, ...], float]] = field(default_factory=dict)
    recipe_id: int | None = None  # the output recipe streamed
    started: bool = False
    next_due: float = 0.0


class RTDEServer(Emulator):
    """RTDE on its own loopback port, sharing the arm emulator's lock, clock and state."""

    supported_faults = LINK_FAULTS - {WireFault.WRONG_EOL}
    default_transport = "tcp"

    def __init__(self, arm: Any, tcp_port: int = 0):
        super().__init__(arm.clock, name=f"{arm.name}-rtde", tcp_port=tcp_port)
        self.lock = arm.lock
        self.arm = arm
        self.sessions: dict[int, _Session] = {}
        self._tick_pending = False
        self.packages_sent = 0
        self.packages_skipped = 0  # a client that did not read

    @property
    def port(self) -> int:
        return self.address["tcp_port"]

    # -- connections ---------------------------------------------------------------------------
    def on_connect(self, conn: Connection) -> None:
        self.sessions[id(conn)] = _Session()

    def on_disconnect(self, conn: Connection) -> None:
        self.sessions.pop(id(conn), None)

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        while len(conn.buffer) >= 3 and not conn.closed:
            size, ptype = struct.unpack_from(">HB", conn.buffer)
            if size < 3:
                log.info("%s: impossible packet size %d; closing the connection", self.name, size)
                conn.close()
                self.sessions.pop(id(conn), None)
                return
            if len(conn.buffer) < size:
                return
            payload = bytes(conn.buffer[3:size])
            del conn.buffer[:size]
            key = _NAMES.get(ptype, f"type_{ptype}")
            self.requests.append(key)
            with self.lock:
                if not self.request_lost(conn, key):
                    self._handle(conn, ptype, payload, key)

    def _reply(self, conn: Connection, key: str, body: bytes) -> None:
        other = packet("v", struct.pack(">4I", *CONTROLLER_VERSION))
        self.send_reply(conn, body, request=key, other=lambda: other)

    def _handle(self, conn: Connection, ptype: int, payload: bytes, key: str) -> None:
        s = self.sessions.setdefault(id(conn), _Session())
        if ptype == ord("V"):
            ok = len(payload) == 2 and struct.unpack(">H", payload)[0] in (1, 2)
            if ok:
                s.version = struct.unpack(">H", payload)[0]
            self._reply(conn, key, packet("V", bytes([int(ok)])))
        elif ptype == ord("v"):
            self._reply(conn, key, packet("v", struct.pack(">4I", *CONTROLLER_VERSION)))
        elif ptype == ord("O"):
            self._reply(conn, key, self._setup_outputs(s, payload))
        elif ptype == ord("I"):
            names = payload[1:].decode("ascii", "replace").split(",") if payload else []
            self._reply(conn, key, packet("I", b"\x00" + ",".join("NOT_FOUND" for _ in names).encode()))
        elif ptype == ord("S"):
            ok = s.recipe_id is not None
            self._reply(conn, key, packet("S", bytes([int(ok)])))
            if ok and not conn.closed:
                s.started = True
                self.arm._update()
                self._send_data(conn, s)
                self._schedule()
        elif ptype == ord("P"):
            s.started = False
            self._reply(conn, key, packet("P", b"\x01"))
        elif ptype == ord("M"):
            log.info("%s: client text message %r", self.name, payload)
        elif ptype == ord("U"):
            pass  # input data: this emulator has no input recipes
        else:
            conn.send(text_message(f"unknown package type {ptype}"))

    def _setup_outputs(self, s: _Session, payload: bytes) -> bytes:
        freq = 125.0
        if s.version >= 2:
            if len(payload) < 8:
                return packet("O", b"\x00")
            (freq,) = struct.unpack(">d", payload[:8])
            payload = payload[8:]
        names = tuple(n for n in payload.decode("ascii", "replace").split(",") if n)
        types = [OUTPUTS.get(n, "NOT_FOUND") for n in names]
        valid = bool(names) and "NOT_FOUND" not in types and 0 < freq <= MAX_FREQUENCY_HZ and not s.started
        rid = 0
        if valid:
            rid = len(s.recipes) % 255 + 1
            s.recipes[rid] = (names, freq)
            s.recipe_id = rid
        return packet("O", bytes([rid]) + ",".join(types).encode())

    # -- the stream ----------------------------------------------------------------------------
    def _values(self, names: tuple[str, ...]) -> bytes:
        st = self.arm.state
        run = st.run
        runtime = (
            RUNTIME_STOPPED
            if run is None
            else (RUNTIME_PAUSED if run.paused_at is not None else RUNTIME_PLAYING)
        )
        fmt, vals = ">", []
        for n in names:
            typ = OUTPUTS[n]
            fmt += _FMT[typ]
            if n == "timestamp":
                v: Any = float(self.clock.now())
            elif n == "robot_mode":
                v = _ROBOT_MODE.get(st.robot_mode, -1)
            elif n in ("safety_mode", "safety_status"):
                v = _SAFETY.get(st.safety_status, 9)
            elif n == "safety_status_bits":
                v = _SAFETY_BITS.get(st.safety_status, 1 << 9)
            elif n == "runtime_state":
                v = runtime
            elif n in ("actual_q", "target_q"):
                v = tuple(st.joints)
            elif n in ("speed_scaling", "target_speed_fraction"):
                v = 1.0
            elif n.startswith("output_int_register_"):
                v = st.int_registers[int(n.rsplit("_", 1)[1])]
            else:  # output_double_register_N
                v = st.double_registers[int(n.rsplit("_", 1)[1])]
            vals.extend(v if isinstance(v, tuple) else (v,))
        return struct.pack(fmt, *vals)

    def _send_data(self, conn: Connection, s: _Session) -> None:
        names, freq = s.recipes[s.recipe_id]  # type: ignore[index]
        s.next_due = self.clock.now() + 1.0 / freq
        if not _writable(conn):
            self.packages_skipped += 1
            return
        self.packages_sent += 1
        self._reply(conn, "data", packet("U", bytes([s.recipe_id]) + self._values(names)))

    def _schedule(self) -> None:
        started = [s for s in self.sessions.values() if s.started]
        if started and not self._tick_pending:
            self._tick_pending = True
            self.call_at(min(s.next_due for s in started), self._tick)

    def _tick(self) -> None:
        with self.lock:
            self._tick_pending = False
            server = self.server
            if server is None:
                return
            self.arm._update()
            now = self.clock.now()
            for conn in list(getattr(server, "conns", {}).values()):
                s = self.sessions.get(id(conn))
                if s is not None and s.started and s.next_due <= now and not conn.closed:
                    self._send_data(conn, s)
            self._schedule()


def _writable(conn: Connection) -> bool:
    """False when the client's socket buffer is full (it stopped reading): skip, never block."""
    sock = getattr(conn._send, "__self__", None)  # TcpServer connections send with sock.sendall
    if sock is None:
        return True
    try:
        return bool(select.select([], [sock], [], 0)[1])
    except (OSError, ValueError):
        return False
