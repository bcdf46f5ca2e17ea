"""Wire-level device emulators: the real drivers talk to them over a real pty or TCP socket.

Each emulator is a plain object holding the device's state, evolved from a
:class:`labos.simulator.clock.Clock`, so it runs in virtual time (ManualClock, SimClock, or the
fast :class:`ScaledClock`) as well as in real time. This module is the one place for what they
share:

* the servers, each one background thread around a selector — :class:`PtyServer`
  (``os.openpty()``; the driver opens :attr:`PtyServer.path`, ``/dev/pts/N``, with pyserial; a
  pty ignores baud rate and parity, so transmission errors are emulated at the protocol level)
  and :class:`TcpServer` (127.0.0.1 only, port chosen by the OS unless given);
* clock timers (:meth:`Emulator.call_at`) for device work that takes time (a dose, a door, a scan);
* the one fault vocabulary, :class:`WireFault`: the link faults of PROTOCOLS.md §7 that every
  protocol shares (no reply, partial reply, late reply, dropped connection, garbage, wrong line
  ending, a reply meant for another command) plus the Modbus framing faults (bad CRC, wrong slave
  address, long frame). :meth:`Emulator.inject` queues them and :meth:`Emulator.send_reply`
  applies them, for every emulator alike. Device faults (an e-stop, a jammed door, a sensor
  break) are methods of each emulator.
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
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from labos.simulator.clock import Clock, ManualClock, WallClock

log = logging.getLogger("labos.simulator.emulators")

__all__ = [
    "LINK_FAULTS",
    "Connection",
    "Emulator",
    "FaultQueue",
    "InjectedFault",
    "LineEmulator",
    "PtyServer",
    "ScaledClock",
    "TcpServer",
    "WireFault",
    "sleeper_for",
]

#: how often (real seconds) an emulator with pending clock-timed work re-reads the clock
CLOCK_POLL_S = 0.002


# -- virtual time ------------------------------------------------------------------------------
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

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` ahead (on top of the scaled flow), e.g. to skip a 5 s unlock delay."""
        self._start += seconds

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


# -- faults ------------------------------------------------------------------------------------
class WireFault(StrEnum):
    """Faults of the link itself: PROTOCOLS.md §7 'All', plus the Modbus framing faults."""

    NO_REPLY = "no_reply"  # the device stays silent (the connection stays open)
    PARTIAL = "partial"  # half the reply and no line end (Modbus: a short frame)
    LATE = "late"  # the reply comes ``delay_s`` real seconds later
    DROP = "drop"  # the TCP connection is closed instead of replying
    GARBAGE = "garbage"  # noise bytes instead of the reply
    WRONG_EOL = "wrong_eol"  # the reply ends in a bare CR
    OTHER_REPLY = "other_reply"  # a well-formed reply to some other command
    BAD_CRC = "bad_crc"
    WRONG_ADDRESS = "wrong_address"  # a reply from another slave address
    LONG = "long"  # extra bytes after a valid frame


