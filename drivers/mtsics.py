"""Mettler Toledo MT-SICS balances and the Quantos powder doser (PROTOCOLS.md §1).

Framing: one ASCII command per line (CR LF), one command at a time, reply
``<ID> <status> [values]``; general errors ``ES``/``ET``/``EL`` have no status. Every status and
error code maps to a typed :mod:`labos.drivers.errors` exception.

Retries: reads (``S``, ``SI``, ``TA``, identification) and idempotent settings (target mass,
tolerance, door position) may be repeated after a timeout or ``ET``. Starting a dose
(``QRA 61 1``) is sent exactly once: if anything goes wrong after it was sent, the driver stops
the doser, reads how much was dispensed and raises with ``exc.dosed_mg`` set, so the lab OS
never doses twice.

The Quantos dosing-result XML (``QRD 2 4 12``) is parsed by element local names
(``TargetMass``, ``DosedMass``/``Content``, ``ToleranceRange``/``Tolerance``, ``Result``) with a
``unit`` attribute; PROTOCOLS.md does not give the full schema, so check it against a real
instrument's export before relying on more fields.
"""

from __future__ import annotations

import logging
import math
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
)
from labos.drivers.protocols import DoseResult
from labos.drivers.registry import DeviceLimits, DeviceSpec, check_options, lab_context, register_kind
from labos.drivers.safety import check_dose
from labos.drivers.transport import LineTransport, open_transport, retry_call
from labos.simulator.clock import Clock, WallClock

from labos.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "MtSicsBalance",
    "QuantosDoser",
    "SicsReply",
    "WeightOutOfRange",
    "parse_reply",
    "parse_weight_mg",
    "parse_dose_result",
]

STATUSES = frozenset("ABSDIL+-")
GENERAL_ERRORS = {
    "ES": "syntax error: the balance did not recognise the command",
    "ET": "transmission error: the balance could not read the command",
    "EL": "logical error: the command cannot be executed",
}
UNIT_TO_MG = {"mg": 1.0, "g": 1000.0, "kg": 1e6, "ug": 1e-3, "µg": 1e-3}

# QRA 61 1 I <n> (and the other Quantos commands): code -> (exception class, meaning)
QUANTOS_ERRORS: dict[int, tuple[type[DeviceError], str]] = {
    1: (DeviceFault, "dosing head not mounted"),
    2: (DeviceBusy, "another job is running"),
    3: (DeviceTimeout, "the doser timed out"),
    4: (DeviceFault, "not selected"),
    5: (DeviceBusy, "not allowed now (front door open or wrong state)"),
    6: (DeviceBusy, "weight not stable"),
    7: (DeviceFault, "powder-flow error"),
    8: (DeviceFault, "stopped externally"),
    9: (DeviceFault, "safe-position error"),
    10: (DeviceFault, "dosing head not allowed"),
    11: (DeviceFault, "dosing head limit reached"),
    12: (DeviceFault, "dosing head expired"),
    13: (DeviceFault, "sampler blocked"),
}

_TOKEN = re.compile(r'"[^"]*"|\S+')
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class WeightOutOfRange(DeviceError):
    """Overload (``+``) or underload (``-``): the load is outside the balance's range."""


@dataclass(frozen=True)
class SicsReply:
    """One reply line: ``command`` is the echoed ID (e.g. ``S`` or ``QRA 61 1``)."""

    command: str
    status: str
    values: tuple[str, ...] = field(default_factory=tuple)
    line: str = ""

    def text(self, index: int = 0) -> str:
        """A value with its quotes removed."""
        if index >= len(self.values):
            raise ProtocolError(f"reply {self.line!r} has no value #{index + 1}", code="short")
        return self.values[index].strip('"')


def tokenize(line: str) -> list[str]:
    return _TOKEN.findall(line)


