"""Round-trip latency of the MT-SICS, Modbus RTU and door drivers against the raw link.

Why: parsing, checks, retries and logging must stay cheap next to the wire (target: the driver
adds at most 2× the raw round trip). Each protocol runs against its emulator; the raw figure is a
bare pyserial port (or socket) sending the same request bytes and reading the complete reply, the
driver figure the public driver call that makes that request. Modbus iterations are spaced by
the inter-frame silence (3.5 characters) for both, so minimalmodbus's enforced pause is not
counted against either.
"""

from __future__ import annotations

import os
import select
import socket
import statistics
import time
from collections.abc import Callable

import serial

__all__ = ["measure_serial_protocols"]


def _timed(fn: Callable[[], object], n: int, gap_s: float = 0.0, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
        if gap_s:
            time.sleep(gap_s)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
        if gap_s:
            time.sleep(gap_s)
    return out


def _summary(name: str, n: int, driver: list[float], raw: list[float]) -> dict:
    d_us, r_us = statistics.median(driver) * 1e6, statistics.median(raw) * 1e6
    overhead = (d_us - r_us) / r_us if r_us > 0 else float("inf")
    return {
        "protocol": name,
        "n": n,
        "driver_us": round(d_us, 1),
        "raw_us": round(r_us, 1),
        "driver_p95_us": round(sorted(driver)[int(0.95 * (len(driver) - 1))] * 1e6, 1),
        "raw_p95_us": round(sorted(raw)[int(0.95 * (len(raw) - 1))] * 1e6, 1),
        "ratio": round(d_us / r_us, 3) if r_us > 0 else None,
        "overhead_ratio": round(overhead, 3),
        "within_target": overhead <= 2.0,
    }


def _raw_serial(path: str, request: bytes, reply_len: int | None) -> Callable[[], bytes]:
    """The bare link: a pyserial-opened port driven with os.write / select / os.read."""
    port = serial.Serial(path, timeout=1.0)
    fd = port.fd

    def rt() -> bytes:
        os.write(fd, request)
        buf = b""
        while (reply_len is None and not buf.endswith(b"\n")) or (
            reply_len is not None and len(buf) < reply_len
        ):
            if not select.select([fd], [], [], 1.0)[0]:
                raise TimeoutError("raw round trip got no reply")
            buf += os.read(fd, 4096)
        return buf

    rt.port = port  # type: ignore[attr-defined]
    return rt


def _mtsics(n: int) -> dict:
    from labos.drivers.registry import DeviceSpec, open_device
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.mtsics import MtSicsEmulator

    with MtSicsEmulator(WallClock()) as emu:
        raw = _raw_serial(emu.address["port"], b"SI\r\n", None)
        raw_t = _timed(raw, n)
        raw.port.close()  # type: ignore[attr-defined]
        dev = open_device(DeviceSpec(name="balance", kind="mtsics_balance", **emu.address))
        try:
            drv_t = _timed(lambda: dev.weight_mg(stable=False), n)
        finally:
            dev.close()
    return _summary("mtsics", n, drv_t, raw_t)


def _modbus(n: int) -> dict:
    from labos.drivers.registry import DeviceSpec, open_device
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.eurotherm import EurothermEmulator
    from labos.simulator.emulators.modbus import crc16

    baud = 115200  # a pty ignores the rate; it only sets minimalmodbus's inter-frame silence (1.75 ms)
    gap = 0.002
    with EurothermEmulator(WallClock()) as emu:
        req = bytes([1, 3, 0, 1, 0, 1])
        raw = _raw_serial(emu.address["port"], req + crc16(req), 7)
        raw_t = _timed(raw, n, gap)
        raw.port.close()  # type: ignore[attr-defined]
        dev = open_device(
            DeviceSpec(name="furnace", kind="eurotherm2416", **emu.address, options={"baudrate": baud})
        )
        try:
            drv_t = _timed(dev.pv, n, gap)
        finally:
            dev.close()
    return _summary("modbus_rtu", n, drv_t, raw_t)


def _door(n: int) -> dict:
    from labos.drivers.registry import DeviceSpec, open_device
    from labos.simulator.clock import WallClock
    from labos.simulator.emulators.door import DoorEmulator

    with DoorEmulator(WallClock()) as emu:
        addr = emu.address
        sock = socket.create_connection((addr["host"], addr["tcp_port"]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def raw() -> bytes:
            sock.sendall(b"Status\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionError("door emulator closed the connection")
                buf += chunk
            return buf

        raw_t = _timed(raw, n)
        sock.close()
        dev = open_device(DeviceSpec(name="door", kind="furnace_door", **addr))
        try:
            drv_t = _timed(dev.state, n)
        finally:
            dev.close()
    return _summary("door_tcp", n, drv_t, raw_t)


def measure_serial_protocols(n: int = 200) -> dict:
    """Median round trips (µs) of each of these drivers vs the raw link to the same emulator."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return {"mtsics": _mtsics(n), "modbus_rtu": _modbus(n), "door_tcp": _door(n)}
