"""Transports that every driver talks through: a serial port (pyserial), a TCP socket, or HTTP.

Why one module: timeouts, stale-input flushing, reconnects and exchange logging are the same for
every device, so drivers only parse and build messages. Every byte sent or received is logged at
DEBUG on the ``labos.drivers.transport`` logger, prefixed with the transport's name.

Retries: :func:`retry_call` is the one bounded-retry loop of the drivers. It repeats an operation
only when the caller passes ``retries > 0`` (or ``safe=True``), which a driver does only for
commands that are safe to repeat (reads, status, idempotent settings). Commands with effects
(dose, start a programme, move a door or an arm, play a run) are sent exactly once.
"""

from __future__ import annotations

import http.client
import logging
import os
import select
import socket
import termios
import time
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar, runtime_checkable

import serial
from labos.drivers.errors import DeviceError, DeviceTimeout, ProtocolError

log = logging.getLogger("labos.drivers.transport")

__all__ = [
    "ConnectionLost",
    "HttpLink",
    "LineTransport",
    "SerialLine",
    "TcpLine",
    "Transport",
    "open_transport",
    "retry_call",
]

T = TypeVar("T")


class ConnectionLost(DeviceTimeout):
    """The link went away (peer closed the socket, serial port vanished) during an exchange.

    A subclass of :class:`DeviceTimeout` because the consequence is the same: the command may or
    may not have been executed by the device.
    """


def retry_call(
    op: Callable[[], T],
    *,
    retries: int,
    what: str,
    device: str | None = None,
    catch: tuple[type[DeviceError], ...] = (DeviceTimeout, ProtocolError),
    retry_if: Callable[[DeviceError], bool] | None = None,
    on_failure: Callable[[DeviceError, bool], None] | None = None,
    safe: bool | None = None,
) -> T:
    """Run ``op``; after a failure of a ``catch`` type it runs again, at most ``retries`` more times.

    ``retry_if(exc)`` False raises at once, untouched (the device's considered answer, e.g. a
    refused parameter). ``on_failure(exc, again)`` runs after each retryable failure (e.g. to
    reconnect, so a late reply on the old link is never read as an answer). ``safe`` states
    whether the operation may be repeated at all: ``False`` allows no retry, and either way the
    error that ends the call carries it as ``safe_to_retry`` for the lab OS. ``device`` names the
    device on the error (pure parsers raise with a generic one).
    """
    if safe is False:
        retries = 0
    attempt = 0
    while True:
        try:
            return op()
        except catch as exc:
            if device is not None:
                exc.device = device
            if retry_if is not None and not retry_if(exc):
                raise
            again = attempt < retries
            if on_failure is not None:
                on_failure(exc, again)
            if not again:
                if safe is not None:
                    exc.safe_to_retry = safe
                raise
            attempt += 1
            log.info("%s: retrying %s (%d/%d) after: %s", device or exc.device, what, attempt, retries, exc)


@runtime_checkable
class Transport(Protocol):
    """What drivers need from a link; both SerialLine and TcpLine satisfy it."""

    name: str
    timeout: float

    def write(self, data: bytes) -> None: ...
    def read_exact(self, n: int, timeout: float | None = None) -> bytes: ...
    def read_up_to(self, n: int, timeout: float | None = None) -> bytes: ...
    def read_until(self, terminator: bytes, timeout: float | None = None) -> bytes: ...
    def send_line(self, line: str) -> None: ...
    def read_line(self, timeout: float | None = None) -> str: ...
    def query(self, line: str, timeout: float | None = None, retries: int = 0) -> str: ...
    def flush_input(self) -> bytes: ...
    def close(self) -> None: ...


