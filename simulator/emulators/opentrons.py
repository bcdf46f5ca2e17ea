"""Opentrons robot-server emulator: the HTTP API of an OT-2/Flex on 127.0.0.1 (port 31950 role).

Uploaded protocols are really analysed with ``opentrons.simulate`` (through
:func:`labos.drivers.opentrons.simulate_protocol`); a run of a protocol whose analysis failed fails.
A run takes the time the simulation's steps would take on the clock (virtual or real), so its
status goes idle → running → succeeded as the clock advances; pause, stop and the door behave as
on the robot (opening the door blocks a running run; after closing it the run stays paused until
``play``). Every request must carry the ``Opentrons-Version`` header, else 422.

Faults (PROTOCOLS.md §7): :meth:`fail_next_run` (status ``failed`` part-way), :meth:`open_door` /
:meth:`close_door` (``blocked-by-open-door``), :meth:`strip_version_header` (422 as if the header
were missing) and every link fault of :class:`~labos.simulator.emulators.WireFault` through
:meth:`inject` (``match`` is a ``"METHOD /path"`` prefix): no reply, partial body, late reply,
dropped connection, garbage, wrong line ending (bare CR in the head), a reply meant for another
request. HTTP parsing is the standard library's :mod:`http.server`, one thread per connection.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import json
import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from labos.simulator.clock import Clock
from labos.simulator.emulators import Emulator, WireFault

log = logging.getLogger("labos.simulator.emulators.opentrons")


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class EmulatedProtocol:
    id: str
    name: str
    text: str
    analysis: dict[str, Any]
    duration_s: float
    created: str = field(default_factory=_now_iso)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created,
            "protocolType": "python",
            "files": [{"name": self.name, "role": "main"}],
            "metadata": {},
            "analysisSummaries": [{"id": self.analysis["id"], "status": "completed"}],
        }


@dataclass
class EmulatedRun:
    id: str
    protocol: EmulatedProtocol
    status: str = "idle"
    progress_s: float = 0.0  # protocol time done
    resumed_at: float | None = None  # clock time when it last started running
    fail_at_s: float | None = None
    fail_error: str = ""
    stop_at: float | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    created: str = field(default_factory=_now_iso)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": self.created,
            "status": self.status,
            "current": self.status not in ("stopped", "failed", "succeeded"),
            "protocolId": self.protocol.id,
            "actions": self.actions,
            "errors": self.errors,
            "labware": [],
            "pipettes": [],
        }


class OpentronsEmulator(Emulator):
    """An Opentrons robot server; ``port`` 0 lets the OS choose (see :attr:`port`)."""

    default_transport = "tcp"

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        port: int = 0,
        robot: str = "OT-2",
        step_s: float | None = None,
        name: str = "opentrons",
    ):
        super().__init__(clock, name=name, tcp_port=port)
        self.robot = robot
        self.step_s = step_s  # fixed duration per simulated step (None: the report's estimate)
        self.protocols: dict[str, EmulatedProtocol] = {}
        self.runs: dict[str, EmulatedRun] = {}
        self.requests: list[tuple[str, str]] = []
        self.plays: list[str] = []
        self.door_open = False
        self._strip_header = 0
        self._fail_next: tuple[float, str] | None = None
        emulator = self

        class Handler(_Handler):
            emu = emulator

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def address(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "tcp_port": self.port}

    def start(self, transport: str | None = None) -> OpentronsEmulator:
        if transport not in (None, "tcp"):
            raise ValueError(f"{self.name}: the robot server speaks HTTP over TCP only")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def __enter__(self) -> OpentronsEmulator:
        return self.start()

    # -- fault injection -----------------------------------------------------------------------
    def fail_next_run(self, at_fraction: float = 0.5, error: str = "Pipette overpressure detected") -> None:
        """The next run that plays fails with ``error`` after ``at_fraction`` of its duration."""
        with self.lock:
            self._fail_next = (float(at_fraction), error)

    def open_door(self) -> None:
        with self.lock:
            self._update()
            self.door_open = True
            for run in self.runs.values():
                if run.status == "running":
                    self._pause(run, "blocked-by-open-door")

    def close_door(self) -> None:
        with self.lock:
            self._update()
            self.door_open = False
            for run in self.runs.values():
                if run.status == "blocked-by-open-door":
                    run.status = "paused"

    def strip_version_header(self, count: int = 1) -> None:
        """The next ``count`` requests are treated as if they had no Opentrons-Version header."""
        with self.lock:
            self._strip_header += count

    # -- run state -----------------------------------------------------------------------------
    def _pause(self, run: EmulatedRun, status: str) -> None:
        if run.resumed_at is not None:
            run.progress_s += self.clock.now() - run.resumed_at
            run.resumed_at = None
        run.status = status

    def _update(self) -> None:
        now = self.clock.now()
        for run in self.runs.values():
            if run.status == "stop-requested" and run.stop_at is not None and now >= run.stop_at:
                run.status = "stopped"
            if run.status != "running" or run.resumed_at is None:
                continue
            done = run.progress_s + (now - run.resumed_at)
            if run.fail_at_s is not None and done >= run.fail_at_s:
                run.progress_s, run.resumed_at, run.status = run.fail_at_s, None, "failed"
                run.errors.append(
                    {"id": str(uuid.uuid4()), "errorType": "PipetteOverpressure", "detail": run.fail_error}
                )
            elif done >= run.protocol.duration_s:
                run.progress_s, run.resumed_at, run.status = run.protocol.duration_s, None, "succeeded"

    def _active(self) -> EmulatedRun | None:
        for run in self.runs.values():
            if run.status in (
                "idle",
                "running",
                "paused",
                "blocked-by-open-door",
                "finishing",
                "stop-requested",
            ):
                return run
        return None

    # -- endpoints -----------------------------------------------------------------------------
    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path))
            self._update()
            version = headers.get("opentrons-version")
            if self._strip_header > 0:
                self._strip_header -= 1
                version = None
            if not version:
                return 422, _errors(
                    "InvalidRequest",
                    "Opentrons-Version header is required",
                    source={"header": "Opentrons-Version"},
                )
            if method == "GET" and path == "/health":
                return 200, {
                    "name": "labos-emulated",
                    "robot_model": "OT-3 Standard" if self.robot == "Flex" else "OT-2 Standard",
                    "api_version": "8.8.2",
                    "links": {},
                }
            if method == "POST" and path == "/protocols":
                return self._upload(headers.get("content-type", ""), body)
            m = re.fullmatch(r"/protocols/([\w-]+)(/analyses)?", path)
            if method == "GET" and m:
                proto = self.protocols.get(m.group(1))
                if proto is None:
                    return 404, _errors("ProtocolNotFound", f"protocol {m.group(1)} not found")
                return 200, {"data": [proto.analysis]} if m.group(2) else {"data": proto.as_json()}
            if method == "POST" and path == "/runs":
                return self._create_run(body)
            if method == "GET" and path == "/runs":
                return 200, {"data": [r.as_json() for r in self.runs.values()]}
            m = re.fullmatch(r"/runs/([\w-]+)(/actions)?", path)
            if m:
                run = self.runs.get(m.group(1))
                if run is None:
                    return 404, _errors("RunNotFound", f"run {m.group(1)} not found")
                if method == "GET" and not m.group(2):
                    return 200, {"data": run.as_json()}
                if method == "POST" and m.group(2):
                    return self._action(run, body)
            return 404, _errors("RouteNotFound", f"{method} {path} does not exist")

    def _upload(self, content_type: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if not content_type.startswith("multipart/form-data"):
            return 422, _errors("InvalidRequest", "expected multipart/form-data with files=")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        files = [p for p in msg.iter_parts() if p.get_param("name", header="content-disposition") == "files"]
        if len(files) != 1 or not files[0].get_filename():
            return 422, _errors("InvalidRequest", "expected exactly one protocol file in files=")
        name = files[0].get_filename()
        text = files[0].get_payload(decode=True).decode("utf-8", "replace")
        analysis, duration = self._analyse(text, name)
        proto = EmulatedProtocol(str(uuid.uuid4()), name, text, analysis, duration)
        self.protocols[proto.id] = proto
        return 201, {"data": proto.as_json()}

    def _analyse(self, text: str, name: str) -> tuple[dict[str, Any], float]:
        from labos.drivers.opentrons import ProtocolCheckError, simulate_protocol

        analysis: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "status": "completed",
            "errors": [],
            "commands": [],
        }
        try:
            report = simulate_protocol(text, name)
        except ProtocolCheckError as exc:
            analysis.update(
                result="not-ok",
                errors=[{"id": str(uuid.uuid4()), "errorType": "AnalysisError", "detail": str(exc)}],
            )
            return analysis, 1.0
        if report.robot != self.robot:
            detail = f"protocol is for an {report.robot}; this robot is an {self.robot}"
            analysis.update(
                result="not-ok",
                errors=[{"id": str(uuid.uuid4()), "errorType": "RobotTypeMismatch", "detail": detail}],
            )
            return analysis, 1.0
        analysis.update(
            result="ok", commands=[{"commandType": "legacyCommand", "text": s} for s in report.steps]
        )
        duration = self.step_s * len(report.steps) if self.step_s is not None else report.duration_estimate_s
        return analysis, max(duration, 1e-3)

    def _create_run(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            pid = json.loads(body or b"{}")["data"]["protocolId"]
        except (ValueError, KeyError, TypeError):
            return 422, _errors("InvalidRequest", "body must be {'data': {'protocolId': ...}}")
        proto = self.protocols.get(pid)
        if proto is None:
            return 404, _errors("ProtocolNotFound", f"protocol {pid} not found")
        active = self._active()
        if active is not None:
            return 409, _errors("RunAlreadyActive", f"run {active.id} is still active")
        run = EmulatedRun(str(uuid.uuid4()), proto)
        self.runs[run.id] = run
        return 201, {"data": run.as_json()}

    def _action(self, run: EmulatedRun, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            kind = json.loads(body or b"{}")["data"]["actionType"]
        except (ValueError, KeyError, TypeError):
            return 422, _errors("InvalidRequest", "body must be {'data': {'actionType': ...}}")
        now = self.clock.now()
        if kind == "play":
            if run.status not in ("idle", "paused"):
                return 409, _errors("RunActionNotAllowed", f"cannot play a run that is {run.status}")
            self.plays.append(run.id)
            if run.protocol.analysis.get("result") != "ok":
                run.status = "failed"
                run.errors = list(run.protocol.analysis["errors"])
            elif self.door_open:
                run.status = "blocked-by-open-door"
            else:
                if run.status == "idle" and self._fail_next is not None:
                    frac, error = self._fail_next
                    self._fail_next = None
                    run.fail_at_s, run.fail_error = frac * run.protocol.duration_s, error
                run.status, run.resumed_at = "running", now
        elif kind == "pause":
            if run.status != "running":
                return 409, _errors("RunActionNotAllowed", f"cannot pause a run that is {run.status}")
            self._pause(run, "paused")
        elif kind == "stop":
            if run.status in ("stopped", "failed", "succeeded"):
                return 409, _errors("RunActionNotAllowed", f"run is already {run.status}")
            self._pause(run, "stop-requested")
            run.stop_at = now + 1.0
        else:
            return 422, _errors("InvalidRequest", f"unknown actionType {kind!r}")
        action = {"id": str(uuid.uuid4()), "actionType": kind, "createdAt": _now_iso()}
        run.actions.append(action)
        return 201, {"data": action}


def _errors(kind: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"errors": [{"id": kind, "title": kind, "detail": detail, **extra}]}


class _Handler(BaseHTTPRequestHandler):
    emu: OpentronsEmulator
    protocol_version = "HTTP/1.1"
    server_version = "labos-opentrons-emulator"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s", format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        key = f"{self.command} {path}"
        lost = self.emu.faults.take(key, inbound=True)
        if lost is not None:  # the request never reached the robot
            self._fail(lost.fault, 0, b"")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, payload = self.emu.handle(self.command, path, headers, body)
        data = json.dumps(payload).encode()
        fault = self.emu.faults.take(key)
        if fault is None:
            self._send(status, data)
        elif fault.fault is WireFault.LATE:
            time.sleep(fault.delay_s)
            self._send(status, data)
        else:
            self._fail(fault.fault, status, data)

    def _fail(self, fault: WireFault, status: int, data: bytes) -> None:
        """Answer with ``fault`` instead of the plain reply (``status``, JSON ``data``)."""
        if fault is WireFault.NO_REPLY:
            self._hold()
        elif fault is WireFault.PARTIAL:
            self._send(status, data, cut=True)
        elif fault is WireFault.DROP:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif fault is WireFault.GARBAGE:
            self.wfile.write(self.emu.garbage() + b"\r\n\r\n")
            self.close_connection = True
        elif fault is WireFault.WRONG_EOL:
            head = f"HTTP/1.1 {status} X\rContent-Type: application/json\rContent-Length: {len(data)}\r\r"
            self.wfile.write(head.encode() + data)
            self.close_connection = True
        elif fault is WireFault.OTHER_REPLY:
            other = {"data": {"id": "not-what-you-asked", "protocolType": "python"}}
            self._send(200, json.dumps(other).encode())
        else:  # pragma: no cover - inject() admits only the link faults
            raise AssertionError(fault)

    def _send(self, status: int, data: bytes, cut: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if cut else data)
        if cut:
            self.wfile.flush()
            self.close_connection = True

    def _hold(self) -> None:
        """Say nothing until the client gives up and closes the connection."""
        self.close_connection = True
        try:
            self.connection.settimeout(60)
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    do_GET = do_POST = do_DELETE = do_PATCH = _serve
