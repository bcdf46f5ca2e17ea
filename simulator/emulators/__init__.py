"""Wire-level device emulators: the real drivers talk to them over a real pty or TCP socket.

Each emulator is a plain object holding the device's state, evolved from a
:class:`labos.simulator.clock.Clock`, so it runs in virtual time (ManualClock, SimClock, or the
fast :class:`ScaledClock`) as well as in real time. A small server runs it on a background thread:

* :class:`PtyServer` — ``os.openpty()``; the driver opens :attr:`PtyServer.path` (``/dev/pts/N``)
  with pyserial. A pty ignores baud rate and parity, so transmission errors are emulated at the
  protocol level.
* :class:`TcpServer` — listens on 127.0.0.1, port chosen by the OS.

Faults of PROTOCOLS.md §7 that every protocol shares (no reply, partial reply, late reply,
dropped connection, garbage, wrong line ending, a reply meant for another command; for Modbus
also bad CRC, wrong slave address, short and long frames) are injected with
:meth:`Emulator.inject`; device faults are methods of each emulator.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import random
import selectors
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from labos.simulator.clock import Clock, ManualClock

log = logging.getLogger("labos.simulator.emulators")

__all__ = [
    "Connection",
    "Emulator",
    "LineEmulator",
    "PtyServer",
    "ScaledClock",
    "TcpServer",
    "WireFault",
    "sleeper_for",
]

#: how often (real seconds) an emulator with pending clock-timed work re-reads the clock
CLOCK_POLL_S = 0.002


class ScaledClock:
    """Fast virtual time: ``factor`` clock seconds pass per wall second (1000 → a 10 h programme in 36 s)."""

    def __init__(self, factor: float = 1000.0, start: float = 0.0):
        if factor <= 0:
            raise ValueError(f"clock factor must be positive, got {factor}")
        self.factor = float(factor)
        self._start = start
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * self.factor

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        if seconds > 0:
            time.sleep(seconds / self.factor)


def sleeper_for(clock: Clock) -> Callable[[float], None]:
    """A ``sleep(seconds)`` that waits in ``clock``'s time (what drivers take as ``sleep=``)."""
    if isinstance(clock, ScaledClock):
        return clock.sleep
    if isinstance(clock, ManualClock):

        def advance(seconds: float) -> None:
            clock.advance(max(0.0, seconds))
            time.sleep(CLOCK_POLL_S * 2)  # let the emulator thread see the new time

        return advance
    return time.sleep


class WireFault(StrEnum):
    """Faults of the link itself (PROTOCOLS.md §7 'All', plus the Modbus framing faults)."""

    NO_REPLY = "no_reply"
    PARTIAL = "partial"  # half a line / a short frame
    LATE = "late"  # the reply comes ``delay_s`` real seconds later
    DROP = "drop"  # the TCP connection is closed instead of replying
    GARBAGE = "garbage"
    WRONG_EOL = "wrong_eol"  # the line ends in a bare CR
    OTHER_REPLY = "other_reply"  # a well-formed reply to some other command
    BAD_CRC = "bad_crc"
    WRONG_ADDRESS = "wrong_address"
    LONG = "long"  # extra bytes after a valid frame


@dataclass
class _Injected:
    fault: WireFault
    remaining: int
    match: str | None
    params: dict[str, Any] = field(default_factory=dict)


class Connection:
    """One client link: the pty master or one accepted TCP socket."""

    def __init__(self, send: Callable[[bytes], None], close: Callable[[], None], label: str):
        self._send = send
        self._close = close
        self.label = label
        self.closed = False
        self.buffer = bytearray()  # bytes received and not yet parsed

    def send(self, data: bytes) -> None:
        if self.closed or not data:
            return
        log.debug("%s emu > %r", self.label, data)
        try:
            self._send(data)
        except OSError as exc:  # the driver went away
            log.debug("%s emu send failed: %s", self.label, exc)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._close()


