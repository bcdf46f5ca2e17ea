"""Furnace door controller emulator (A-Lab's Arduino, TCP line protocol; PROTOCOLS.md §2).

Doors take ``move_time_s`` (clock time) to travel. A jammed door (:meth:`jam`) does not reach
its limit switch within ``switch_timeout_s``: the controller stops the motor, closes the door
again and latches ERROR. Commands are refused while RUNNING or in ERROR. With a
``temperature_c`` hook the controller refuses to open above ``safe_temperature_c`` and trips
(latched ERROR) above ``overtemp_c``; :meth:`trip_overtemperature` trips it directly. ``Reset``
clears the latch unless the over-temperature persists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labos.simulator.clock import Clock
from labos.simulator.emulators import Connection, LineEmulator

__all__ = ["DoorEmulator"]


@dataclass
class _Motion:
    furnace: str
    target: str  # "Open" | "Closed"
    timer: int


class DoorEmulator(LineEmulator):
    eol = b"\n"
    default_transport = "tcp"

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "door",
        furnaces: tuple[str, ...] = ("A",),
        move_time_s: float = 8.0,
        switch_timeout_s: float = 15.0,
        temperature_c: Callable[[], float] | None = None,
        safe_temperature_c: float | None = None,
        overtemp_c: float | None = None,
        seed: int = 0,
    ):
        super().__init__(clock, name=name, seed=seed)
        self.doors = {f: "Closed" for f in furnaces}
        self.move_time_s = move_time_s
        self.switch_timeout_s = switch_timeout_s
        self.temperature_c = temperature_c
        self.safe_temperature_c = safe_temperature_c
        self.overtemp_c = overtemp_c
        self.state = "STOP"
        self.error_reason = ""
        self.motion: _Motion | None = None
        self.jammed: set[str] = set()
        self.overtemp_latched = False
        self.moves: list[tuple[str, str]] = []  # accepted (furnace, target) commands

    # -- faults ----------------------------------------------------------------------------------
    def jam(self, furnace: str = "A") -> None:
        """The next move of this door never reaches its limit switch."""
        with self.lock:
            self.jammed.add(furnace)

    def trip_overtemperature(self) -> None:
        with self.lock:
            self.overtemp_latched = True
            self._error("over-temperature trip")

    # -- state -----------------------------------------------------------------------------------
    def _error(self, reason: str) -> None:
        self.state = "ERROR"
        self.error_reason = reason

    def _check_temperature(self) -> float | None:
        if self.temperature_c is None:
            return None
        t = float(self.temperature_c())
        if self.overtemp_c is not None and t > self.overtemp_c and not self.overtemp_latched:
            self.overtemp_latched = True
            self._error("over-temperature trip")
        return t

    def status_line(self) -> str:
        self._check_temperature()
        doors = "; ".join(f"Furnace {f}: {s}" for f, s in sorted(self.doors.items()))
        return f"State: {self.state}; {doors}"

    def handle_line(self, conn: Connection, line: str) -> None:
        cmd = line.strip()
        if cmd == "Status":
            self.reply(conn, self.status_line(), line)
            return
        if cmd == "Reset":
            t = self._check_temperature()
            if (
                self.overtemp_latched
                and self.overtemp_c is not None
                and t is not None
                and t > self.overtemp_c
            ):
                self.reply(conn, "Error: over-temperature still active", line)
                return
            if self.state == "RUNNING":
                self.reply(conn, "Error: busy (RUNNING)", line)
                return
            self.overtemp_latched = False
            self.state, self.error_reason = "STOP", ""
            self.reply(conn, "OK", line)
            return
        parts = cmd.split()
        if len(parts) == 2 and parts[0] in ("Open", "Close"):
            self._move(conn, line, parts[1], "Open" if parts[0] == "Open" else "Closed")
            return
        self.reply(conn, f"Error: unknown command '{cmd}'", line)

    def _move(self, conn: Connection, line: str, furnace: str, target: str) -> None:
        t = self._check_temperature()
        if furnace not in self.doors:
            self.reply(conn, f"Error: unknown furnace {furnace}", line)
        elif self.state == "ERROR":
            self.reply(conn, f"Error: in ERROR state ({self.error_reason}); send Reset", line)
        elif self.state == "RUNNING":
            self.reply(conn, "Error: busy (RUNNING)", line)
        elif (
            target == "Open"
            and t is not None
            and self.safe_temperature_c is not None
            and t > self.safe_temperature_c
        ):
            self.reply(conn, f"Error: furnace {furnace} too hot ({t:.0f} C)", line)
        elif self.doors[furnace] == target:
            self.reply(conn, "OK", line)
        else:
            self.moves.append((furnace, target))
            self.state = "RUNNING"
            self.doors[furnace] = "Unknown"
            now = self.clock.now()
            if furnace in self.jammed:
                self.jammed.discard(furnace)
                timer = self.call_at(now + self.switch_timeout_s, lambda: self._switch_timeout(furnace))
            else:
                timer = self.call_at(now + self.move_time_s, lambda: self._arrived(furnace, target))
            self.motion = _Motion(furnace, target, timer)
            self.reply(conn, "OK", line)

    def _arrived(self, furnace: str, target: str) -> None:
        self.doors[furnace] = target
        self.motion = None
        if self.state == "RUNNING":
            self.state = "STOP"

    def _switch_timeout(self, furnace: str) -> None:
        """Limit switch not reached: stop the motor, close the door again, then latch ERROR."""

        def reclosed() -> None:
            self.doors[furnace] = "Closed"
            self.motion = None
            self._error(f"limit switch timeout on furnace {furnace}")

        self.call_at(self.clock.now() + self.move_time_s, reclosed)

    def other_reply(self, request: str, reply: str) -> str:
        return "OK" if request.strip() == "Status" else self.status_line()
