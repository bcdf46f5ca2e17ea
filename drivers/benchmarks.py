"""Round-trip latency of each driver against the raw pty/TCP round trip to the same emulator.

Why: a driver's framing, parsing, checks, retries and logging must stay cheap next to the wire.
Target (issue 5): "the driver adds at most 2× the raw round trip", read as *added time ≤ 2 × raw*:
``overhead_ratio = (driver − raw) / raw ≤ 2`` (equivalently ``ratio = driver / raw ≤ 3``).

Each protocol runs against its own emulator in this process. The raw figure is a bare link (the
pyserial-opened pty descriptor, or a plain socket) sending the same request bytes and reading the
complete reply; the driver figure is the public driver call that makes that request. Raw and
driver round trips are measured in alternating blocks in the same invocation, so load on the
machine falls on both alike; medians (and p95) are reported. Modbus iterations are spaced by the
inter-frame silence (3.5 characters) on both sides, so minimalmodbus's enforced pause is not
counted against either.
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["PROTOCOLS", "TARGET_OVERHEAD_RATIO", "compare", "measure_protocols", "summarize"]

TARGET_OVERHEAD_RATIO = 2.0
TARGET_READING = "added time <= 2x raw: (driver_us - raw_us) / raw_us <= 2"


def compare(
    driver: Callable[[], object],
    raw: Callable[[], object],
    n: int,
    *,
    gap_s: float = 0.0,
    blocks: int = 5,
    warmup: int = 5,
) -> tuple[list[float], list[float]]:
    """``n`` timed calls of each, in alternating blocks (raw first); returns (driver, raw) seconds."""
    for fn in (raw, driver):
        for _ in range(warmup):
            fn()
            if gap_s:
                time.sleep(gap_s)
    times: tuple[list[float], list[float]] = ([], [])
    blocks = max(1, min(blocks, n))
    for b in range(blocks):
        size = n // blocks + (1 if b < n % blocks else 0)
        for fn, out in ((raw, times[1]), (driver, times[0])):
            for _ in range(size):
                t0 = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t0)
                if gap_s:
                    time.sleep(gap_s)
    return times


def _p95_us(samples: list[float]) -> float:
    return round(sorted(samples)[int(0.95 * (len(samples) - 1))] * 1e6, 1)


def summarize(request: str, driver: list[float], raw: list[float], **extra: Any) -> dict[str, Any]:
    """One protocol's row: medians in µs, ``ratio`` = driver/raw, ``overhead_ratio`` = added/raw."""
    d_us, r_us = statistics.median(driver) * 1e6, statistics.median(raw) * 1e6
    overhead = (d_us - r_us) / r_us if r_us > 0 else float("inf")
    return {
        "request": request,
        "n": len(driver),
        "driver_us": round(d_us, 1),
        "raw_us": round(r_us, 1),
        "ratio": round(d_us / r_us, 3) if r_us > 0 else None,
        "overhead_ratio": round(overhead, 3),
        "driver_p95_us": _p95_us(driver),
        "raw_p95_us": _p95_us(raw),
        "within_target": overhead <= TARGET_OVERHEAD_RATIO,
        **extra,
    }


# -- raw links ---------------------------------------------------------------------------------
class _RawSerial:
    """A pyserial-opened port driven with os.write / select / os.read: the bare pty round trip."""

    def __init__(self, path: str, request: bytes, reply_len: int | None):
        import serial

        self.port = serial.Serial(path, timeout=1.0)
        self.request, self.reply_len = request, reply_len

    def __call__(self) -> bytes:
        fd = self.port.fd
        os.write(fd, self.request)
        buf = b""
        while (self.reply_len is None and not buf.endswith(b"\n")) or (
            self.reply_len is not None and len(buf) < self.reply_len
        ):
            if not select.select([fd], [], [], 1.0)[0]:
                raise TimeoutError("raw round trip got no reply")
            buf += os.read(fd, 4096)
        return buf

    def close(self) -> None:
        self.port.close()


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_until(sock: socket.socket, marker: bytes, buf: bytes = b"") -> bytes:
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the emulator closed the connection")
        buf += chunk
    return buf


