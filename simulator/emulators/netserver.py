"""A TCP server on 127.0.0.1 for network emulators, and the wire faults every emulator can inject.

Why shared: the UR dashboard, the Aeris command port and the door controller all answer text
lines over TCP, and PROTOCOLS.md §7 asks each to misbehave the same ways (no reply, partial line,
late reply, dropped connection, garbage, wrong line ending, a reply meant for another command).
The device logic lives in each emulator; this module only moves bytes and applies faults.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("labos.simulator.emulators")

__all__ = ["Fault", "InjectedFault", "WireFaults", "TcpServer", "send_reply", "read_lines"]

GARBAGE = b"\xff\xfe\x00\x13#%\x7f\x80garbage\x1b[0m"


class Fault(StrEnum):
    """Wire-level faults (PROTOCOLS.md §7, 'All')."""

    NO_REPLY = "no_reply"  # the command is executed, the reply is lost
    PARTIAL_LINE = "partial_line"  # half the reply, no line end
    LATE_REPLY = "late_reply"  # the reply comes after ``delay_s`` wall seconds
    DROP_CONNECTION = "drop_connection"  # the peer closes the socket instead of replying
    GARBAGE = "garbage"  # non-text bytes instead of the reply
    WRONG_LINE_ENDING = "wrong_line_ending"  # the reply ends with CR instead of LF
    OTHER_REPLY = "other_reply"  # a reply that belongs to a different command


@dataclass
class InjectedFault:
    fault: Fault
    match: str | None  # only commands starting with this (case-insensitive); None = any command
    remaining: int | None  # None = until cleared
    delay_s: float
    executes: bool  # whether the device still acts on the command (the reply alone is broken)


class WireFaults:
    """Thread-safe list of wire faults that the next matching replies suffer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[InjectedFault] = []

    def inject(
        self,
        fault: Fault | str,
        *,
        count: int | None = 1,
        match: str | None = None,
        delay_s: float = 1.0,
        executes: bool = True,
    ) -> None:
        """Break the next ``count`` replies (``None``: every reply until :meth:`clear`).

        ``executes=False`` drops the command before the device sees it (the request was lost on
        the way in, not the reply on the way out).
        """
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1 or None, got {count}")
        with self._lock:
            self._faults.append(InjectedFault(Fault(fault), match, count, float(delay_s), executes))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, command: str) -> InjectedFault | None:
        """The fault that applies to this command (consuming one use), or None."""
        with self._lock:
            for f in self._faults:
                if f.match is None or command.strip().lower().startswith(f.match.lower()):
                    if f.remaining is not None:
                        f.remaining -= 1
                        if f.remaining <= 0:
                            self._faults.remove(f)
                    return f
        return None


def send_reply(
    conn: socket.socket,
    reply: bytes,
    eol: bytes,
    fault: InjectedFault | None,
    other_reply: bytes = b"",
) -> bool:
    """Send ``reply`` + ``eol`` as the fault dictates; False when the connection must be closed."""
    if fault is None:
        conn.sendall(reply + eol)
        return True
    kind = fault.fault
    log.debug("emulator fault %s on reply %r", kind, reply)
    if kind is Fault.NO_REPLY:
        return True
    if kind is Fault.PARTIAL_LINE:
        conn.sendall(reply[: max(1, len(reply) // 2)])
        return True
    if kind is Fault.LATE_REPLY:
        time.sleep(fault.delay_s)
        conn.sendall(reply + eol)
        return True
    if kind is Fault.DROP_CONNECTION:
        return False
    if kind is Fault.GARBAGE:
        conn.sendall(GARBAGE + eol)
        return True
    if kind is Fault.WRONG_LINE_ENDING:
        conn.sendall(reply + b"\r")
        return True
    if kind is Fault.OTHER_REPLY:
        conn.sendall((other_reply or b"OK") + eol)
        return True
    raise AssertionError(kind)  # pragma: no cover


class TcpServer:
    """Accepts connections on 127.0.0.1 and runs ``handler(conn)`` for each in its own thread.

    ``port=0`` lets the OS choose; :attr:`port` is the bound port. Only loopback is ever bound.
    """

    def __init__(self, handler: Callable[[socket.socket], None], *, port: int = 0, name: str = "emulator"):
        self.handler = handler
        self.name = name
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self.host, self.port = self._sock.getsockname()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.connections_accepted = 0

    def start(self) -> TcpServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._accept_loop, name=f"{self.name}-accept", daemon=True)
            self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.add(conn)
                self.connections_accepted += 1
            threading.Thread(target=self._serve, args=(conn,), name=f"{self.name}-conn", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass  # the client went away
        except Exception:  # pragma: no cover - an emulator bug must not kill the server silently
            log.exception("%s: handler failed", self.name)
        finally:
            self.drop(conn)

    def drop(self, conn: socket.socket) -> None:
        """Close one connection (also how DROP_CONNECTION is carried out)."""
        with self._lock:
            self._conns.discard(conn)
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        conn.close()

    def drop_all(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            self.drop(c)

    def stop(self) -> None:
        self._stopped.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass
        try:
            self._sock.close()
        finally:
            self.drop_all()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> TcpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def read_lines(conn: socket.socket, buf: bytearray, terminator: bytes = b"\n") -> list[bytes] | None:
    """Receive once and split complete lines off ``buf``; None when the peer closed."""
    data = conn.recv(65536)
    if not data:
        return None
    buf += data
    lines = []
    while True:
        idx = buf.find(terminator)
        if idx < 0:
            return lines
        lines.append(bytes(buf[:idx]))
        del buf[: idx + len(terminator)]
