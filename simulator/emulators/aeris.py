"""Malvern Panalytical Aeris emulator: the `@...@END` command port and the ``<id>.xrdml`` file drop.

One TCP connection per query on 127.0.0.1, as the instrument does. State: the sample changer's
slots, the samples it knows (added → measuring → measured), READY while idle. A scan takes
``scan_s`` clock seconds (30 min by default, virtual or real) and then writes ``<id>.xrdml`` into
the drop folder with :func:`labos.models.xrd.io.write_xrdml` from ``pattern_for(sample_id)``.

Faults (PROTOCOLS.md §7): :meth:`fatal_next` (a ``fatal`` reply), :meth:`stick_not_ready`
(READY=no forever), :meth:`occupy_slot`, :meth:`break_next_result` ("missing" or "truncated"
xrdml) and every link fault of :class:`~labos.simulator.emulators.WireFault` through
:meth:`inject` (``match`` is the request without its leading ``@``, e.g. ``"STATUS_REQUEST"``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labos.simulator.clock import Clock
from labos.simulator.emulators import Connection, LineEmulator

from labos.domain import XRDPattern

log = logging.getLogger("labos.simulator.emulators.aeris")

PatternWriter = Callable[[XRDPattern, Path, str], None]


def _default_writer(pattern: XRDPattern, path: Path, sample_id: str) -> None:
    from labos.models.xrd.io import write_xrdml

    write_xrdml(pattern, path, sample_id=sample_id)


@dataclass
class EmulatedSample:
    sample_id: str
    slot: int
    application: str
    state: str = "added"  # added | measuring | measured
    scan_started: float | None = None


class AerisEmulator(LineEmulator):
    """An Aeris on ``port`` (0 → the OS picks; see :attr:`port`) dropping results into ``result_dir``."""

    eol = b"\r\n"
    default_transport = "tcp"

    def __init__(
        self,
        result_dir: str | Path,
        pattern_for: Callable[[str], XRDPattern],
        clock: Clock | None = None,
        *,
        port: int = 0,
        slots: int = 10,
        scan_s: float = 1800.0,
        applications: set[str] | None = None,
        separator: str = "@",
        writer: PatternWriter | None = None,
        name: str = "aeris",
    ):
        if separator not in ("@", "\n"):
            raise ValueError("separator must be '@' or a newline")
        super().__init__(clock, name=name, tcp_port=port)
        self.result_dir = Path(result_dir)
        self.result_dir.mkdir(parents=True, exist_ok=True)
        self.pattern_for = pattern_for
        self.slots = slots
        self.scan_s = float(scan_s)
        self.applications = applications
        self.separator = separator
        self.writer = writer or _default_writer
        self.samples: dict[str, EmulatedSample] = {}
        self.foreign_slots: set[int] = set()
        self.scans_started: list[str] = []
        self.results_written: list[Path] = []
        self._fatal: list[tuple[str | None, str]] = []
        self._stuck = False
        self._result_fault: str | None = None

    @property
    def port(self) -> int:
        return self.address["tcp_port"]

    # -- fault injection -----------------------------------------------------------------------
    def fatal_next(self, match: str | None = None, reason: str = "instrument error") -> None:
        """The next request containing ``match`` (any request if None) fails with ``fatal``."""
        with self.lock:
            self._fatal.append((match, reason))

    def stick_not_ready(self, stuck: bool = True) -> None:
        """READY=no forever (e.g. the X-ray tube is warming up and never finishes)."""
        with self.lock:
            self._stuck = stuck

    def occupy_slot(self, slot: int) -> None:
        """Something the lab does not know about sits in ``slot``."""
        with self.lock:
            self.foreign_slots.add(slot)

    def break_next_result(self, kind: str) -> None:
        """The next finished scan drops no file (``"missing"``) or half a file (``"truncated"``)."""
        if kind not in ("missing", "truncated"):
            raise ValueError("kind must be 'missing' or 'truncated'")
        with self.lock:
            self._result_fault = kind

    # -- state -------------------------------------------------------------------------------
    def is_ready(self) -> bool:
        with self.lock:
            self.update()
            return not self._stuck and not any(s.state == "measuring" for s in self.samples.values())

    def slot_of(self, slot: int) -> str:
        with self.lock:
            taken = slot in self.foreign_slots or any(s.slot == slot for s in self.samples.values())
            return "occupied" if taken else "free"

    def update(self) -> None:
        """Finish scans whose time is up and drop their files."""
        with self.lock:
            now = self.clock.now()
            for sample in self.samples.values():
                started = sample.scan_started
                if sample.state == "measuring" and started is not None and now - started >= self.scan_s:
                    sample.state = "measured"
                    self._drop_result(sample.sample_id)

    def _drop_result(self, sample_id: str) -> None:
        fault, self._result_fault = self._result_fault, None
        if fault == "missing":
            log.info("aeris emulator: result for %s lost (injected)", sample_id)
            return
        path = self.result_dir / f"{sample_id}.xrdml"
        tmp = self.result_dir / f".{sample_id}.xrdml.part"
        try:
            self.writer(self.pattern_for(sample_id), tmp, sample_id)
        except Exception:
            log.exception("aeris emulator: could not write the result of %s", sample_id)
            tmp.unlink(missing_ok=True)
            return
        if fault == "truncated":
            data = tmp.read_bytes()
            tmp.write_bytes(data[: len(data) // 2])
        os.replace(tmp, path)
        self.results_written.append(path)

    # -- protocol ------------------------------------------------------------------------------
    def _reply(self, *tokens: str) -> str:
        if self.separator == "@":
            return "@" + "@".join(tokens) + "@END"
        return "\n".join(tokens) + "\nEND"

    def _fail(self, reason: str) -> str:
        return self._reply("fatal", f"REASON={reason}")

    def handle(self, request: str) -> str:
        """The reply to one ``@...@END`` request."""
        with self.lock:
            self.requests.append(request)
            self.update()
            for i, (match, reason) in enumerate(self._fatal):
                if match is None or match in request:
                    del self._fatal[i]
                    return self._fail(reason)
            tokens = [t for t in request.strip().split("@") if t]
            if not tokens or tokens[-1] != "END":
                return self._fail("malformed request")
            words = [t for t in tokens[:-1] if "=" not in t]
            fields = dict(t.split("=", 1) for t in tokens[:-1] if "=" in t)
            if words == ["STATUS_REQUEST"] and fields.get("UNIT") == "xrd":
                return self._reply(f"READY={'yes' if self.is_ready() else 'no'}")
            if words == ["STATUS_REQUEST"] and "LOCATION" in fields:
                m = re.fullmatch(r"0,(\d+)", fields["LOCATION"])
                if not m or not 1 <= int(m.group(1)) <= self.slots:
                    return self._fail(f"no such location {fields['LOCATION']}")
                return self._reply(f"STATE={self.slot_of(int(m.group(1)))}")
            if words[:1] == ["SAMPLE"] and len(words) == 2:
                sid = fields.get("SAMPLE_ID", "")
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", sid):
                    return self._fail("missing or bad SAMPLE_ID")
                return self._sample(words[1], sid, fields)
            return self._fail("unknown request")

    def _sample(self, action: str, sid: str, fields: dict[str, str]) -> str:
        app = fields.get("APPLICATION")
        if action == "ADD":
            m = re.fullmatch(r"0,(\d+)", fields.get("AT", ""))
            if not m or not 1 <= int(m.group(1)) <= self.slots:
                return self._fail("bad AT location")
            slot = int(m.group(1))
            if sid in self.samples:
                return self._fail(f"sample {sid} already known")
            if self.slot_of(slot) != "free":
                return self._fail(f"location 0,{slot} is occupied")
            if not app or (self.applications is not None and app not in self.applications):
                return self._fail(f"unknown application {app}")
            self.samples[sid] = EmulatedSample(sid, slot, app)
            return self._reply("ACK", f"SAMPLE_ID={sid}")
        sample = self.samples.get(sid)
        if sample is None:
            return self._fail(f"unknown sample {sid}")
        if action == "MEASURE":
            if not self.is_ready():
                return self._fail("instrument not ready")
            if sample.state != "added":
                return self._fail(f"sample {sid} is {sample.state}")
            if app and self.applications is not None and app not in self.applications:
                return self._fail(f"unknown application {app}")
            sample.state, sample.scan_started = "measuring", self.clock.now()
            self.scans_started.append(sid)
            self.call_at(sample.scan_started + self.scan_s, self.update)
            return self._reply("ACK", f"SAMPLE_ID={sid}")
        if action == "REMOVE":
            if sample.state == "measuring":
                return self._fail(f"sample {sid} is being measured")
            del self.samples[sid]
            return self._reply("ACK", f"SAMPLE_ID={sid}")
        return self._fail(f"unknown action {action}")

    def on_data(self, conn: Connection, data: bytes) -> None:
        """One request per connection, ended by ``@END``; the reply closes the connection."""
        conn.buffer += data
        if b"@END" not in conn.buffer:
            return
        request = conn.buffer.decode("ascii", "replace").strip()
        conn.buffer.clear()
        key = request.lstrip("@")
        with self.lock:
            if self.request_lost(conn, key):
                return
            self.reply(conn, self.handle(request), key, close_after=True)

    def other_reply(self, request: str, reply: str) -> str:
        return self._reply("STATE=free") if "UNIT=" in request else self._reply("READY=yes")