def parse_reply(line: str, command: str, *, device: str = "") -> SicsReply:
    """Parse a reply to ``command``; raise the typed error for ``ES``/``ET``/``EL`` or a bad reply."""
    if not isinstance(line, str):
        raise ProtocolError(f"reply is not text: {line!r}", device=device)
    stripped = line.strip()
    if stripped in GENERAL_ERRORS:
        raise ProtocolError(
            f"{GENERAL_ERRORS[stripped]} (command {command!r})",
            device=device,
            code=stripped,
            safe_to_retry=stripped == "ET",
        )
    if any(ord(c) < 32 or ord(c) > 126 for c in stripped):
        raise ProtocolError(f"reply contains control or non-ASCII characters: {line!r}", device=device)
    tokens = tokenize(stripped)
    expect = command.split()
    n = len(expect)
    if tokens[:n] != expect:
        raise ProtocolError(
            f"reply {line!r} does not answer command {command!r}", device=device, code="wrong_reply"
        )
    if len(tokens) <= n:
        raise ProtocolError(f"reply {line!r} has no status", device=device, code="short")
    status = tokens[n]
    if status not in STATUSES:
        raise ProtocolError(f"reply {line!r} has unknown status {status!r}", device=device, code="status")
    return SicsReply(command=command, status=status, values=tuple(tokens[n + 1 :]), line=line)


