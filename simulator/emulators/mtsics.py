"""MT-SICS balance and Quantos powder-doser emulator on a pseudo-terminal (PROTOCOLS.md §1).

Physics, all from ``clock.now()``: a load change settles exponentially (time constant
``settle_tau_s``); the reading is stable once within ``stability_band_mg`` of its final value and
no drift is set; ``S`` waits for stability up to ``stability_timeout_s`` and then answers
``S I``. A dose takes ``dose_overhead_s + mass / dose_rate_mg_per_s`` and dispenses the target
with a Gaussian error well inside the tolerance; the mass lands on the pan and
``on_dose(mass_mg)`` is told (the simulated lab feeds its chemistry world from it).

Faults (PROTOCOLS.md §7): link faults via :meth:`inject`; :meth:`inject_error` (``ES``/``ET``/
``EL``); :attr:`never_stable`; :meth:`set_drift` (``S D``); :meth:`overload`/:meth:`underload`
(``S +``/``S -``); :meth:`fail_next_dose` (Quantos ``I 2``/``I 6``/``I 7``/``I 13`` ...);
:attr:`door_stuck_open` (door left open); :attr:`head_content_mg` (an empty head gives a
powder-flow error by itself).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from labos.simulator.clock import Clock
from labos.simulator.emulators import Connection, LineEmulator, WireFault

__all__ = ["MtSicsEmulator", "QuantosEmulator"]


def _fmt_g(mg: float) -> str:
    return f"{mg / 1000.0:>10.5f} g"


class MtSicsEmulator(LineEmulator):
    """A precision balance (defaults: 220 g capacity, 0.01 mg readability, like an XPE206DR)."""

    supported_faults = LineEmulator.supported_faults - {WireFault.DROP}

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "balance",
        model: str = "XPE206DR",
        serial_number: str = "B948123456",
        capacity_g: float = 220.0,
        settle_tau_s: float = 1.0,
        stability_band_mg: float = 0.05,
        stability_timeout_s: float = 30.0,
        noise_mg: float = 0.004,
        seed: int = 0,
    ):
        super().__init__(clock, name=name, seed=seed)
        self.model = model
        self.serial_number = serial_number
        self.capacity_mg = capacity_g * 1000.0
        self.settle_tau_s = settle_tau_s
        self.stability_band_mg = stability_band_mg
        self.stability_timeout_s = stability_timeout_s
        self.noise_mg = noise_mg
        # state
        self.load_mg = 0.0  # what is physically on the pan (final value)
        self._from_mg = 0.0  # reading when the last change happened
        self._changed_at = clock.now()
        self.zero_mg = 0.0  # the zero point, in load terms
        self.tare_mg = 0.0
        self.drift_mg_per_s = 0.0
        self._drift_since = clock.now()
        self.never_stable = False
        self._errors: list[tuple[str, str | None]] = []  # (ES/ET/EL, command prefix or None)
        self._busy_until: float | None = None  # a stable-weight command is pending

    # -- physics ---------------------------------------------------------------------------------
    def place(self, mass_mg: float) -> None:
        """Put ``mass_mg`` on the pan (negative: take it off); the reading settles from here."""
        with self.lock:
            now = self.clock.now()
            self._from_mg = self._raw(now)
            self._changed_at = now
            self.load_mg += mass_mg

    def _raw(self, now: float) -> float:
        dt = max(0.0, now - self._changed_at)
        settle = (
            (self._from_mg - self.load_mg) * math.exp(-dt / self.settle_tau_s) if self.settle_tau_s else 0
        )
        drift = self.drift_mg_per_s * max(0.0, now - self._drift_since)
        return self.load_mg + settle + drift

    def _time_to_stable(self, now: float) -> float | None:
        """Clock seconds until the reading is stable (0 = now), None = not within reason."""
        if self.never_stable or self.drift_mg_per_s:
            return None
        gap = abs(self._from_mg - self.load_mg)
        if gap <= self.stability_band_mg or not self.settle_tau_s:
            return 0.0
        settled_at = self._changed_at + self.settle_tau_s * math.log(gap / self.stability_band_mg)
        return max(0.0, settled_at - now)

    def gross_mg(self) -> float:
        with self.lock:
            return self._raw(self.clock.now())

    def net_mg(self, now: float | None = None) -> float:
        now = self.clock.now() if now is None else now
        return self._raw(now) - self.zero_mg - self.tare_mg + self.rng.gauss(0.0, self.noise_mg)

    def _range_status(self, now: float) -> str | None:
        raw = self._raw(now)
        if raw > self.capacity_mg:
            return "+"
        if raw < -0.05 * self.capacity_mg:
            return "-"
        return None

    # -- faults ----------------------------------------------------------------------------------
    def inject_error(self, error: str, *, match: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` commands (starting with ``match``) with ES, ET or EL."""
        if error not in ("ES", "ET", "EL"):
            raise ValueError(f"MT-SICS general errors are ES, ET, EL, not {error!r}")
        with self.lock:
            self._errors.extend([(error, match)] * count)

    def set_drift(self, mg_per_s: float) -> None:
        with self.lock:
            now = self.clock.now()
            base = self._raw(now)
            self.load_mg, self._from_mg, self._changed_at = base, base, now
            self.drift_mg_per_s = mg_per_s
            self._drift_since = now

    def overload(self) -> None:
        """Something heavier than the capacity lands on the pan (``S +`` until removed)."""
        self.place(self.capacity_mg * 1.2)

    def underload(self) -> None:
        """The weighing pan is removed (``S -``)."""
        self.place(-self.load_mg - 0.2 * self.capacity_mg)

    # -- protocol --------------------------------------------------------------------------------
    def other_reply(self, request: str, reply: str) -> str:
        return "TA A    0.00000 g" if not request.startswith("TA") else 'I4 A "0000000000"'

    def _take_error(self, line: str) -> str | None:
        for i, (err, match) in enumerate(self._errors):
            if match is None or line.startswith(match):
                del self._errors[i]
                return err
        return None

    def handle_line(self, conn: Connection, line: str) -> None:
        err = self._take_error(line)
        if err:
            self.reply(conn, err, line)
            return
        parts = line.split()
        if not parts:
            self.reply(conn, "ES", line)
            return
        handler = self.commands().get(parts[0])
        if handler is None or parts[0] != parts[0].upper():
            self.reply(conn, "ES", line)
            return
        handler(conn, line, parts)

    def commands(self) -> dict[str, Callable[[Connection, str, list[str]], None]]:
        return {
            "@": self._reset,
            "I1": lambda c, line, p: self.reply(c, 'I1 A "01" "2.30" "2.22" "" ""', line),
            "I2": lambda c, line, p: self.reply(
                c, f'I2 A "{self.model} {self.capacity_mg / 1000:.5f} g"', line
            ),
            "I3": lambda c, line, p: self.reply(c, 'I3 A "2.30 1.2.3"', line),
            "I4": lambda c, line, p: self.reply(c, f'I4 A "{self.serial_number}"', line),
            "S": self._stable_weight,
            "SI": self._immediate_weight,
            "Z": self._zero,
            "ZI": self._zero,
            "T": self._tare,
            "TA": self._tare_value,
            "TAC": self._clear_tare,
        }

    def _reset(self, conn: Connection, line: str, parts: list[str]) -> None:
        self.cancel_timers()
        self.tare_mg = 0.0
        self.reply(conn, f'I4 A "{self.serial_number}"', line)

    def _immediate_weight(self, conn: Connection, line: str, parts: list[str]) -> None:
        now = self.clock.now()
        rng = self._range_status(now)
        if rng:
            self.reply(conn, f"S {rng}", line)
            return
        stable = self._time_to_stable(now) == 0.0
        self.reply(conn, f"S {'S' if stable else 'D'} {_fmt_g(self.net_mg(now))}", line)

    def _when_stable(self, conn: Connection, line: str, then: Callable[[float], str], fail: str) -> None:
        """Answer ``then(now)`` once stable, ``fail`` after the stability timeout (both clock time)."""
        now = self.clock.now()
        rng = self._range_status(now)
        if rng:
            self.reply(conn, f"{fail.split()[0]} {rng}", line)
            return
        wait = self._time_to_stable(now)
        if wait == 0.0:
            self.reply(conn, then(now), line)
        elif wait is None or wait > self.stability_timeout_s:
            self.call_at(now + self.stability_timeout_s, lambda: self.reply(conn, fail, line))
        else:
            self.call_at(now + wait, lambda: self.reply(conn, then(self.clock.now()), line))

    def _stable_weight(self, conn: Connection, line: str, parts: list[str]) -> None:
        self._when_stable(conn, line, lambda now: f"S S {_fmt_g(self.net_mg(now))}", "S I")

    def _zero(self, conn: Connection, line: str, parts: list[str]) -> None:
        def do_zero(now: float) -> str:
            raw = self._raw(now)
            if abs(raw) > 0.02 * self.capacity_mg:  # outside the zero-setting range (±2 % of capacity)
                return "Z +" if raw > 0 else "Z -"
            self.zero_mg, self.tare_mg = raw, 0.0
            return "Z A"

        if parts[0] == "ZI":
            now = self.clock.now()
            self.reply(conn, do_zero(now).replace("Z ", "ZI ", 1), line)
            return
        self._when_stable(conn, line, do_zero, "Z I")

    def _tare(self, conn: Connection, line: str, parts: list[str]) -> None:
        def do_tare(now: float) -> str:
            gross = self._raw(now) - self.zero_mg
            if gross < 0:
                return "T -"
            self.tare_mg = gross
            return f"T S {_fmt_g(self.tare_mg)}"

        self._when_stable(conn, line, do_tare, "T I")

    def _tare_value(self, conn: Connection, line: str, parts: list[str]) -> None:
        self.reply(conn, f"TA A {_fmt_g(self.tare_mg)}", line)

    def _clear_tare(self, conn: Connection, line: str, parts: list[str]) -> None:
        self.tare_mg = 0.0
        self.reply(conn, "TAC A", line)