class _RawTcpLine:
    """A plain socket sending one request line and reading one reply line."""

    def __init__(self, port: int, request: bytes, *, greeting: bool = False):
        self.sock = _connect(port)
        self.request = request
        if greeting:
            _recv_until(self.sock, b"\n")

    def __call__(self) -> bytes:
        self.sock.sendall(self.request)
        return _recv_until(self.sock, b"\n")

    def close(self) -> None:
        self.sock.close()


# -- protocols ---------------------------------------------------------------------------------
def _through_registry(
    emu: Any,
    kind: str,
    call: Callable[[Any], object],
    raw: Callable[[], object],
    n: int,
    *,
    gap_s: float = 0.0,
    options: dict[str, Any] | None = None,
) -> tuple[list[float], list[float]]:
    """Open the ``kind`` driver on the running ``emu`` the way the lab does (the registry) and time
    ``call(driver)`` against ``raw``; closes both."""
    from labos.drivers.registry import DeviceSpec, open_device

    try:
        dev = open_device(DeviceSpec(name=kind, kind=kind, **emu.address, options=options or {}))
        try:
            return compare(lambda: call(dev), raw, n, gap_s=gap_s)
        finally:
            dev.close()
    finally:
        close = getattr(raw, "close", None)
        if close is not None:
            close()


def _mtsics(n: int) -> dict:
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.mtsics import MtSicsEmulator

    with MtSicsEmulator(WallClock()) as emu:
        raw = _RawSerial(emu.address["port"], b"SI\r\n", None)
        times = _through_registry(emu, "mtsics_balance", lambda dev: dev.weight_mg(stable=False), raw, n)
    return summarize("MT-SICS SI (immediate weight) over a pty", *times)


def _modbus(n: int) -> dict:
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.eurotherm import EurothermEmulator
    from labos.simulator.emulators.modbus import crc16

    with EurothermEmulator(WallClock()) as emu:
        req = bytes([1, 3, 0, 1, 0, 1])
        raw = _RawSerial(emu.address["port"], req + crc16(req), 7)
        # a pty ignores the baud rate; it only sets minimalmodbus's inter-frame silence (1.75 ms)
        options = {"baudrate": 115200}
        times = _through_registry(
            emu, "eurotherm2416", lambda dev: dev.pv(), raw, n, gap_s=0.002, options=options
        )
    return summarize("Modbus RTU read PV (fc 03, register 1) over a pty", *times)