def parse_weight_mg(reply: SicsReply, *, device: str = "") -> float:
    """``S S     100.00 g`` → 100000.0 (mg). Parses by whitespace, not by columns."""
    if len(reply.values) != 2:
        raise ProtocolError(
            f"weight reply {reply.line!r} needs a value and a unit", device=device, code="short"
        )
    value, unit = reply.values
    if not _NUMBER.match(value):
        raise ProtocolError(
            f"weight {value!r} in {reply.line!r} is not a number", device=device, code="value"
        )
    if unit not in UNIT_TO_MG:
        raise ProtocolError(f"unknown weight unit {unit!r} in {reply.line!r}", device=device, code="unit")
    mg = float(value) * UNIT_TO_MG[unit]
    if not math.isfinite(mg):
        raise ProtocolError(f"weight {value!r} is not finite", device=device, code="value")
    return mg


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def parse_dose_result(xml_text: str, *, device: str = "") -> dict[str, float | str | None]:
    """The Quantos dosing-result XML → ``{"target_mg", "dosed_mg", "tolerance_pct", "result"}``."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as exc:
        raise ProtocolError(f"dosing result is not valid XML: {exc}", device=device, code="xml") from None
    found: dict[str, float | str | None] = {"target_mg": None, "dosed_mg": None, "tolerance_pct": None}
    found["result"] = None
    names = {
        "targetmass": "target_mg",
        "target": "target_mg",
        "dosedmass": "dosed_mg",
        "content": "dosed_mg",
        "actualmass": "dosed_mg",
        "tolerancerange": "tolerance_pct",
        "tolerance": "tolerance_pct",
    }
    for el in root.iter():
        key = names.get(_local(el.tag))
        text = (el.text or "").strip()
        if key is not None:
            if not _NUMBER.match(text):
                raise ProtocolError(f"<{_local(el.tag)}> {text!r} is not a number", device=device, code="xml")
            value = float(text)
            unit = el.get("unit", "mg" if key != "tolerance_pct" else "%")
            if key != "tolerance_pct":
                if unit not in UNIT_TO_MG:
                    raise ProtocolError(f"unknown unit {unit!r} in dosing result", device=device, code="xml")
                value *= UNIT_TO_MG[unit]
            found[key] = value
        elif _local(el.tag) == "result":
            found["result"] = text
    if found["dosed_mg"] is None:
        raise ProtocolError("dosing result has no dosed mass", device=device, code="xml")
    return found


class MtSicsBalance:
    """A balance speaking MT-SICS level 0/1 (identify, zero, tare, stable/immediate weight)."""

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "balance",
        limits: DeviceLimits | None = None,
        timeout_s: float = 2.0,
        stable_timeout_s: float = 60.0,
        retries: int = 1,
    ):
        self.t = transport
        self.name = name
        self.limits = limits or DeviceLimits()
        self.timeout_s = timeout_s
        self.stable_timeout_s = stable_timeout_s
        self.retries = retries

    # -- plumbing --------------------------------------------------------------------------------
    def command(
        self, cmd: str, reply_id: str | None = None, *, timeout: float | None = None, retries: int = 0
    ) -> SicsReply:
        """Send ``cmd`` and parse its reply; retries (only when asked) on timeouts and ``ET``."""
        return retry_call(
            lambda: parse_reply(
                self.t.query(cmd, timeout=timeout or self.timeout_s),
                reply_id or cmd.split()[0],
                device=self.name,
            ),
            retries=retries,
            what=repr(cmd),
            device=self.name,
            # ES/EL/L are the balance's considered answer: repeating the command changes nothing
            retry_if=lambda exc: isinstance(exc, DeviceTimeout) or exc.code not in ("ES", "EL", "L"),
        )

    def _status_error(self, reply: SicsReply, action: str) -> DeviceError:
        s = reply.status
        if s == "I":
            return DeviceBusy(
                f"{action}: balance busy or not stable in time ({reply.line!r})",
                device=self.name,
                code="I",
                safe_to_retry=True,
            )
        if s == "L":
            return ProtocolError(f"{action}: parameter refused ({reply.line!r})", device=self.name, code="L")
        if s == "+":
            return WeightOutOfRange(
                f"{action}: overload / above range ({reply.line!r})", device=self.name, code="+"
            )
        if s == "-":
            return WeightOutOfRange(
                f"{action}: underload / below range ({reply.line!r})", device=self.name, code="-"
            )
        return ProtocolError(f"{action}: unexpected status {s!r} ({reply.line!r})", device=self.name, code=s)

    # -- Balance protocol ------------------------------------------------------------------------
    def identify(self) -> str:
        """``I2`` (type, capacity) and ``I4`` (serial number) → ``"XPE206DR 220.00000 g SN B123"``."""
        kind = self.command("I2", retries=self.retries)
        if kind.status != "A":
            raise self._status_error(kind, "identify")
        snr = self.command("I4", retries=self.retries)
        if snr.status != "A":
            raise self._status_error(snr, "serial number")
        return f"{kind.text()} SN {snr.text()}"

    def reset(self) -> str:
        """``@``: cancel pending commands, back to the power-on state (tare cleared); returns the SNR."""
        reply = self.command("@", "I4", retries=self.retries)
        if reply.status != "A":
            raise self._status_error(reply, "reset")
        return reply.text()

    def zero(self) -> None:
        reply = self.command("Z", timeout=self.stable_timeout_s, retries=self.retries)
        if reply.status != "A":
            raise self._status_error(reply, "zero")

    def tare(self) -> float:
        """Tare on a stable weight; returns the tare in mg."""
        reply = self.command("T", timeout=self.stable_timeout_s, retries=self.retries)
        if reply.status != "S":
            raise self._status_error(reply, "tare")
        return parse_weight_mg(reply, device=self.name)

    def tare_value_mg(self) -> float:
        reply = self.command("TA", retries=self.retries)
        if reply.status != "A":
            raise self._status_error(reply, "tare value")
        return parse_weight_mg(reply, device=self.name)

    def clear_tare(self) -> None:
        reply = self.command("TAC", retries=self.retries)
        if reply.status != "A":
            raise self._status_error(reply, "clear tare")

    def weight_mg(self, stable: bool = True) -> float:
        """Net weight in mg: ``S`` waits for stability (``S I`` after the balance gives up);
        ``SI`` answers at once and a dynamic (``D``) reading is returned as it is."""
        if stable:
            reply = self.command("S", timeout=self.stable_timeout_s, retries=self.retries)
            ok = ("S",)
        else:
            reply = self.command("SI", "S", retries=self.retries)
            ok = ("S", "D")
        if reply.status not in ok:
            raise self._status_error(reply, "stable weight" if stable else "weight")
        return parse_weight_mg(reply, device=self.name)

    def close(self) -> None:
        self.t.close()


class QuantosDoser(MtSicsBalance):
    """A Quantos powder doser: MT-SICS balance plus ``QRA``/``QRD`` dosing commands."""

    START = "QRA 61 1"
    STOP = "QRA 61 4"
    DOOR = "QRA 60 7"
    SAMPLER = "QRA 60 8"
    RESULT = "QRD 2 4 12"

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "doser",
        limits: DeviceLimits | None = None,
        timeout_s: float = 2.0,
        stable_timeout_s: float = 60.0,
        retries: int = 1,
        dose_timeout_s: float = 120.0,
        door_timeout_s: float = 20.0,
        max_result_lines: int = 500,
        clock: Clock | None = None,
        sleep: Callable[[float], None] | None = None,
        poll_s: float = 0.5,
    ):
        """``clock``/``sleep`` let a simulated lab run the dose wait in its own time: the dose
        deadline is counted on ``clock`` (and, as a backstop, on the wall clock), and ``sleep``,
        if given, is called with ``poll_s`` clock seconds between polls (e.g. to advance a
        ManualClock)."""
        super().__init__(
            transport,
            name=name,
            limits=limits,
            timeout_s=timeout_s,
            stable_timeout_s=stable_timeout_s,
            retries=retries,
        )
        self.dose_timeout_s = dose_timeout_s
        self.door_timeout_s = door_timeout_s
        self.max_result_lines = max_result_lines
        self.clock = clock or WallClock()
        self._sleep = sleep
        self.poll_s = poll_s

    def _quantos_error(self, reply: SicsReply, action: str) -> DeviceError:
        if reply.status != "I":
            return self._status_error(reply, action)
        code = int(reply.values[0]) if reply.values and reply.values[0].isdigit() else None
        if code is None:
            cls, meaning = DeviceBusy, "not executable now"
        else:
            cls, meaning = QUANTOS_ERRORS.get(code, (DeviceFault, "unknown Quantos error"))
        return cls(
            f"{action}: {meaning} ({reply.line!r})", device=self.name, code="I" if code is None else code
        )

    def _simple(self, cmd: str, reply_id: str, action: str, *, timeout: float | None = None) -> SicsReply:
        """A Quantos command that answers ``<reply_id> A`` (settings, door, sampler: idempotent)."""
        reply = self.command(cmd, reply_id, timeout=timeout, retries=self.retries)
        if reply.status != "A":
            raise self._quantos_error(reply, action)
        return reply

    def set_front_door(self, open_: bool) -> None:
        """``QRA 60 7 3`` opens, ``QRA 60 7 2`` closes the draft-shield door (idempotent)."""
        action = "open front door" if open_ else "close front door"
        try:
            self._simple(f"{self.DOOR} {3 if open_ else 2}", self.DOOR, action, timeout=self.door_timeout_s)
        except (DeviceFault, DeviceTimeout) as exc:
            if not isinstance(exc.code, int):  # no (valid) reply at all: not a door problem
                raise
            raise DeviceFault(
                f"front door did not {'open' if open_ else 'close'}: {exc}", device=self.name, code=exc.code
            ) from exc

    def set_sampler(self, position: int) -> None:
        if not 0 <= position <= 30:
            raise ValueError(f"{self.name}: sampler position must be 0..30, got {position}")
        self._simple(
            f"{self.SAMPLER} {position}",
            self.SAMPLER,
            f"move sampler to {position}",
            timeout=self.door_timeout_s,
        )

    def read_dose_result(self) -> dict[str, float | str | None]:
        """``QRD 2 4 12``: XML between a ``B`` and an ``A`` line (a read: safe to repeat)."""
        return retry_call(
            self._read_dose_result_once,
            retries=self.retries,
            what="read dosing result",
            device=self.name,
            retry_if=lambda exc: isinstance(exc, DeviceTimeout) or exc.code in ("ET", "xml"),
        )

    def _read_dose_result_once(self) -> dict[str, float | str | None]:
        first = parse_reply(self.t.query(self.RESULT, timeout=self.timeout_s), self.RESULT, device=self.name)
        if first.status != "B":
            raise self._quantos_error(first, "read dosing result")
        xml_lines: list[str] = []
        for _ in range(self.max_result_lines):
            line = self.t.read_line(self.timeout_s)
            if line.startswith(self.RESULT + " "):
                last = parse_reply(line, self.RESULT, device=self.name)
                if last.status == "A":
                    return parse_dose_result("\n".join(xml_lines), device=self.name)
                if last.status != "B":
                    raise self._quantos_error(last, "read dosing result")
                continue
            xml_lines.append(line)
        raise ProtocolError(f"dosing result longer than {self.max_result_lines} lines", device=self.name)

    def stop_dosing(self) -> None:
        """``QRA 61 4``; replies to the interrupted start command that arrive first are skipped."""
        self.t.flush_input()
        self.t.send_line(self.STOP)
        deadline = time.monotonic() + self.timeout_s
        while True:
            line = self.t.read_line(max(0.01, deadline - time.monotonic()))
            if line.startswith(self.START):
                continue
            reply = parse_reply(line, self.STOP, device=self.name)
            if reply.status != "A":
                raise self._quantos_error(reply, "stop dosing")
            return

    def dose(self, target_mg: float, tolerance_pct: float = 2.0) -> DoseResult:
        """Dose ``target_mg`` into the container on the pan; never repeated on failure."""
        check_dose(self.limits, self.name, target_mg, tolerance_pct)
        self.set_front_door(False)
        self._simple(f"QRD 1 1 5 {target_mg:.2f}", "QRD 1 1 5", "set target mass")
        self._simple(f"QRD 1 1 6 {tolerance_pct:.2f}", "QRD 1 1 6", "set tolerance")

        self.t.flush_input()
        self.t.send_line(self.START)  # exactly once
        refused = False
        try:
            first = parse_reply(self.t.read_line(self.timeout_s), self.START, device=self.name)
            if first.status == "I":
                refused = True  # answered at once, before any B line: nothing was dispensed
                raise self._quantos_error(first, "start dosing")
            final = first if first.status == "A" else self._wait_dose_end(first)
            if final.status != "A":
                raise self._quantos_error(final, "dosing")
        except DeviceError as exc:
            self._after_failed_dose(exc, refused=refused)
            raise
        result = self.read_dose_result()
        dosed = float(result["dosed_mg"])  # type: ignore[arg-type]
        target = float(result["target_mg"]) if result["target_mg"] is not None else target_mg
        tol = float(result["tolerance_pct"]) if result["tolerance_pct"] is not None else tolerance_pct
        within = abs(dosed - target) <= target * tol / 100.0 + 1e-9
        return DoseResult(target_mg=target, dosed_mg=dosed, within_tolerance=within, raw=str(result))

    def _wait_dose_end(self, first: SicsReply) -> SicsReply:
        if first.status != "B":
            raise ProtocolError(f"unexpected reply to start dosing: {first.line!r}", device=self.name)
        deadline = self.clock.now() + self.dose_timeout_s
        wall_deadline = time.monotonic() + self.dose_timeout_s  # if the clock stands still
        while True:
            try:
                line = self.t.read_line(0.05)
            except DeviceTimeout as exc:
                if exc.code != "timeout":
                    raise
                if self.clock.now() > deadline or time.monotonic() > wall_deadline:
                    raise DeviceTimeout(
                        f"dosing did not finish within {self.dose_timeout_s:g} s",
                        device=self.name,
                        code="dose",
                    ) from None
                if self._sleep is not None:
                    self._sleep(self.poll_s)
                continue
            return parse_reply(line, self.START, device=self.name)

    def _after_failed_dose(self, exc: DeviceError, *, refused: bool) -> None:
        """Bring the doser to a defined state and record how much was dispensed; never re-dose.

        Only a start the doser refused outright is safe to retry (nothing left the head)."""
        exc.safe_to_retry = refused
        if not refused:
            try:
                self.stop_dosing()
            except DeviceError as stop_exc:
                log.warning("%s: stop after failed dose failed: %s", self.name, stop_exc)
        dosed: float | None = 0.0 if refused else None
        if not refused:
            try:
                dosed = float(self.read_dose_result()["dosed_mg"])  # type: ignore[arg-type]
            except DeviceError as read_exc:
                log.warning("%s: could not read dosed mass after failure: %s", self.name, read_exc)
        exc.dosed_mg = dosed  # type: ignore[attr-defined]
        log.error("%s: dose failed (%s); dispensed %s mg; not repeated", self.name, exc, dosed)


_SERIAL_OPTS = ("baudrate", "bytesize", "parity", "stopbits", "xonxoff")


def _open(spec: DeviceSpec, cls: type[MtSicsBalance], **context) -> MtSicsBalance:
    """A balance or doser on the spec's serial port (or TCP bridge); serial settings from options."""
    opts = dict(spec.options)
    serial_opts = {k: opts.pop(k) for k in _SERIAL_OPTS if k in opts}
    if serial_opts and not spec.port:
        raise ConfigError(f"device {spec.name!r}: serial settings {sorted(serial_opts)} given without a port")
    timeout = float(opts.get("timeout_s", 2.0))
    kwargs = check_options(spec, cls, None, options=opts, name=spec.name, limits=spec.limits, **context)
    return cls(
        open_transport(**spec.transport_kwargs(), timeout=timeout, eol="\r\n", **serial_opts), **kwargs
    )


@register_kind("mtsics_balance")
def open_balance(spec: DeviceSpec, **context) -> MtSicsBalance:
    return _open(spec, MtSicsBalance)


@register_kind("quantos")
def open_quantos(spec: DeviceSpec, **context) -> QuantosDoser:
    return _open(spec, QuantosDoser, **lab_context(context))