@dataclass
class _DoseJob:
    target_mg: float
    tolerance_pct: float
    started_at: float
    ends_at: float
    planned_mg: float
    fail_code: int | None
    conn: Connection
    request: str
    timer: int | None = None


class QuantosEmulator(MtSicsEmulator):
    """A Quantos: the balance plus dosing head, front door and sampler (``QRA``/``QRD`` commands)."""

    def __init__(
        self,
        clock: Clock,
        *,
        name: str = "quantos",
        model: str = "Quantos QB5",
        on_dose: Callable[[float], None] | None = None,
        dose_rate_mg_per_s: float = 5.0,
        dose_overhead_s: float = 8.0,
        dose_error_pct: float = 0.3,
        head_content_mg: float = 50_000.0,
        substance: str = "powder",
        **kw,
    ):
        super().__init__(clock, name=name, model=model, **kw)
        self.on_dose = on_dose
        self.dose_rate_mg_per_s = dose_rate_mg_per_s
        self.dose_overhead_s = dose_overhead_s
        self.dose_error_pct = dose_error_pct
        self.head_content_mg = head_content_mg
        self.head_mounted = True
        self.substance = substance
        self.target_mg: float | None = None
        self.tolerance_pct = 2.0
        self.door_open = False
        self.door_stuck_open = False
        self.sampler = 0
        self.job: _DoseJob | None = None
        self.last_result: dict[str, float | str] | None = None
        self.dosed_log: list[float] = []  # every dispensed mass, in order
        self._next_dose_faults: list[int] = []

    def fail_next_dose(self, code: int) -> None:
        """Make the next dose end with Quantos error ``code`` (2, 6 refuse at once; 7, 13 fail midway)."""
        if code not in range(1, 14):
            raise ValueError(f"Quantos error codes are 1..13, not {code}")
        with self.lock:
            self._next_dose_faults.append(code)

    def commands(self):
        cmds = super().commands()
        cmds.update({"QRA": self._qra, "QRD": self._qrd})
        return cmds

    def other_reply(self, request: str, reply: str) -> str:
        if request.startswith("QRA 61 1"):
            return "QRA 60 7 A"
        return super().other_reply(request, reply)

    # -- QRD: parameters and results ------------------------------------------------------------
    def _qrd(self, conn: Connection, line: str, parts: list[str]) -> None:
        key = " ".join(parts[:4])
        if key in ("QRD 1 1 5", "QRD 1 1 6") and len(parts) == 5:
            try:
                value = float(parts[4])
            except ValueError:
                self.reply(conn, f"{key} L", line)
                return
            if value <= 0 or (key == "QRD 1 1 6" and value > 40):
                self.reply(conn, f"{key} L", line)
                return
            if key == "QRD 1 1 5":
                self.target_mg = value
            else:
                self.tolerance_pct = value
            self.reply(conn, f"{key} A", line)
        elif key == "QRD 2 4 12" and len(parts) == 4:
            if self.last_result is None:
                self.reply(conn, f"{key} I", line)
                return
            self.reply(conn, f"{key} B", line)
            for xml_line in self._result_xml().splitlines():
                conn.send(xml_line.encode() + self.eol)
            conn.send(f"{key} A".encode() + self.eol)
        else:
            self.reply(conn, "ES", line)

    def _result_xml(self) -> str:
        r = self.last_result or {}
        return "\n".join(
            [
                '<?xml version="1.0" encoding="UTF-8"?>',
                "<DosingResult>",
                f"  <SubstanceName>{self.substance}</SubstanceName>",
                f'  <TargetMass unit="mg">{r.get("target_mg", 0):.3f}</TargetMass>',
                f'  <ToleranceRange unit="%">{r.get("tolerance_pct", 0):.2f}</ToleranceRange>',
                f'  <DosedMass unit="mg">{r.get("dosed_mg", 0):.3f}</DosedMass>',
                f"  <Result>{r.get('result', 'OK')}</Result>",
                "</DosingResult>",
            ]
        )

    # -- QRA: actions ---------------------------------------------------------------------------
    def _qra(self, conn: Connection, line: str, parts: list[str]) -> None:
        key = " ".join(parts[:3])
        arg = parts[3] if len(parts) > 3 else None
        if key == "QRA 61 1" and arg is None:
            self._start_dose(conn, line)
        elif key == "QRA 61 4" and arg is None:
            self._stop_dose(conn, line, code=8)
        elif key == "QRA 60 7" and arg in ("2", "3"):
            if self.job is not None:
                self.reply(conn, f"{key} I 2", line)
            elif arg == "2" and self.door_stuck_open:
                self.door_open = True
                self.reply(conn, f"{key} I 3", line)  # the door did not reach its position in time
            else:
                self.door_open = arg == "3"
                self.reply(conn, f"{key} A", line)
        elif key == "QRA 60 8" and arg is not None and arg.isdigit() and 0 <= int(arg) <= 30:
            if self.job is not None:
                self.reply(conn, f"{key} I 2", line)
            else:
                self.sampler = int(arg)
                self.reply(conn, f"{key} A", line)
        elif key in ("QRA 61 1", "QRA 61 4", "QRA 60 7", "QRA 60 8"):
            self.reply(conn, f"{key} L", line)
        else:
            self.reply(conn, "ES", line)

    def _start_dose(self, conn: Connection, line: str) -> None:
        key = "QRA 61 1"
        now = self.clock.now()
        fault = self._next_dose_faults.pop(0) if self._next_dose_faults else None
        refuse = None
        if self.job is not None:
            refuse = 2
        elif fault in (1, 2, 4, 5, 6, 10, 11, 12):
            refuse = fault
        elif not self.head_mounted:
            refuse = 1
        elif self.door_open or self.target_mg is None:
            refuse = 5
        elif self._time_to_stable(now) is None or self._range_status(now):
            refuse = 6
        if refuse is not None:
            self.reply(conn, f"{key} I {refuse}", line)
            return
        assert self.target_mg is not None
        sigma = self.target_mg * self.dose_error_pct / 100.0
        planned = max(0.0, self.rng.gauss(self.target_mg, sigma))
        limit = self.target_mg * self.tolerance_pct / 100.0 * 0.9
        planned = min(max(planned, self.target_mg - limit), self.target_mg + limit)
        if planned > self.head_content_mg:
            fault = 7  # the head runs empty: powder-flow error
        ends = now + self.dose_overhead_s + planned / self.dose_rate_mg_per_s
        fail_code = fault if fault in (3, 7, 8, 9, 13) else None
        self.job = _DoseJob(self.target_mg, self.tolerance_pct, now, ends, planned, fail_code, conn, line)
        self.reply(conn, f"{key} B", line)
        when = now + (ends - now) * 0.5 if fail_code is not None else ends  # faults strike halfway
        self.job.timer = self.call_at(when, lambda: self._finish(failed=fail_code))

    def _dispense(self, mg: float) -> None:
        mg = min(mg, self.head_content_mg)
        self.head_content_mg -= mg
        if mg > 0:
            self.place(mg)
            self.dosed_log.append(mg)
            if self.on_dose is not None:
                self.on_dose(mg)

    def _finish(self, failed: int | None) -> None:
        job = self.job
        if job is None:
            return  # stopped meanwhile
        self.job = None
        now = self.clock.now()
        if failed is None:
            dosed = job.planned_mg
        else:
            flowing = job.ends_at - job.started_at - self.dose_overhead_s
            progress = (now - job.started_at - self.dose_overhead_s) / max(1e-9, flowing)
            dosed = min(job.planned_mg * max(0.0, min(1.0, progress)), self.head_content_mg)
        self._dispense(dosed)
        self.last_result = {
            "target_mg": job.target_mg,
            "tolerance_pct": job.tolerance_pct,
            "dosed_mg": dosed,
            "result": "OK" if failed is None else f"ERROR {failed}",
        }
        self.reply(job.conn, "QRA 61 1 A" if failed is None else f"QRA 61 1 I {failed}", job.request)

    def _reset(self, conn: Connection, line: str, parts: list[str]) -> None:
        if self.job is not None:  # @ aborts a running dose like an external stop
            self.cancel(self.job.timer)
            self._finish(failed=8)
        super()._reset(conn, line, parts)

    def _stop_dose(self, conn: Connection, line: str, code: int) -> None:
        if self.job is not None:
            self.cancel(self.job.timer)
            self._finish(failed=code)
        self.reply(conn, "QRA 61 4 A", line)