class _RawModbusTcp:
    """A plain socket sending one MBAP request and reading the whole reply (header + length)."""

    def __init__(self, port: int, request: bytes):
        self.sock = _connect(port)
        self.request = request

    def __call__(self) -> bytes:
        self.sock.sendall(self.request)
        buf = b""
        while len(buf) < 6 or len(buf) < 6 + int.from_bytes(buf[4:6], "big"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the emulator closed the connection")
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()


class _RawBisynch(_RawSerial):
    """The bare pty round trip of one EI-Bisynch poll: until ETX and the BCC after it.

    The descriptor is opened with os.open, without pyserial: Linux keeps a pty at 8 bits, no
    parity, and refuses (EINVAL) a second termios call that asks only for 7E1, so the driver's
    7E1 open must be the only one that configures the port."""

    def __init__(self, path: str, request: bytes):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.request = request

    def __call__(self) -> bytes:
        os.write(self.fd, self.request)
        buf = b""
        while (k := buf.find(b"\x03")) < 0 or len(buf) < k + 2:
            if not select.select([self.fd], [], [], 1.0)[0]:
                raise TimeoutError("raw round trip got no reply")
            buf += os.read(self.fd, 4096)
        return buf

    def close(self) -> None:
        os.close(self.fd)


def _modbus_tcp(n: int) -> dict:
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.eurotherm_frontends import EurothermTcpEmulator

    with EurothermTcpEmulator(WallClock(), series="epc3016") as emu:
        raw = _RawModbusTcp(emu.address["tcp_port"], bytes.fromhex("000100000006010300010001"))
        times = _through_registry(emu, "epc3016", lambda dev: dev.pv(), raw, n)
    return summarize("Modbus TCP read PV (fc 03, register 1; pymodbus client), EPC3016", *times)


def _bisynch(n: int) -> dict:
    from labos.drivers.bisynch import poll_frame
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.eurotherm_frontends import EurothermBisynchEmulator

    with EurothermBisynchEmulator(WallClock()) as emu:
        raw = _RawBisynch(emu.address["port"], poll_frame(1, "PV"))
        times = _through_registry(emu, "eurotherm2416_bisynch", lambda dev: dev.pv(), raw, n)
    return summarize("EI-Bisynch poll PV over a pty", *times)


def _door(n: int) -> dict:
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.door import DoorEmulator

    with DoorEmulator(WallClock()) as emu:
        raw = _RawTcpLine(emu.address["tcp_port"], b"Status\n")
        times = _through_registry(emu, "furnace_door", lambda dev: dev.state(), raw, n)
    return summarize("door controller Status (TCP line)", *times)


def _ur(n: int) -> dict:
    from labos.simulator.emulators.ur import UREmulator

    with UREmulator() as emu:
        raw = _RawTcpLine(emu.dashboard_port, b"safetystatus\n", greeting=True)
        options = {"secondary_port": emu.secondary_port, "rtde_port": emu.rtde_port}
        times = _through_registry(emu, "ur", lambda dev: dev.safety_status(), raw, n, options=options)
    return summarize("UR dashboard safetystatus (TCP line)", *times)


class _RawRTDE:
    """A plain socket with the driver's RTDE subscription: start, read the first data package, pause."""

    def __init__(self, port: int, outputs: tuple[str, ...], frequency_hz: float):
        import struct

        self.sock = _connect(port)
        self.buf = b""
        self._ask(b"V", struct.pack(">H", 2))
        self._ask(b"O", struct.pack(">d", frequency_hz) + ",".join(outputs).encode())

    def _packet(self) -> tuple[bytes, bytes]:
        while len(self.buf) < 3 or len(self.buf) < int.from_bytes(self.buf[:2], "big"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the emulator closed the RTDE connection")
            self.buf += chunk
        size = int.from_bytes(self.buf[:2], "big")
        ptype, payload, self.buf = self.buf[2:3], self.buf[3:size], self.buf[size:]
        return ptype, payload

    def _ask(self, ptype: bytes, payload: bytes = b"") -> bytes:
        self.sock.sendall((3 + len(payload)).to_bytes(2, "big") + ptype + payload)
        while True:
            got, body = self._packet()
            if got == ptype:
                return body

    def __call__(self) -> bytes:
        self._ask(b"S")
        while (sample := self._packet())[0] != b"U":
            pass
        self._ask(b"P")
        return sample[1]

    def close(self) -> None:
        self.sock.close()


def _ur_rtde(n: int) -> dict:
    from labos.drivers.registry import DeviceSpec, open_device
    from labos.simulator.emulators.ur import UREmulator

    with UREmulator() as emu:
        options = {"secondary_port": emu.secondary_port, "rtde_port": emu.rtde_port}
        spec = DeviceSpec(
            name="ur", kind="ur", host="127.0.0.1", tcp_port=emu.dashboard_port, options=options
        )
        dev = open_device(spec)
        try:
            raw = _RawRTDE(emu.rtde_port, dev._rtde_outputs, dev.rtde_frequency_hz)  # the same subscription
            try:
                times = compare(dev.rtde_state, raw, n)
            finally:
                raw.close()
        finally:
            dev.close()
    return summarize("UR RTDE sample (start, first data package, pause; TCP binary)", *times)


def _aeris(n: int) -> dict:
    import numpy as np
    from labos.drivers.aeris import format_message
    from labos.simulator.emulators.aeris import AerisEmulator

    from labos.domain import XRDPattern

    tt = np.linspace(10, 80, 100)
    pattern = XRDPattern(two_theta=tt.tolist(), counts=(100 + tt).tolist())
    with tempfile.TemporaryDirectory() as tmp, AerisEmulator(Path(tmp), lambda _sid: pattern) as emu:
        message = (format_message("STATUS_REQUEST", UNIT="xrd") + "\r\n").encode()

        def raw() -> None:  # one connection per query, like the instrument and the driver
            with _connect(emu.port) as s:
                s.sendall(message)
                _recv_until(s, b"END")

        times = _through_registry(emu, "aeris", lambda dev: dev.ready(), raw, n, options={"result_dir": tmp})
    return summarize("Aeris READY status (TCP, one connection per query)", *times)


def _opentrons(n: int) -> dict:
    import httpx
    from labos.simulator.emulators.opentrons import EmulatedProtocol, EmulatedRun, OpentronsEmulator

    with OpentronsEmulator() as emu:
        proto = EmulatedProtocol("bench", "bench.py", "", {"id": "a", "result": "ok"}, 1.0)
        run = EmulatedRun("bench-run", proto)
        emu.protocols[proto.id], emu.runs[run.id] = proto, run
        request = f"GET /runs/{run.id} HTTP/1.1\r\nHost: 127.0.0.1\r\nOpentrons-Version: 3\r\n\r\n".encode()

        class Raw:  # keep-alive, like the driver: send the request, read head + Content-Length body
            def __init__(self) -> None:
                self.sock = _connect(emu.port)

            def __call__(self) -> None:
                self.sock.sendall(request)
                head, _, body = _recv_until(self.sock, b"\r\n\r\n").partition(b"\r\n\r\n")
                length = next(
                    int(h.split(b":", 1)[1])
                    for h in head.split(b"\r\n")
                    if h.lower().startswith(b"content-length")
                )
                while len(body) < length:
                    body += self.sock.recv(65536)

            def close(self) -> None:
                self.sock.close()

        times = _through_registry(emu, "opentrons", lambda dev: dev.run_status(run.id), Raw(), n)
        # for reference: the same request through a persistent httpx.Client (the driver's earlier stack)
        with httpx.Client(base_url=f"http://127.0.0.1:{emu.port}", headers={"Opentrons-Version": "3"}) as lib:
            raw = Raw()
            try:
                httpx_t, raw_t = compare(lambda: lib.get(f"/runs/{run.id}").json(), raw, n)
            finally:
                raw.close()
    ref = summarize("same request through httpx.Client (keep-alive)", httpx_t, raw_t)
    return summarize(
        "Opentrons HTTP GET /runs/{id} (keep-alive; driver on http.client)",
        *times,
        httpx_reference={k: ref[k] for k in ("request", "driver_us", "raw_us", "ratio", "overhead_ratio")},
    )


#: protocol name -> measurement (serial-line protocols first, then the network ones)
PROTOCOLS: dict[str, Callable[[int], dict]] = {
    "mtsics": _mtsics,
    "modbus_rtu": _modbus,
    "modbus_tcp": _modbus_tcp,
    "ei_bisynch": _bisynch,
    "door_tcp": _door,
    "ur_dashboard": _ur,
    "ur_rtde": _ur_rtde,
    "aeris": _aeris,
    "opentrons_http": _opentrons,
}


def measure_protocols(n: int = 200, protocols: Iterable[str] | None = None) -> dict[str, dict]:
    """Median round trips (µs) of each driver vs the raw link to the same emulator."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    names = list(PROTOCOLS) if protocols is None else list(protocols)
    unknown = [p for p in names if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; known: {', '.join(PROTOCOLS)}")
    return {name: PROTOCOLS[name](n) for name in names}