#: the §7 faults every emulated link can show
LINK_FAULTS = frozenset(
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
#: faults that can also hit the request on its way in (the device never sees it)
_INBOUND_FAULTS = frozenset({WireFault.NO_REPLY, WireFault.DROP})


@dataclass
class InjectedFault:
    fault: WireFault
    match: str | None  # requests starting with this (case-insensitive); None = any request
    remaining: int | None  # None = until cleared
    delay_s: float = 0.5
    executes: bool = True  # False: the request is lost on the way in and the device never acts


class FaultQueue:
    """Thread-safe list of injected faults; each matching request or reply consumes one use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[InjectedFault] = []

    def add(self, fault: InjectedFault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def take(self, request: str, *, inbound: bool = False) -> InjectedFault | None:
        """The fault for ``request`` (consuming one use): ``inbound`` ones hit the request itself,
        the others the reply to it."""
        key = request.strip().lower()
        with self._lock:
            for f in self._faults:
                if f.executes == inbound:
                    continue
                if f.match is None or key.startswith(f.match.strip().lower()):
                    if f.remaining is not None:
                        f.remaining -= 1
                        if f.remaining <= 0:
                            self._faults.remove(f)
                    return f
        return None


# -- one client link ---------------------------------------------------------------------------
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


# -- the emulator base -------------------------------------------------------------------------
class Emulator:
    """State + fault injection + timers; subclasses implement :meth:`on_data` (and usually more)."""

    #: the faults this protocol can show (a pty cannot drop; Modbus adds its framing faults)
    supported_faults: frozenset[WireFault] = LINK_FAULTS
    default_transport = "pty"

    def __init__(
        self, clock: Clock | None = None, *, name: str = "emulator", seed: int = 0, tcp_port: int = 0
    ):
        self.clock: Clock = clock if clock is not None else WallClock()
        self.name = name
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.faults = FaultQueue()
        self.tcp_port_wanted = tcp_port
        self._timers: list[tuple[float, int, bool, Callable[[], None]]] = []  # (t, seq, on_clock, fn)
        self._seq = itertools.count()
        self.server: PtyServer | TcpServer | None = None
        self.requests: list[Any] = []  # every request received, for tests and debugging

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, transport: str | None = None):
        """Serve on a new pty (serial devices) or on 127.0.0.1 (network devices); returns self."""
        kind = transport or self.default_transport
        if kind not in ("pty", "tcp"):
            raise ValueError(f"{self.name}: transport must be 'pty' or 'tcp', not {kind!r}")
        if self.server is not None:
            raise RuntimeError(f"{self.name} is already running")
        self.server = PtyServer(self) if kind == "pty" else TcpServer(self, port=self.tcp_port_wanted)
        self.server.start()
        return self

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
        """Where a driver connects (DeviceSpec fields): ``{"port": path}`` or ``{"host", "tcp_port"}``."""
        if self.server is None:
            raise RuntimeError(f"{self.name} is not running; call start()")
        return self.server.address

    def drop_connections(self) -> None:
        """Close every client connection (the device rebooted, a cable was pulled)."""
        if isinstance(self.server, TcpServer):
            self.server.drop_all()

    # -- faults ----------------------------------------------------------------------------------
    def inject(
        self,
        fault: WireFault | str,
        count: int | None = 1,
        *,
        match: str | None = None,
        delay_s: float = 0.5,
        executes: bool = True,
    ) -> None:
        """Break the next ``count`` replies (``None``: every one until :meth:`clear_faults`) to
        requests starting with ``match`` (case-insensitive).

        ``LATE`` waits ``delay_s`` real seconds. ``executes=False`` (``NO_REPLY`` or ``DROP`` only)
        loses the request on the way in, so the device never acts on it.
        """
        fault = WireFault(fault)
        if fault not in self.supported_faults:
            raise ValueError(f"{self.name}: fault {fault.value} does not apply to this protocol")
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1 or None, got {count}")
        if not executes and fault not in _INBOUND_FAULTS:
            raise ValueError(f"{self.name}: only no_reply and drop can lose a request on its way in")
        self.faults.add(InjectedFault(fault, match, count, float(delay_s), executes))

    def clear_faults(self) -> None:
        self.faults.clear()

    def request_lost(self, conn: Connection, request: str) -> bool:
        """True when an ``executes=False`` fault swallows ``request`` before the device sees it."""
        f = self.faults.take(request, inbound=True)
        if f is None:
            return False
        log.debug("%s fault %s on request %r", self.name, f.fault.value, request)
        if f.fault is WireFault.DROP:
            conn.close()
        return True

    def garbage(self) -> bytes:
        return bytes(self.rng.choice(b"\x00\x7f\xff\xfe#%&*~\x1b\x13") for _ in range(self.rng.randint(3, 9)))

    def corrupt(self, fault: WireFault, body: bytes) -> bytes:
        """The bytes a protocol-specific fault (Modbus framing) makes of ``body``."""
        raise NotImplementedError(f"{self.name}: no handling for fault {fault.value}")

    def send_reply(
        self,
        conn: Connection,
        body: bytes,
        *,
        request: str,
        eol: bytes = b"",
        other: Callable[[], bytes] | None = None,
        close_after: bool = False,
    ) -> None:
        """Send ``body + eol`` as the reply to ``request``, applying an injected fault if one matches.

        ``other`` gives the body of a reply meant for another command (``OTHER_REPLY``);
        ``close_after`` closes the link once the reply is out (one connection per query), except
        when the device hangs (no reply, partial reply): then the client has to give up.
        """
        f = self.faults.take(request)
        data = body + eol

        def done() -> None:
            if close_after:
                conn.close()

        if f is None:
            conn.send(data)
            done()
            return
        log.debug("%s fault %s on reply %r", self.name, f.fault.value, body)
        match f.fault:
            case WireFault.NO_REPLY:
                return
            case WireFault.PARTIAL:
                conn.send(body[: max(1, len(body) // 2)])
                return
            case WireFault.LATE:
                self.call_later(f.delay_s, lambda: (conn.send(data), done()))
                return
            case WireFault.DROP:
                conn.close()
                return
            case WireFault.GARBAGE:
                conn.send(self.garbage() + eol)
            case WireFault.WRONG_EOL:
                conn.send(body + b"\r")
            case WireFault.OTHER_REPLY:
                conn.send((other() if other is not None else b"OK") + eol)
            case _:
                conn.send(self.corrupt(f.fault, body))
        done()

    # -- timers ----------------------------------------------------------------------------------
    def call_later(self, delay_s: float, fn: Callable[[], object]) -> int:
        """Run ``fn`` after ``delay_s`` real seconds (wire effects such as a late reply); returns a handle."""
        with self.lock:
            handle = next(self._seq)
            heapq.heappush(self._timers, (time.monotonic() + delay_s, handle, False, fn))
        self._wake()
        return handle

    def call_at(self, clock_time: float, fn: Callable[[], object]) -> int:
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
            if not self._timers:
                return
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


class LineEmulator(Emulator):
    """Emulators of text protocols: requests and replies are lines."""

    #: what the device puts at the end of its reply lines
    eol = b"\r\n"
    encoding = "ascii"

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        while not conn.closed:
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
                if not self.request_lost(conn, line):
                    self.handle_line(conn, line)

    def handle_line(self, conn: Connection, line: str) -> None:
        raise NotImplementedError

    def other_reply(self, request: str, reply: str) -> str:
        """A well-formed reply to a different command (the fault OTHER_REPLY)."""
        raise NotImplementedError

    def reply(self, conn: Connection, text: str, request: str = "", *, close_after: bool = False) -> None:
        """Send one reply line, applying an injected link fault if one matches ``request``."""
        self.send_reply(
            conn,
            text.encode(self.encoding),
            request=request,
            eol=self.eol,
            other=lambda: self.other_reply(request, text).encode(self.encoding),
            close_after=close_after,
        )


# -- servers -----------------------------------------------------------------------------------
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
    """Listens on 127.0.0.1 (port from the OS unless given); many clients, one thread."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"emulators listen on loopback only, not {host!r}")
        super().__init__(emulator)
        self.listener = socket.create_server((host, port))
        self.listener.setblocking(False)
        self.host, self.port = self.listener.getsockname()[:2]
        self.sel.register(self.listener, selectors.EVENT_READ, "listen")
        self.conns: dict[socket.socket, Connection] = {}
        self.connections_accepted = 0

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
            self.connections_accepted += 1
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
        """Close every client connection (the device rebooted, a cable was pulled); from another
        thread it is done by the server thread, which owns the selector, and waited for."""
        if threading.current_thread() is self._thread or not self._thread.is_alive():
            for sock in list(self.conns):
                self._close(sock)
            return
        done = threading.Event()
        self.emulator.call_later(0.0, lambda: (self.drop_all(), done.set()))
        done.wait(2.0)

    def _cleanup(self) -> None:
        self.drop_all()
        with contextlib.suppress(OSError):
            self.listener.close()
