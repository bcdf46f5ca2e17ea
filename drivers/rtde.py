"""Universal Robots Real-Time Data Exchange (RTDE) client, protocol version 2 (controller TCP 30004).

Why RTDE: the dashboard's ``running`` / ``programState`` are samples taken when the driver asks;
a program that starts and ends between two polls reads as "never ran". RTDE streams controller
state at a fixed rate, and the driver subscribes to an output integer register that its URScript
writes with a per-move sequence number as the move's last statement: a level that stays set, so a
completion cannot fall between two samples (see :mod:`labos.drivers.ur`).

Why hand-written, not a library: ``ur-rtde`` (PyPI) is a C++/Boost binding whose receive
interface connects to a hard-wired port 30004 (so it cannot reach an emulator on a free loopback
port), runs its own native receive thread on wall time (no virtual clock), and reports failures
as bare ``RuntimeError``; ``rtde-ur`` is a fork of it; UR's own Python reference client is not on
PyPI in a maintained form; ``urx`` (unmaintained since 2018) has no RTDE. The protocol is small
(seven message types over one big-endian framing), so this module is a short client over the
project's TCP transport (timeouts, exchange logging) with a pure, fuzzed packet parser whose every
failure is a typed :class:`~labos.drivers.errors.ProtocolError`.

Wire format (UR "Real-Time Data Exchange (RTDE) Guide", protocol v2): every packet is
``uint16 size`` (whole packet, header included) ``+ uint8 type + payload``, big-endian.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labos.drivers.errors import DeviceError, ProtocolError
from labos.drivers.transport import ConnectionLost, TcpLine

log = logging.getLogger("labos.drivers.rtde")

__all__ = [
    "DEFAULT_PORT",
    "RUNTIME_STATES",
    "SAFETY_STATUSES",
    "DataPackage",
    "RTDEClient",
    "Recipe",
    "TextMessage",
    "decode",
    "encode",
    "split_packets",
]

DEFAULT_PORT = 30004
PROTOCOL_VERSION = 2
HEADER = struct.Struct(">HB")
MAX_FREQUENCY_HZ = 500.0  # e-series controllers (CB3: 125 Hz)

# packet types (ASCII letters)
REQUEST_PROTOCOL_VERSION = ord("V")
GET_URCONTROL_VERSION = ord("v")
TEXT_MESSAGE = ord("M")
DATA_PACKAGE = ord("U")
CONTROL_PACKAGE_SETUP_OUTPUTS = ord("O")
CONTROL_PACKAGE_SETUP_INPUTS = ord("I")
CONTROL_PACKAGE_START = ord("S")
CONTROL_PACKAGE_PAUSE = ord("P")
PACKET_TYPES = frozenset(
    {
        REQUEST_PROTOCOL_VERSION,
        GET_URCONTROL_VERSION,
        TEXT_MESSAGE,
        DATA_PACKAGE,
        CONTROL_PACKAGE_SETUP_OUTPUTS,
        CONTROL_PACKAGE_SETUP_INPUTS,
        CONTROL_PACKAGE_START,
        CONTROL_PACKAGE_PAUSE,
    }
)

#: RTDE type name -> struct format of one value
TYPE_FORMATS = {
    "BOOL": "?",
    "UINT8": "B",
    "UINT32": "I",
    "UINT64": "Q",
    "INT32": "i",
    "DOUBLE": "d",
    "VECTOR3D": "3d",
    "VECTOR6D": "6d",
    "VECTOR6INT32": "6i",
    "VECTOR6UINT32": "6I",
}
#: ``runtime_state`` (UINT32)
RUNTIME_STATES = {0: "STOPPING", 1: "STOPPED", 2: "PLAYING", 3: "PAUSING", 4: "PAUSED", 5: "RESUMING"}
#: ``safety_status`` / ``safety_mode`` (INT32)
SAFETY_STATUSES = {
    1: "NORMAL",
    2: "REDUCED",
    3: "PROTECTIVE_STOP",
    4: "RECOVERY",
    5: "SAFEGUARD_STOP",
    6: "SYSTEM_EMERGENCY_STOP",
    7: "ROBOT_EMERGENCY_STOP",
    8: "VIOLATION",
    9: "FAULT",
    10: "VALIDATE_JOINT_ID",
    11: "UNDEFINED_SAFETY_MODE",
    12: "AUTOMATIC_MODE_SAFEGUARD_STOP",
    13: "SYSTEM_THREE_POSITION_ENABLING_STOP",
}
#: ``robot_mode`` (INT32)
ROBOT_MODES = {
    -1: "NO_CONTROLLER",
    0: "DISCONNECTED",
    1: "CONFIRM_SAFETY",
    2: "BOOTING",
    3: "POWER_OFF",
    4: "POWER_ON",
    5: "IDLE",
    6: "BACKDRIVE",
    7: "RUNNING",
    8: "UPDATING_FIRMWARE",
}


def _err(message: str, code: str = "rtde") -> ProtocolError:
    return ProtocolError(message, device="rtde", code=code)


# -- pure codec (fuzzed in the tests) -------------------------------------------------------------
def encode(ptype: int, payload: bytes = b"") -> bytes:
    """One packet: size, type, payload."""
    size = HEADER.size + len(payload)
    if size > 0xFFFF:
        raise ValueError(f"RTDE packet too long ({size} bytes)")
    return HEADER.pack(size, ptype) + payload


def split_packets(buf: bytes | bytearray) -> tuple[list[tuple[int, bytes]], bytes]:
    """Complete packets at the start of ``buf`` as (type, payload), and the incomplete rest.

    ProtocolError when a header is impossible (size below the header, unknown type): the stream is
    then out of step and the connection must be renewed."""
    out: list[tuple[int, bytes]] = []
    view = bytes(buf)
    pos = 0
    while len(view) - pos >= HEADER.size:
        size, ptype = HEADER.unpack_from(view, pos)
        if size < HEADER.size:
            raise _err(f"packet size {size} is below the 3-byte header", "framing")
        if ptype not in PACKET_TYPES:
            raise _err(f"unknown packet type {ptype} ({chr(ptype)!r})", "type")
        if len(view) - pos < size:
            break
        out.append((ptype, view[pos + HEADER.size : pos + size]))
        pos += size
    return out, view[pos:]


@dataclass(frozen=True)
class Recipe:
    """An output recipe: the controller's id and the variables' names and types, in order."""

    id: int
    names: tuple[str, ...]
    types: tuple[str, ...]

    def __post_init__(self) -> None:
        bad = [t for t in self.types if t not in TYPE_FORMATS]
        if bad:
            raise _err(f"unsupported RTDE types {bad}", "types")
        if len(self.names) != len(self.types):
            raise _err(f"{len(self.names)} variables but {len(self.types)} types", "types")
        object.__setattr__(self, "_fmt", struct.Struct(">B" + "".join(TYPE_FORMATS[t] for t in self.types)))
        object.__setattr__(self, "_counts", tuple(int(TYPE_FORMATS[t][:-1] or 1) for t in self.types))

    def unpack(self, payload: bytes) -> dict[str, Any]:
        """The values of one data package's payload (recipe id first); ProtocolError if it does not fit."""
        fmt: struct.Struct = self._fmt  # type: ignore[attr-defined]
        if len(payload) != fmt.size:
            raise _err(f"data package of {len(payload)} bytes; recipe {self.id} needs {fmt.size}", "length")
        flat = fmt.unpack(payload)
        if flat[0] != self.id:
            raise _err(f"data package for recipe {flat[0]}, subscribed to recipe {self.id}", "recipe")
        values: dict[str, Any] = {}
        i = 1
        for name, n in zip(self.names, self._counts, strict=True):  # type: ignore[attr-defined]
            values[name] = flat[i] if n == 1 else tuple(flat[i : i + n])
            i += n
        return values