class Emulator:
    """State + fault injection + timers; subclasses implement :meth:`on_data` (and usually more)."""

    #: the link faults this protocol can show
    supported_faults: frozenset[WireFault] = frozenset(
        {
            WireFault.NO_REPLY,
            WireFault.PARTIAL,
            WireFault.LATE,
            WireFault.DROP,
            WireFault.GARBAGE,
            WireFault.WRONG_EOL,
            WireFault.OTHER_REPLY,
        }
    )
    default_transport = "pty"

    def __init__(self, clock: Clock, *, name: str = "emulator", seed: int = 0):
        self.clock = clock
        self.name = name
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self._faults: list[_Injected] = []
        self._timers: list[tuple[float, int, bool, Callable[[], None]]] = []  # (t, seq, on_clock, fn)
        self._seq = itertools.count()
        self.server: PtyServer | TcpServer | None = None
        self.requests: list[str] = []  # every request received, for tests and debugging

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, transport: str | None = None) -> PtyServer | TcpServer:
        """Serve on a new pty (serial devices) or on 127.0.0.1 (network devices)."""
        kind = transport or self.default_transport
        if self.server is not None:
            raise RuntimeError(f"{self.name} is already running")
        self.server = PtyServer(self) if kind == "pty" else TcpServer(self)
        self.server.start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self):
        if self.server is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def address(self) -> dict[str, Any]:
        """Where a driver connects: ``{"port": path}`` or ``{"host": ..., "tcp_port": ...}``."""
        if self.server is None:
            raise RuntimeError(f"{self.name} is not running; call start()")
        return self.server.address

    # -- faults ----------------------------------------------------------------------------------
    def inject(self, fault: WireFault | str, count: int = 1, *, match: str | None = None, **params) -> None:
        """Apply a link fault to the next ``count`` replies (to requests starting with ``match``).

        ``LATE`` takes ``delay_s`` (real seconds, default 0.5).
        """
        fault = WireFault(fault)
        if fault not in self.supported_faults:
            raise ValueError(f"{self.name}: fault {fault.value} does not apply to this protocol")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self.lock:
            self._faults.append(_Injected(fault, count, match, dict(params)))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def take_fault(self, request: str) -> _Injected | None:
        """The fault (if any) that applies to the reply to ``request``; consumes one use."""
        with self.lock:
            for f in self._faults:
                if f.match is None or request.startswith(f.match):
                    f.remaining -= 1
                    if f.remaining <= 0:
                        self._faults.remove(f)
                    return f
        return None

    # -- timers ----------------------------------------------------------------------------------
    def call_later(self, delay_s: float, fn: Callable[[], None]) -> int:
        """Run ``fn`` after ``delay_s`` real seconds (wire effects such as a late reply); returns a handle."""
        with self.lock:
            handle = next(self._seq)
            heapq.heappush(self._timers, (time.monotonic() + delay_s, handle, False, fn))
        self._wake()
        return handle

    def call_at(self, clock_time: float, fn: Callable[[], None]) -> int:
        """Run ``fn`` once the clock reaches ``clock_time`` (device work: a dose, a door move)."""
        with self.lock:
            handle = next(self._seq)
            heapq.heappush(self._timers, (clock_time, handle, True, fn))
        self._wake()
        return handle

    def cancel(self, handle: int | None) -> None:
        with self.lock:
            self._timers = [t for t in self._timers if t[1] != handle]
            heapq.heapify(self._timers)

    def cancel_timers(self) -> None:
        with self.lock:
            self._timers.clear()

    def next_wakeup(self) -> float | None:
        """Real seconds until the server loop should call :meth:`run_due` (None: only on input)."""
        with self.lock:
            if not self._timers:
                return None
            wait = None
            now_real = time.monotonic()
            for t, _, on_clock, _ in self._timers:
                w = CLOCK_POLL_S if on_clock else max(0.0, t - now_real)
                wait = w if wait is None else min(wait, w)
            return wait

    def run_due(self) -> None:
        with self.lock:
            due = []
            keep = []
            now_real, now_clock = time.monotonic(), self.clock.now()
            for item in self._timers:
                t, _, on_clock, fn = item
                if t <= (now_clock if on_clock else now_real):
                    due.append(item)
                else:
                    keep.append(item)
            if not due:
                return
            heapq.heapify(keep)
            self._timers = keep
            for *_, fn in sorted(due, key=lambda x: (x[0], x[1])):
                fn()

    def _wake(self) -> None:
        if self.server is not None:
            self.server.wake()

    # -- hooks the server calls ------------------------------------------------------------------
    def on_connect(self, conn: Connection) -> None:
        """A client connected (TCP) or the pty opened; e.g. send a greeting."""

    def on_disconnect(self, conn: Connection) -> None:
        """A TCP client went away."""

    def on_data(self, conn: Connection, data: bytes) -> None:
        raise NotImplementedError

    # -- sending with faults ---------------------------------------------------------------------
    def garbage(self) -> bytes:
        return bytes(self.rng.choice(b"\x00\x7f\xff\xfe#%&*~\x1b\x13") for _ in range(self.rng.randint(3, 9)))


