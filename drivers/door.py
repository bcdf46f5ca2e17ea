"""Furnace door controller over a TCP line protocol (A-Lab's Arduino controllers, PROTOCOLS.md §2).

Commands ``Open A``, ``Close A``, ``Status`` (and ``Reset`` to clear a latched ERROR, which the
emulator supports; the A-Lab sources do not show one, a real controller may need a power cycle).
``Status`` answers ``State: RUNNING|STOP|ERROR; Furnace A: Open|Closed|Unknown; ...``. A move
command answers ``OK`` (motor started) or ``Error: <reason>``; the driver then polls ``Status``
until the motor stops. The controller refuses commands while RUNNING or in ERROR.

Safety: :meth:`DoorController.open` asks the furnace for its temperature and refuses (no bytes
sent) above ``limits.safe_door_temperature_c``, or when the temperature is unknown.
Move commands are never re-sent blindly: after a lost reply the driver looks at ``Status``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
    SafetyLimitError,
)
from labos.drivers.registry import DeviceLimits, DeviceSpec, lab_context, register_kind
from labos.drivers.safety import check_door_temperature
from labos.drivers.transport import ConnectionLost, LineTransport, open_transport, retry_call
from labos.simulator.clock import Clock, WallClock

from labos.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["DoorController", "DoorStatus", "parse_status"]

_STATE = re.compile(r"^\s*State:\s*(RUNNING|STOP|ERROR)\s*$")
_DOOR = re.compile(r"^\s*Furnace\s+([A-Z])\s*:\s*(Open|Closed|Unknown)\s*$")


@dataclass(frozen=True)
class DoorStatus:
    controller: str  # "RUNNING" | "STOP" | "ERROR"
    doors: dict[str, str]  # furnace letter -> "open" | "closed" | "unknown"


def parse_status(line: str, *, device: str = "") -> DoorStatus:
    """``State: STOP; Furnace A: Closed; Furnace B: Open`` → DoorStatus; ProtocolError otherwise."""
    parts = line.split(";")
    m = _STATE.match(parts[0])
    if not m:
        raise ProtocolError(
            f"status reply does not start with a State: {line!r}", device=device, code="status"
        )
    doors: dict[str, str] = {}
    for part in parts[1:]:
        if not part.strip():
            continue
        d = _DOOR.match(part)
        if not d:
            raise ProtocolError(f"cannot read door field {part!r} in {line!r}", device=device, code="status")
        doors[d.group(1)] = d.group(2).lower()
    if not doors:
        raise ProtocolError(f"status reply names no furnace: {line!r}", device=device, code="status")
    return DoorStatus(controller=m.group(1), doors=doors)


class DoorController:
    """One furnace door (``furnace`` letter) on a door controller."""

    def __init__(
        self,
        transport: LineTransport,
        *,
        name: str = "door",
        furnace: str = "A",
        limits: DeviceLimits | None = None,
        temperature_c: Callable[[], float] | None = None,
        move_timeout_s: float = 30.0,
        poll_s: float = 0.2,
        retries: int = 1,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ):
        if not re.fullmatch(r"[A-Z]", furnace):
            raise ConfigError(f"door {name!r}: furnace must be one capital letter, got {furnace!r}")
        self.t = transport
        self.name = name
        self.furnace = furnace
        self.limits = limits or DeviceLimits()
        self.temperature_c = temperature_c
        self.move_timeout_s = move_timeout_s
        self.poll_s = poll_s
        self.retries = retries
        self._sleep = sleep
        self.clock = clock or WallClock()

    def status(self) -> DoorStatus:
        """``Status`` (a read: retried after a timeout, a dropped connection or a bad reply)."""
        st = retry_call(
            lambda: parse_status(self.t.query("Status", retries=self.retries), device=self.name),
            retries=self.retries,
            what="Status",
            catch=(ProtocolError,),
        )
        if self.furnace not in st.doors:
            raise ProtocolError(
                f"controller does not report furnace {self.furnace}", device=self.name, code="furnace"
            )
        return st

    def state(self) -> str:
        """``open`` | ``closed`` | ``unknown`` (moving), or ``error`` when the controller is in ERROR."""
        st = self.status()
        return "error" if st.controller == "ERROR" else st.doors[self.furnace]

    def _furnace_temperature(self) -> float | None:
        if self.temperature_c is None:
            return None
        try:
            return float(self.temperature_c())
        except DeviceError as exc:
            log.warning("%s: furnace temperature unavailable: %s", self.name, exc)
            return None

    def open(self) -> None:
        check_door_temperature(self.limits, self.name, self._furnace_temperature())
        self._move("Open", "open")

    def close_door(self) -> None:
        self._move("Close", "closed")

    def reset(self) -> None:
        """Clear a latched ERROR (after someone checked the door)."""
        reply = self.t.query("Reset")
        if reply.strip() != "OK":
            raise self._error(reply, "reset")

    def _error(self, reply: str, action: str) -> DeviceError:
        text = reply.strip()
        low = text.lower()
        if not low.startswith("error"):
            return ProtocolError(f"{action}: unexpected reply {reply!r}", device=self.name, code="reply")
        if "hot" in low or "temperature" in low:
            return SafetyLimitError(
                f"{action}: controller interlock: {text}", device=self.name, code="too_hot"
            )
        if "busy" in low or "running" in low:
            return DeviceBusy(f"{action}: {text}", device=self.name, code="RUNNING", safe_to_retry=True)
        if "error" in low[5:]:
            return DeviceFault(f"{action}: {text}", device=self.name, code="ERROR")
        return DeviceError(f"{action}: {text}", device=self.name, code="refused")

    def _move(self, verb: str, want: str) -> None:
        st = self.status()
        if st.controller == "ERROR":
            raise DeviceFault(
                "controller in ERROR; reset it after checking the door", device=self.name, code="ERROR"
            )
        if st.controller == "RUNNING":
            raise DeviceBusy(
                "door motor already running", device=self.name, code="RUNNING", safe_to_retry=True
            )
        if st.doors[self.furnace] == want:
            return
        command = f"{verb} {self.furnace}"
        try:
            reply = self.t.query(command)  # sent once
        except DeviceTimeout as exc:
            log.warning(
                "%s: no reply to %r (%s); checking status instead of resending", self.name, command, exc
            )
            if isinstance(exc, ConnectionLost):
                self.t.reconnect()
        else:
            if reply.strip() != "OK":
                raise self._error(reply, command)
        self._wait(want, command)

    def _wait(self, want: str, command: str) -> None:
        deadline = self.clock.now() + self.move_timeout_s
        wall_deadline = time.monotonic() + self.move_timeout_s  # backstop if the clock stands still
        while True:
            st = self.status()
            if st.controller == "ERROR":
                raise DeviceFault(
                    f"{command}: controller went to ERROR (limit switch not reached?); door "
                    f"{st.doors[self.furnace]}",
                    device=self.name,
                    code="ERROR",
                )
            if st.controller == "STOP":
                if st.doors[self.furnace] == want:
                    return
                raise DeviceFault(
                    f"{command}: motor stopped with the door {st.doors[self.furnace]}",
                    device=self.name,
                    code="position",
                )
            if self.clock.now() > deadline or time.monotonic() > wall_deadline:
                raise DeviceTimeout(
                    f"{command}: door still moving after {self.move_timeout_s:g} s",
                    device=self.name,
                    code="move",
                )
            self._sleep(self.poll_s)

    def close(self) -> None:
        self.t.close()


@register_kind("furnace_door")
def open_door(spec: DeviceSpec, **context: Any) -> DoorController:
    """Context: ``temperature_c`` (callable) or ``furnace`` (a driver with ``pv()``/``status()``),
    ``sleep`` and ``clock`` for virtual time."""
    opts = dict(spec.options)
    temp = context.get("temperature_c")
    furnace_dev = context.get("furnace")
    if temp is None and furnace_dev is not None:
        temp = furnace_dev.pv if hasattr(furnace_dev, "pv") else (lambda: furnace_dev.status().pv_c)
    allowed = {"furnace", "move_timeout_s", "poll_s", "retries", "timeout_s"}
    unknown = set(opts) - allowed
    if unknown:
        raise ConfigError(f"device {spec.name!r}: unknown door options {sorted(unknown)}")
    line = open_transport(**spec.transport_kwargs(), timeout=float(opts.pop("timeout_s", 2.0)), eol="\n")
    return DoorController(
        line, name=spec.name, limits=spec.limits, temperature_c=temp, **opts, **lab_context(context)
    )
