"""Round-trip latency of the network drivers against a raw TCP round trip to the same emulator.

Why: a driver's parsing, checks and logging must stay cheap next to the wire (target: the driver
adds at most 2× the raw round trip). Each protocol is measured against its own emulator on
127.0.0.1: the raw figure is a bare socket sending the same request bytes and reading the reply;
the driver figure is the public driver call that makes that request. ``labos bench drivers``
(drivers-A) merges this into its report.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["measure_network_protocols"]


def _timed(fn: Callable[[], object], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
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


def _recv_until(sock: socket.socket, marker: bytes) -> bytes:
    buf = b""
    while marker not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def _ur(n: int) -> dict:
    from labos.drivers.ur import URArm
    from labos.simulator.emulators.ur import UREmulator

    with UREmulator() as emu:
        arm = URArm("127.0.0.1", dashboard_port=emu.dashboard_port, secondary_port=emu.secondary_port)
        raw = socket.create_connection(("127.0.0.1", emu.dashboard_port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _recv_until(raw, b"\n")

        def raw_rt() -> None:
            raw.sendall(b"safetystatus\n")
            _recv_until(raw, b"\n")

        try:
            driver = _timed(arm.safety_status, n)
            bare = _timed(raw_rt, n)
        finally:
            raw.close()
            arm.close()
    return _summary("UR dashboard: safetystatus (TCP line)", n, driver, bare)


def _aeris(n: int) -> dict:
    import numpy as np
    from labos.drivers.aeris import AerisXRD, format_message
    from labos.simulator.emulators.aeris import AerisEmulator

    from labos.domain import XRDPattern

    tt = np.linspace(10, 80, 100)
    pattern = XRDPattern(two_theta=tt.tolist(), counts=(100 + tt).tolist())
    with tempfile.TemporaryDirectory() as tmp, AerisEmulator(Path(tmp), lambda _sid: pattern) as emu:
        xrd = AerisXRD("127.0.0.1", emu.port, result_dir=tmp)
        message = (format_message("STATUS_REQUEST", UNIT="xrd") + "\r\n").encode()

        def raw_rt() -> None:
            with socket.create_connection(("127.0.0.1", emu.port)) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.sendall(message)
                _recv_until(s, b"END")

        driver = _timed(xrd.ready, n)
        bare = _timed(raw_rt, n)
        xrd.close()
    return _summary("Aeris: READY status (TCP, one connection per query)", n, driver, bare)


def _opentrons(n: int) -> dict:
    import httpx
    from labos.drivers.opentrons import OpentronsClient
    from labos.simulator.emulators.opentrons import EmulatedProtocol, EmulatedRun, OpentronsEmulator

    with OpentronsEmulator() as emu:
        proto = EmulatedProtocol("bench", "bench.py", "", {"id": "a", "result": "ok"}, 1.0)
        run = EmulatedRun("bench-run", proto)
        emu.protocols[proto.id], emu.runs[run.id] = proto, run
        client = OpentronsClient("127.0.0.1", emu.port)
        raw = socket.create_connection(("127.0.0.1", emu.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = f"GET /runs/{run.id} HTTP/1.1\r\nHost: 127.0.0.1\r\nOpentrons-Version: 3\r\n\r\n".encode()

        def raw_rt() -> None:
            raw.sendall(request)
            head = _recv_until(raw, b"\r\n\r\n")
            header, _, body = head.partition(b"\r\n\r\n")
            length = int(
                next(h for h in header.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
                    1
                ]
            )
            while len(body) < length:
                body += raw.recv(65536)

        library = httpx.Client(base_url=f"http://127.0.0.1:{emu.port}", headers={"Opentrons-Version": "3"})
        try:
            driver = _timed(lambda: client.run_status(run.id), n)
            bare = _timed(raw_rt, n)
            lib = _timed(lambda: library.get(f"/runs/{run.id}").json(), n)
        finally:
            raw.close()
            client.close()
            library.close()
    out = _summary("Opentrons HTTP: GET /runs/{id} (keep-alive)", n, driver, bare)
    # the HTTP client library alone (httpx, same request): most of the gap to a bare socket is here
    out["httpx_us"] = round(statistics.median(lib) * 1e6, 1)
    out["driver_over_httpx_ratio"] = round(out["driver_us"] / out["httpx_us"], 3)
    return out


def measure_network_protocols(n: int = 200) -> dict:
    """Median round trips (µs) of each network driver vs a raw socket to the same emulator."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return {"ur_dashboard": _ur(n), "aeris": _aeris(n), "opentrons_http": _opentrons(n)}