@dataclass(frozen=True)
class DataPackage:
    values: dict[str, Any]
    received_at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class TextMessage:
    message: str
    source: str
    level: int  # 0 exception, 1 error, 2 warning, 3 info


def _string(payload: bytes, what: str) -> str:
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        raise _err(f"{what} is not ASCII: {payload!r}", "text") from None


def _one_byte(payload: bytes, what: str) -> int:
    if len(payload) != 1:
        raise _err(f"{what} reply must be 1 byte, got {len(payload)}: {payload!r}", "length")
    return payload[0]


def decode(ptype: int, payload: bytes, recipe: Recipe | None = None) -> Any:
    """Decode one packet from the controller (protocol v2); ProtocolError on anything malformed.

    Returns bool (accepted) for 'V', 'S', 'P'; a 4-tuple for 'v'; :class:`TextMessage` for 'M';
    ``(recipe_id, types)`` for 'O'; the recipe's values (dict) for 'U'."""
    if ptype in (REQUEST_PROTOCOL_VERSION, CONTROL_PACKAGE_START, CONTROL_PACKAGE_PAUSE):
        value = _one_byte(payload, chr(ptype))
        if value not in (0, 1):
            raise _err(f"{chr(ptype)!r} reply must be 0 or 1, got {value}", "reply")
        return value == 1
    if ptype == GET_URCONTROL_VERSION:
        if len(payload) != 16:
            raise _err(f"controller version needs 16 bytes, got {len(payload)}", "length")
        return struct.unpack(">4I", payload)
    if ptype == TEXT_MESSAGE:
        if not payload:
            raise _err("empty text message", "length")
        n = payload[0]
        if len(payload) < 1 + n + 1:
            raise _err("text message shorter than its message length", "length")
        message = _string(payload[1 : 1 + n], "text message")
        m = payload[1 + n]
        if len(payload) != 1 + n + 1 + m + 1:
            raise _err("text message length does not match its source length", "length")
        source = _string(payload[2 + n : 2 + n + m], "text message source")
        return TextMessage(message, source, payload[-1])
    if ptype in (CONTROL_PACKAGE_SETUP_OUTPUTS, CONTROL_PACKAGE_SETUP_INPUTS):
        if not payload:
            raise _err("setup reply without a recipe id", "length")
        types = _string(payload[1:], "variable types")
        return payload[0], tuple(t for t in types.split(",") if t)
    if ptype == DATA_PACKAGE:
        if recipe is None:
            raise _err("data package before any output recipe was set up", "recipe")
        return recipe.unpack(payload)
    raise _err(f"unknown packet type {ptype}", "type")