class LineEmulator(Emulator):
    """Emulators of text protocols: requests and replies are lines."""

    #: what the device puts at the end of its reply lines
    eol = b"\r\n"
    encoding = "ascii"

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        while True:
            idx = conn.buffer.find(b"\n")
            if idx < 0:
                # a bare CR also ends a request (terminal programs send CR alone)
                idx = conn.buffer.find(b"\r")
                if idx < 0:
                    return
            raw = bytes(conn.buffer[:idx]).rstrip(b"\r")
            del conn.buffer[: idx + 1]
            if not raw:  # an empty line (e.g. the LF of a CR LF split across reads)
                continue
            try:
                line = raw.decode(self.encoding)
            except UnicodeDecodeError:
                line = raw.decode("latin-1")
            self.requests.append(line)
            log.debug("%s emu < %r", self.name, line)
            with self.lock:
                self.handle_line(conn, line)

    def handle_line(self, conn: Connection, line: str) -> None:
        raise NotImplementedError

    def other_reply(self, request: str, reply: str) -> str:
        """A well-formed reply to a different command (the fault OTHER_REPLY)."""
        raise NotImplementedError

    def reply(self, conn: Connection, text: str, request: str = "") -> None:
        """Send one reply line, applying an injected link fault if one matches ``request``."""
        f = self.take_fault(request)
        data = text.encode(self.encoding) + self.eol
        if f is None:
            conn.send(data)
            return
        log.debug("%s fault %s on reply %r", self.name, f.fault.value, text)
        match f.fault:
            case WireFault.NO_REPLY:
                return
            case WireFault.PARTIAL:
                conn.send(text.encode(self.encoding)[: max(1, len(text) // 2)])
            case WireFault.LATE:
                self.call_later(float(f.params.get("delay_s", 0.5)), lambda: conn.send(data))
            case WireFault.DROP:
                conn.close()
            case WireFault.GARBAGE:
                conn.send(self.garbage() + self.eol)
            case WireFault.WRONG_EOL:
                conn.send(text.encode(self.encoding) + b"\r")
            case WireFault.OTHER_REPLY:
                conn.send(self.other_reply(request, text).encode(self.encoding) + self.eol)
            case _:  # pragma: no cover - guarded by supported_faults
                conn.send(data)


class _WakePipe:
    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.w, b"x")

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self.r, 4096):
                pass

    def close(self) -> None:
        for fd in (self.r, self.w):
            with contextlib.suppress(OSError):
                os.close(fd)


class _ServerBase:
    def __init__(self, emulator: Emulator):
        self.emulator = emulator
        self._pipe = _WakePipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"emu-{emulator.name}", daemon=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self._pipe.r, selectors.EVENT_READ, "wake")

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._pipe.wake()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=2)
        self._cleanup()
        self.sel.close()
        self._pipe.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                events = self.sel.select(self.emulator.next_wakeup())
                for key, _ in events:
                    if key.data == "wake":
                        self._pipe.drain()
                    else:
                        self._ready(key)
                self.emulator.run_due()
        except Exception:  # pragma: no cover - surfaced in the log, tests then time out clearly
            log.exception("emulator %s crashed", self.emulator.name)

    def _ready(self, key) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError


class PtyServer(_ServerBase):
    """The device end of a pseudo-terminal; the driver opens :attr:`path` with pyserial."""

    def __init__(self, emulator: Emulator):
        super().__init__(emulator)
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR/LF translation
        self.path = os.ttyname(self.slave)
        self.conn = Connection(self._write, self._drop, f"{emulator.name}@{self.path}")
        self.sel.register(self.master, selectors.EVENT_READ, "master")

    @property
    def address(self) -> dict[str, Any]:
        return {"port": self.path}

    def _write(self, data: bytes) -> None:
        os.write(self.master, data)

    def _drop(self) -> None:
        """A serial line cannot drop; closing only means the device goes silent."""
        self.conn.closed = False

    def _ready(self, key) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return
        if data:
            self.emulator.on_data(self.conn, data)

    def _cleanup(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpServer(_ServerBase):
    """Listens on 127.0.0.1 (port from the OS); many clients, one thread."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0):
        super().__init__(emulator)
        self.listener = socket.create_server((host, port))
        self.listener.setblocking(False)
        self.host, self.port = self.listener.getsockname()[:2]
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.conns: dict[socket.socket, Connection] = {}

    @property
    def address(self) -> dict[str, Any]:
        return {"host": self.host, "tcp_port": self.port}

    def _ready(self, key) -> None:
        if key.data == "listen":
            try:
                sock, peer = self.listener.accept()
            except OSError:
                return
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(sock.sendall, lambda s=sock: self._close(s), f"{self.emulator.name}@{peer[1]}")
            self.conns[sock] = conn
            self.sel.register(sock, selectors.EVENT_READ, "conn")
            with self.emulator.lock:
                self.emulator.on_connect(conn)
            return
        sock = key.fileobj
        conn = self.conns.get(sock)
        if conn is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close(sock)
            with self.emulator.lock:
                self.emulator.on_disconnect(conn)
            return
        self.emulator.on_data(conn, data)

    def _close(self, sock: socket.socket) -> None:
        conn = self.conns.pop(sock, None)
        if conn is not None:
            conn.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def drop_all(self) -> None:
        """Close every client connection (the device rebooted, a cable was pulled)."""
        for sock in list(self.conns):
            self._close(sock)

    def _cleanup(self) -> None:
        self.drop_all()
        with contextlib.suppress(OSError):
            self.listener.close()
