"""Malvern Panalytical Aeris diffractometer: `@...@END` TCP commands, results as an ``<id>.xrdml`` drop.

The instrument opens one TCP connection per query (port 702), answers a status request with
``READY=yes|no`` or ``STATE=free|occupied`` and signals failure with a reply that contains
``fatal``. The reply field separator is not documented (``@`` or newline), so both are accepted.
The scan result is a file ``<sample id>.xrdml`` in a shared folder; it is read with the one
pattern reader of labos (:func:`labos.models.xrd.io.read_pattern`).

Only status requests are retried; adding, measuring and removing a sample are sent exactly once.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.registry import DeviceSpec, construct, lab_context, register_kind
from labos.drivers.transport import ConnectionLost, TcpLine, retry_call
from labos.simulator.clock import Clock, WallClock

from labos.domain import XRDPattern
from labos.errors import ConfigError

log = logging.getLogger("labos.drivers.aeris")

SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_FIELD = re.compile(r"[^@=\r\n]+")
DEFAULT_APPLICATION = "labos_10-80deg"


# -- message format (pure; fuzzed in the tests) -----------------------------------------------
def format_message(*parts: str, **fields: str | int) -> str:
    """``format_message("SAMPLE", "REMOVE", SAMPLE_ID="s1")`` → ``@SAMPLE@REMOVE@SAMPLE_ID=s1@END``."""
    tokens = []
    for p in parts:
        if not _FIELD.fullmatch(p):
            raise ValueError(f"aeris: command word {p!r} may not contain '@', '=' or a line break")
        tokens.append(p)
    for key, value in fields.items():
        text = str(value)
        if not _FIELD.fullmatch(key) or not _FIELD.fullmatch(text):
            raise ValueError(f"aeris: field {key}={text!r} may not contain '@', '=' or a line break")
        tokens.append(f"{key}={text}")
    return "@" + "@".join(tokens) + "@END"


@dataclass(frozen=True)
class AerisReply:
    raw: str
    fields: dict[str, str] = field(default_factory=dict)  # keys upper-case
    flags: tuple[str, ...] = ()

    @property
    def fatal(self) -> bool:
        return "fatal" in self.raw.lower()

    def get(self, key: str) -> str | None:
        return self.fields.get(key.upper())


def parse_reply(raw: str) -> AerisReply:
    """Split a reply on ``@`` and line breaks into KEY=value fields and bare flags.

    The reply must end with ``END``; ProtocolError names what arrived otherwise.
    """
    if not isinstance(raw, str) or any(ord(c) < 9 or 13 < ord(c) < 32 or ord(c) > 126 for c in raw):
        raise ProtocolError(f"reply is not printable text: {raw!r}", device="aeris", code="garbage")
    tokens = [t.strip() for t in re.split(r"[@\r\n]", raw)]
    tokens = [t for t in tokens if t]
    if not tokens or tokens[-1].upper() != "END":
        raise ProtocolError(f"reply does not end with END: {raw!r}", device="aeris", code="partial")
    fields: dict[str, str] = {}
    flags: list[str] = []
    for tok in tokens[:-1]:
        if "=" in tok:
            key, _, value = tok.partition("=")
            fields[key.strip().upper()] = value.strip()
        else:
            flags.append(tok)
    return AerisReply(raw=raw, fields=fields, flags=tuple(flags))


def parse_ready(reply: AerisReply) -> bool:
    value = (reply.get("READY") or "").lower()
    if value not in ("yes", "no"):
        raise ProtocolError(f"expected READY=yes|no, got {reply.raw!r}", device="aeris", code="reply")
    return value == "yes"


def parse_slot_state(reply: AerisReply) -> str:
    value = (reply.get("STATE") or "").lower()
    if value not in ("free", "occupied"):
        raise ProtocolError(f"expected STATE=free|occupied, got {reply.raw!r}", device="aeris", code="reply")
    return value


def check_sample_id(sample_id: str) -> str:
    """Sample ids become file names: letters, digits, ``_.-`` only (no path separators)."""
    if not isinstance(sample_id, str) or not SAMPLE_ID.fullmatch(sample_id):
        raise ValueError(
            f"aeris: sample id {sample_id!r} must be 1-64 of A-Z a-z 0-9 _ . - (starting alphanumeric)"
        )
    return sample_id


# -- the driver -------------------------------------------------------------------------------
class AerisXRD:
    """An Aeris-style diffractometer (satisfies ``Diffractometer``)."""

    def __init__(
        self,
        host: str,
        port: int = 702,
        *,
        result_dir: str | Path,
        application: str = DEFAULT_APPLICATION,
        slots: int = 10,
        timeout_s: float = 5.0,
        retries: int = 2,
        poll_s: float = 1.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "aeris",
    ):
        self.host, self.port, self.name = host, int(port), name
        self.result_dir = Path(result_dir)
        self.application = application
        self.slots = slots
        self.timeout_s = timeout_s
        self.retries = retries
        self.poll_s = poll_s
        self.clock = clock or WallClock()
        self._sleep = sleep
        self._patterns: dict[str, XRDPattern] = {}
        self._closed = False

    # -- plumbing ------------------------------------------------------------------------------
    def _exchange(self, message: str) -> AerisReply:
        """One connection, one message, one reply."""
        if self._closed:
            raise ConnectionLost("driver is closed", device=self.name)
        link = TcpLine(self.host, self.port, timeout=self.timeout_s, eol="\r\n", name=self.name)
        try:
            link.send_line(message)
            try:
                raw = link.read_until(b"END")
            except ConnectionLost as exc:
                partial = link.pending() if not link.closed else b""
                if partial:
                    raise ProtocolError(
                        f"connection closed in the middle of a reply: {partial!r}",
                        device=self.name,
                        code="partial",
                    ) from exc
                raise
        finally:
            link.close()
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(f"reply is not ASCII: {raw!r}", device=self.name, code="garbage") from None
        try:
            reply = parse_reply(text)
        except ProtocolError as exc:
            exc.device = self.name
            raise
        if reply.fatal:
            raise DeviceFault(
                f"instrument reported a fatal error: {text.strip()}", device=self.name, code="fatal"
            )
        return reply

    def _query(self, message: str, parse: Callable[[AerisReply], object], *, safe: bool):
        """One query (one connection); repeated on a new connection only when ``safe``."""
        return retry_call(
            lambda: parse(self._exchange(message)),
            retries=self.retries,
            safe=safe,
            what=message,
            device=self.name,
        )

    @staticmethod
    def _acknowledged(reply: AerisReply) -> AerisReply:
        """Commands are acknowledged by any complete reply without ``fatal``."""
        return reply

    # -- commands ------------------------------------------------------------------------------
    def ready(self) -> bool:
        return self._query(format_message("STATUS_REQUEST", UNIT="xrd"), parse_ready, safe=True)

    def slot_state(self, slot: int) -> str:
        self._check_slot(slot)
        return self._query(
            format_message("STATUS_REQUEST", LOCATION=f"0,{slot}"), parse_slot_state, safe=True
        )

    def _check_slot(self, slot: int) -> None:
        if not isinstance(slot, int) or not 1 <= slot <= self.slots:
            raise ValueError(f"{self.name}: slot must be 1..{self.slots}, got {slot!r}")

    def wait_ready(self, timeout_s: float) -> None:
        """Poll READY until yes; DeviceTimeout (safe to retry) after ``timeout_s``."""
        t0 = self.clock.now()
        while not self.ready():
            if self.clock.now() - t0 >= timeout_s:
                raise DeviceTimeout(
                    f"instrument not READY after {timeout_s:g} s",
                    device=self.name,
                    code="not_ready",
                    safe_to_retry=True,
                )
            self._sleep(self.poll_s)

    def add_sample(self, sample_id: str, slot: int, application: str | None = None) -> None:
        """Register the sample the robot put in ``slot``; refuses an occupied slot before sending."""
        check_sample_id(sample_id)
        self._check_slot(slot)
        if self.slot_state(slot) != "free":
            raise DeviceBusy(f"slot {slot} is occupied", device=self.name, code="occupied")
        msg = format_message(
            "SAMPLE", "ADD", APPLICATION=application or self.application, SAMPLE_ID=sample_id, AT=f"0,{slot}"
        )
        self._query(msg, self._acknowledged, safe=False)

    def measure(self, sample_id: str, application: str | None = None) -> None:
        """Start the scan (sent once). Refuses while the instrument is not READY."""
        check_sample_id(sample_id)
        if not self.ready():
            raise DeviceBusy(
                "instrument is not READY", device=self.name, code="not_ready", safe_to_retry=True
            )
        stale = self.result_path(sample_id)
        if stale.exists():
            raise DeviceError(
                f"{stale} already exists; a new scan of {sample_id!r} would be confused with it",
                device=self.name,
                code="stale_result",
            )
        msg = format_message(
            "SAMPLE", "MEASURE", SAMPLE_ID=sample_id, APPLICATION=application or self.application
        )
        self._query(msg, self._acknowledged, safe=False)

    def remove_sample(self, sample_id: str) -> None:
        check_sample_id(sample_id)
        self._query(format_message("SAMPLE", "REMOVE", SAMPLE_ID=sample_id), self._acknowledged, safe=False)

    # -- results -------------------------------------------------------------------------------
    def result_path(self, sample_id: str) -> Path:
        return self.result_dir / f"{check_sample_id(sample_id)}.xrdml"

    def wait_for_result(self, sample_id: str, timeout_s: float = 3600.0) -> Path:
        """Wait for ``<id>.xrdml`` to appear, stop growing and parse; returns its path.

        DeviceTimeout when no file came; ProtocolError when a file came but stayed unreadable
        (truncated) until the timeout.
        """
        from labos.models.xrd.io import PatternFormatError, read_pattern

        path = self.result_path(sample_id)
        t0 = self.clock.now()
        last_size, problem = -1, ""
        while True:
            if path.exists():
                size = path.stat().st_size
                if size == last_size:  # stopped growing since the last poll
                    try:
                        self._patterns[sample_id] = read_pattern(path)
                        return path
                    except PatternFormatError as exc:
                        problem = str(exc)
                last_size = size
            if self.clock.now() - t0 >= timeout_s:
                if problem:
                    raise ProtocolError(
                        f"result file is unreadable: {problem}", device=self.name, code="bad_file"
                    )
                raise DeviceTimeout(
                    f"no {path.name} in {self.result_dir} after {timeout_s:g} s",
                    device=self.name,
                    code="no_result",
                )
            self._sleep(self.poll_s)

    def read_result(self, sample_id: str, timeout_s: float = 3600.0) -> XRDPattern:
        """The measured pattern (waits for the file like :meth:`wait_for_result`)."""
        if sample_id not in self._patterns:
            self.wait_for_result(sample_id, timeout_s)
        pattern = self._patterns[sample_id]
        pattern.metadata.setdefault("sample_id", sample_id)
        return pattern

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> AerisXRD:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@register_kind("aeris")
def open_aeris(spec: DeviceSpec, **context) -> AerisXRD:
    """Registry factory: ``host``/``tcp_port`` (default 702), ``options.result_dir`` required."""
    if not spec.host:
        raise ConfigError(f"device {spec.name!r} (aeris) needs host")
    if "result_dir" not in spec.options:
        raise ConfigError(
            f"device {spec.name!r} (aeris) needs options.result_dir (the folder results drop into)"
        )
    return construct(
        spec,
        AerisXRD,
        spec.host,
        spec.tcp_port or 702,
        name=spec.name,
        **lab_context(context),
    )