class LineTransport:
    """Buffered, line-oriented I/O over a raw byte link; subclasses supply ``_recv``/``_send``.

    ``eol`` is what :meth:`send_line` appends. Incoming lines end at ``\\n`` and a trailing ``\\r``
    is stripped, so a device that answers LF where CR LF is due still parses; a line that ends in
    a bare CR is reported as a :class:`ProtocolError` once the timeout passes.
    """

    def __init__(self, name: str, *, timeout: float = 2.0, eol: str = "\r\n", encoding: str = "ascii"):
        if timeout <= 0:
            raise ValueError(f"{name}: timeout must be positive, got {timeout}")
        self.name = name
        self.timeout = float(timeout)
        self.eol = eol
        self.encoding = encoding
        self._buf = bytearray()
        self._closed = False

    # -- raw link, implemented by subclasses ---------------------------------------------------
    def _recv(self, timeout: float) -> bytes:
        """Whatever bytes arrive within ``timeout`` (b'' if none). Raise ConnectionLost on EOF."""
        raise NotImplementedError

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _pending(self) -> bytes:
        """Bytes already waiting in the OS buffer, without blocking."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- byte API ------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"transport {self.name} is closed", device=self.name, safe_to_retry=False)

    def write(self, data: bytes) -> None:
        self._check_open()
        log.debug("%s > %r", self.name, bytes(data))
        try:
            self._send(bytes(data))
        except (OSError, serial.SerialException) as exc:
            raise ConnectionLost(f"write failed: {exc}", device=self.name) from exc

    def flush_input(self) -> bytes:
        """Discard bytes nobody asked for (a late reply to a timed-out command); returns them."""
        self._check_open()
        stale = bytes(self._buf) + self._pending()
        self._buf.clear()
        if stale:
            log.debug("%s discarded stale input %r", self.name, stale)
        return stale

    def pending(self) -> bytes:
        """Take bytes that are already here (buffered or in the OS) without waiting."""
        self._check_open()
        data = bytes(self._buf) + self._pending()
        self._buf.clear()
        if data:
            log.debug("%s < %r", self.name, data)
        return data

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        """Exactly ``n`` bytes, or DeviceTimeout naming what did arrive."""
        self._check_open()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                got = bytes(self._buf)
                self._buf.clear()
                if got:
                    log.debug("%s < %r (partial, wanted %d bytes)", self.name, got, n)
                raise DeviceTimeout(
                    f"timed out waiting for {n} bytes; received {len(got)}: {got!r}",
                    device=self.name,
                    code="timeout",
                )
            self._buf += self._recv(left)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        log.debug("%s < %r", self.name, data)
        return data

    def read_up_to(self, n: int, timeout: float | None = None) -> bytes:
        """At most ``n`` bytes: whatever arrived by the deadline (pyserial ``read`` semantics)."""
        self._check_open()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._buf += self._recv(left)
        data = bytes(self._buf[:n])
        del self._buf[:n]
        if data:
            log.debug("%s < %r", self.name, data)
        return data

    def read_until(self, terminator: bytes, timeout: float | None = None) -> bytes:
        """Bytes up to and including ``terminator``; DeviceTimeout (naming the partial data) if late."""
        self._check_open()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        start = 0
        while True:
            idx = self._buf.find(terminator, start)
            if idx >= 0:
                end = idx + len(terminator)
                data = bytes(self._buf[:end])
                del self._buf[:end]
                log.debug("%s < %r", self.name, data)
                return data
            start = max(0, len(self._buf) - len(terminator) + 1)
            left = deadline - time.monotonic()
            if left <= 0:
                partial = bytes(self._buf)
                self._buf.clear()
                if partial:
                    log.debug("%s < %r (partial)", self.name, partial)
                if partial.endswith(b"\r") and terminator == b"\n":
                    raise ProtocolError(
                        f"line ended with CR but no LF: {partial!r}", device=self.name, code="eol"
                    )
                if partial:
                    raise DeviceTimeout(
                        f"partial reply, no {terminator!r} within the timeout: {partial!r}",
                        device=self.name,
                        code="partial",
                    )
                raise DeviceTimeout("no reply within the timeout", device=self.name, code="timeout")
            self._buf += self._recv(left)

    # -- line API ------------------------------------------------------------------------------
    def send_line(self, line: str) -> None:
        try:
            data = (line + self.eol).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise ValueError(f"{self.name}: command {line!r} is not {self.encoding}") from exc
        self.write(data)

    def read_line(self, timeout: float | None = None) -> str:
        """One line without its ending; ProtocolError if it is not valid text."""
        raw = self.read_until(b"\n", timeout)
        try:
            return raw.decode(self.encoding).rstrip("\r\n")
        except UnicodeDecodeError:
            raise ProtocolError(f"reply is not {self.encoding} text: {raw!r}", device=self.name) from None

    def query(self, line: str, timeout: float | None = None, retries: int = 0) -> str:
        """Send one line and return the first reply line.

        Stale input is flushed first. With ``retries > 0`` (only for commands safe to repeat) a
        timeout or a lost connection is retried after reconnecting where possible.
        """

        def once() -> str:
            self.flush_input()
            self.send_line(line)
            return self.read_line(timeout)

        def reconnect_if_lost(exc: DeviceError, again: bool) -> None:
            if again and isinstance(exc, ConnectionLost):
                self.reconnect()

        return retry_call(
            once, retries=retries, what=repr(line), catch=(DeviceTimeout,), on_failure=reconnect_if_lost
        )

    def reconnect(self) -> None:
        """Re-open the link (TCP); a no-op where the link cannot drop (serial)."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            log.debug("%s closed", self.name)
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class SerialLine(LineTransport):
    """A serial port opened with pyserial (a real /dev/ttyUSBx or an emulator's /dev/pts/N)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        xonxoff: bool = False,
        timeout: float = 2.0,
        eol: str = "\r\n",
        encoding: str = "ascii",
        name: str | None = None,
    ):
        super().__init__(name or port, timeout=timeout, eol=eol, encoding=encoding)
        try:
            self.serial = serial.Serial(
                port=port,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=parity,
                stopbits=stopbits,
                xonxoff=xonxoff,
                timeout=timeout,
                write_timeout=timeout,
            )
        except (serial.SerialException, ValueError, termios.error) as exc:
            raise DeviceError(
                f"cannot open serial port {port}: {exc}", device=self.name, code="open"
            ) from exc
        self.port = port

    def _recv(self, timeout: float) -> bytes:
        # select + os.read on the port's descriptor: the same as pyserial's read, without
        # re-programming the port's timeout (a tcsetattr) on every call
        fd = getattr(self.serial, "fd", None)
        try:
            if fd is None:  # pragma: no cover - non-POSIX pyserial backends
                self.serial.timeout = timeout
                return self.serial.read(max(1, self.serial.in_waiting))
            ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
            if not ready:
                return b""
            data = os.read(fd, 4096)
        except (OSError, serial.SerialException) as exc:
            raise ConnectionLost(f"serial read failed: {exc}", device=self.name) from exc
        if not data:
            raise ConnectionLost("serial port returned no data (device gone?)", device=self.name, code="eof")
        return data

    def _pending(self) -> bytes:
        return self._recv(0.0)

    def _send(self, data: bytes) -> None:
        fd = getattr(self.serial, "fd", None)
        if fd is None:  # pragma: no cover - non-POSIX pyserial backends
            self.serial.write(data)
            return
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                n = 0
            view = view[n:]
            if view:
                if time.monotonic() > deadline:
                    raise DeviceTimeout(
                        "write timed out (output buffer full)", device=self.name, code="write"
                    )
                select.select([], [fd], [], max(0.0, deadline - time.monotonic()))

    def _close(self) -> None:
        self.serial.close()


class TcpLine(LineTransport):
    """A TCP connection; ``reconnect()`` opens a fresh one after the peer dropped it."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 2.0,
        connect_timeout: float | None = None,
        eol: str = "\n",
        encoding: str = "ascii",
        name: str | None = None,
    ):
        super().__init__(name or f"{host}:{port}", timeout=timeout, eol=eol, encoding=encoding)
        self.host = host
        self.port = int(port)
        self.connect_timeout = connect_timeout or timeout
        self.sock: socket.socket | None = None
        self._connect()

    def _connect(self) -> None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise ConnectionLost(
                f"cannot connect to {self.host}:{self.port}: {exc}", device=self.name, code="connect"
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        log.debug("%s connected", self.name)

    def reconnect(self) -> None:
        self._check_open()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:  # pragma: no cover - closing a broken socket
                pass
        self._buf.clear()
        self._connect()

    def _require_sock(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionLost("not connected", device=self.name)
        return self.sock

    def _recv(self, timeout: float) -> bytes:
        sock = self._require_sock()
        sock.settimeout(max(timeout, 1e-4))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise ConnectionLost(f"connection lost: {exc}", device=self.name) from exc
        if not data:
            raise ConnectionLost("connection closed by the device", device=self.name, code="eof")
        return data

    def _pending(self) -> bytes:
        sock = self._require_sock()
        out = bytearray()
        sock.setblocking(False)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break  # EOF: reported by the next read
                out += chunk
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            raise ConnectionLost(f"connection lost: {exc}", device=self.name) from exc
        finally:
            sock.setblocking(True)
        return bytes(out)

    def _send(self, data: bytes) -> None:
        sock = self._require_sock()
        sock.settimeout(self.timeout)
        sock.sendall(data)

    def _close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


class HttpLink:
    """One keep-alive HTTP/1.1 connection (standard-library :mod:`http.client`) with typed errors.

    Why not httpx: per request httpx spends about half a millisecond in Python (URL and header
    models, the h11 state machine), five or more times a loopback round trip, where http.client
    needs about a tenth of that; the robot APIs need nothing more than keep-alive, timeouts and
    JSON. A connection the server closed while idle is noticed before a request is sent on it, so
    a request with effects never goes out on a dead link; after any failure the connection is
    dropped, so a late reply is never read as the answer to the next request.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        name: str = "",
    ):
        if timeout <= 0:
            raise ValueError(f"{name or host}: timeout must be positive, got {timeout}")
        self.host, self.port = host, int(port)
        self.timeout = float(timeout)
        self.headers = dict(headers or {})
        self.name = name or f"{host}:{port}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and (conn.sock is None or select.select([conn.sock], [], [], 0)[0]):
            self.close()  # closed by the server while idle (or unsolicited bytes): not usable
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._conn = conn
        return conn

    def request(
        self, method: str, path: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request; returns (status, body bytes). DeviceTimeout / ConnectionLost /
        ProtocolError (a reply that is not HTTP, or cut short) on failure."""
        what = f"{method} {path}"
        log.debug("%s > %s %s", self.name, what, (body or b"")[:200])
        try:
            conn = self._connection()
            conn.request(method, path, body=body, headers={**self.headers, **(headers or {})})
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError as exc:
            self.close()
            raise DeviceTimeout(f"{what}: no reply in time", device=self.name, code="timeout") from exc
        except http.client.IncompleteRead as exc:
            self.close()
            raise ProtocolError(f"{what}: reply cut short: {exc}", device=self.name, code="partial") from exc
        except (ConnectionError, http.client.RemoteDisconnected) as exc:
            self.close()
            raise ConnectionLost(f"{what}: {type(exc).__name__}: {exc}", device=self.name) from exc
        except http.client.HTTPException as exc:
            self.close()
            raise ProtocolError(
                f"{what}: reply is not HTTP: {type(exc).__name__}: {exc}", device=self.name, code="garbage"
            ) from exc
        except OSError as exc:
            self.close()
            raise ConnectionLost(f"{what}: {exc}", device=self.name) from exc
        if resp.will_close:
            self.close()
        log.debug("%s < %s %r", self.name, resp.status, data[:500])
        return resp.status, data

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def __repr__(self) -> str:
        return f"HttpLink({self.name!r})"


def open_transport(
    *,
    name: str,
    port: str | None = None,
    host: str | None = None,
    tcp_port: int | None = None,
    **options,
) -> LineTransport:
    """A SerialLine for ``port`` or a TcpLine for ``host``+``tcp_port`` (as a DeviceSpec gives them)."""
    if port and host:
        raise ValueError(f"{name}: give either a serial port or a host, not both")
    if port:
        return SerialLine(port, name=name, **options)
    if host and tcp_port:
        return TcpLine(host, tcp_port, name=name, **options)
    raise ValueError(f"{name}: needs a serial port or a host and tcp_port")