# -- the client ---------------------------------------------------------------------------------
class RTDEClient:
    """One RTDE connection: negotiate v2, subscribe to output variables, start/pause, read samples.

    Not thread-safe; the owner reads samples while the stream runs and pauses it afterwards, so
    nothing piles up between uses. Any framing or link error leaves the connection out of step:
    :meth:`reconnect` (and set up again) before using it further.
    """

    def __init__(self, host: str, port: int = DEFAULT_PORT, *, timeout_s: float = 2.0, name: str = "rtde"):
        self.name = name
        self.host, self.port = host, int(port)
        self.timeout_s = float(timeout_s)
        self._link = TcpLine(host, self.port, timeout=timeout_s, name=name)
        self._buf = bytearray()
        self.recipe: Recipe | None = None
        self.controller_version: tuple[int, int, int, int] | None = None
        self.streaming = False
        self.latest: DataPackage | None = None
        self.messages: list[TextMessage] = []
        self.frequency_hz = 10.0

    # -- plumbing ----------------------------------------------------------------------------------
    def _fail(self, exc: DeviceError) -> DeviceError:
        exc.device = self.name
        return exc

    def _send(self, ptype: int, payload: bytes = b"") -> None:
        self._link.write(encode(ptype, payload))

    def _take(self, ptype: int, payload: bytes) -> Any:
        """Decode one packet; text messages are logged and kept, data packages become :attr:`latest`."""
        try:
            value = decode(ptype, payload, self.recipe)
        except ProtocolError as exc:
            raise self._fail(exc) from None
        if ptype == TEXT_MESSAGE:
            self.messages.append(value)
            level = logging.WARNING if value.level <= 2 else logging.INFO
            log.log(level, "%s: controller says (%s): %s", self.name, value.source, value.message)
        elif ptype == DATA_PACKAGE:
            self.latest = DataPackage(value, time.monotonic())
        return value

    def _packets(self, wait_s: float) -> list[tuple[int, bytes]]:
        """Complete packets that arrive within ``wait_s`` (at least those already here)."""
        deadline = time.monotonic() + wait_s
        while True:
            self._buf += self._link.pending()
            try:
                packets, rest = split_packets(self._buf)
            except ProtocolError as exc:
                self._buf.clear()
                raise self._fail(exc) from None
            if packets:
                self._buf[:] = rest
                return packets
            left = deadline - time.monotonic()
            if left <= 0 and wait_s > 0:
                return []
            # a short wait even when asked not to: only a read notices that the peer closed the link
            self._buf += self._link.read_up_to(1, timeout=max(left, 1e-4))
            if left <= 0 and not split_packets(self._buf)[0]:
                return []

    def _silent(self, what: str) -> ConnectionLost:
        partial = f"; {len(self._buf)} bytes of a packet: {bytes(self._buf[:24])!r}" if self._buf else ""
        return self._fail(ConnectionLost(f"{what} within {self.timeout_s:g} s{partial}", code="timeout"))

    def _request(self, ptype: int, payload: bytes = b"") -> Any:
        """Send a request and return the decoded reply of the same type (data/text packets on the
        way are taken as they come)."""
        self._send(ptype, payload)
        deadline = time.monotonic() + self.timeout_s
        while True:
            left = deadline - time.monotonic()
            packets = self._packets(max(0.0, left))
            if not packets:
                raise self._silent(f"no reply to {chr(ptype)!r}")
            for i, (t, body) in enumerate(packets):
                value = self._take(t, body)
                if t == ptype:
                    self._buf[:0] = b"".join(encode(tt, bb) for tt, bb in packets[i + 1 :])
                    return value
                if t not in (TEXT_MESSAGE, DATA_PACKAGE):
                    raise self._fail(
                        ProtocolError(
                            f"unexpected {chr(t)!r} packet while waiting for {chr(ptype)!r}", code="reply"
                        )
                    )

    # -- protocol ----------------------------------------------------------------------------------
    def negotiate(self, version: int = PROTOCOL_VERSION) -> None:
        if not self._request(REQUEST_PROTOCOL_VERSION, struct.pack(">H", version)):
            raise self._fail(
                DeviceError(f"controller refused RTDE protocol version {version}", code="version")
            )

    def get_controller_version(self) -> tuple[int, int, int, int]:
        self.controller_version = self._request(GET_URCONTROL_VERSION)
        return self.controller_version

    def setup_outputs(self, names: Sequence[str], frequency_hz: float) -> Recipe:
        """Subscribe to ``names`` at ``frequency_hz``; DeviceError naming variables the controller lacks."""
        if not (0 < frequency_hz <= MAX_FREQUENCY_HZ):
            raise ValueError(f"{self.name}: RTDE frequency must be in (0, {MAX_FREQUENCY_HZ:g}] Hz")
        if not names or any("," in n or not n.isascii() for n in names):
            raise ValueError(f"{self.name}: bad RTDE variable names {list(names)}")
        rid, types = self._request(
            CONTROL_PACKAGE_SETUP_OUTPUTS, struct.pack(">d", frequency_hz) + ",".join(names).encode("ascii")
        )
        missing = [n for n, t in zip(names, types, strict=False) if t == "NOT_FOUND"]
        if missing:
            raise self._fail(DeviceError(f"controller has no RTDE outputs {missing}", code="not_found"))
        if len(types) != len(names) or rid == 0:
            raise self._fail(
                ProtocolError(f"setup of {len(names)} outputs answered {rid}, {types}", code="setup")
            )
        self.recipe = Recipe(rid, tuple(names), types)
        self.frequency_hz = float(frequency_hz)
        return self.recipe

    def open(self, names: Sequence[str], frequency_hz: float) -> Recipe:
        """Negotiate v2, read the controller version, subscribe: the whole set-up of a connection."""
        self.negotiate()
        self.get_controller_version()
        return self.setup_outputs(names, frequency_hz)

    def start(self) -> DataPackage:
        """Start the stream and return its first sample."""
        if self.recipe is None:
            raise ValueError(f"{self.name}: set up outputs before starting")
        self.latest = None
        if not self._request(CONTROL_PACKAGE_START):
            raise self._fail(DeviceError("controller refused to start the RTDE stream", code="start"))
        self.streaming = True
        if self.latest is None:
            self.latest = self.next_sample(self.timeout_s)
        return self.latest

    def pause(self) -> None:
        if not self._request(CONTROL_PACKAGE_PAUSE):
            raise self._fail(DeviceError("controller refused to pause the RTDE stream", code="pause"))
        self.streaming = False

    def samples(self, wait_s: float = 0.0) -> list[DataPackage]:
        """Every sample that arrived (waiting up to ``wait_s`` for the first one), oldest first."""
        out: list[DataPackage] = []
        for ptype, body in self._packets(wait_s):
            value = self._take(ptype, body)
            if ptype == DATA_PACKAGE:
                out.append(self.latest)  # type: ignore[arg-type]
            elif ptype != TEXT_MESSAGE:
                raise self._fail(
                    ProtocolError(f"unexpected {chr(ptype)!r} packet in the stream: {value!r}", code="reply")
                )
        return out

    def next_sample(self, timeout_s: float | None = None) -> DataPackage:
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            got = self.samples(max(0.0, deadline - time.monotonic()))
            if got:
                return got[-1]
            if time.monotonic() >= deadline:
                raise self._silent("no data package")

    def reconnect(self, names: Iterable[str] | None = None, frequency_hz: float | None = None) -> Recipe:
        """A fresh connection, set up again with the same (or new) subscription."""
        names = tuple(names) if names is not None else (self.recipe.names if self.recipe else ())
        freq = frequency_hz if frequency_hz is not None else self.frequency_hz
        self._buf.clear()
        self.streaming, self.latest, self.recipe = False, None, None
        self._link.reconnect()
        return self.open(names, freq)

    def close(self) -> None:
        self._link.close()

    @property
    def closed(self) -> bool:
        return self._link.closed
