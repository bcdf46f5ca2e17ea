"""Eurotherm 2416 / 3216 controller + box furnace emulator, Modbus RTU on a pty (PROTOCOLS.md §2).

Thermal model (integrated in steps of ``step_s`` up to ``clock.now()`` whenever a register is
read or written, so it follows virtual or real time):

* chamber temperature T: ``dT/dt = heat · out/100 − loss · (T − ambient)``; at full power the
  furnace heats ``heat`` °C/s near ambient and levels off at ``ambient + heat/loss`` (≈1400 °C
  by default), so a fast programme ramp is limited by the heater;
* the thermocouple lags T with time constant ``sensor_tau_s``; PV is what it reads;
* a P controller with feed-forward drives the output towards the working setpoint (WSP);
* the programmer moves WSP segment by segment; when PV lags WSP by more than
  ``holdback_band_c`` the programme goes to HOLDBACK and waits, as a real controller does.

An independent over-temperature limit (``overtemp_trip_c``) cuts the heater and latches alarm 1
until the alarm is acknowledged (register 274) below the trip point.

Faults (PROTOCOLS.md §7): link and framing faults via :meth:`inject`, exceptions via
:meth:`inject_exception`, :meth:`make_read_only`, :meth:`set_sensor_break`,
:meth:`stick_output` (PV runs away past SP), :meth:`stick_program` (stuck in HOLD/HOLDBACK),
:meth:`trip_overtemperature`.

The same model behind Modbus TCP (EPC3016) and EI-Bisynch front ends:
:mod:`labos.simulator.emulators.eurotherm_frontends`.
"""

from __future__ import annotations

from dataclasses import dataclass

from labos.drivers.eurotherm import END_TYPES, SEGMENT_TYPES, SERIES, EurothermSeries
from labos.simulator.clock import Clock
from labos.simulator.emulators.modbus import ModbusError, ModbusRtuEmulator

__all__ = ["EurothermEmulator"]

_TIME_UNIT_S = {0: 1.0, 1: 60.0, 2: 3600.0}


@dataclass
class _Segment:
    kind: int
    target: float  # °C
    value: float  # rate °C/s (rate), seconds (time, dwell)
    end_type: int


class EurothermEmulator(ModbusRtuEmulator):
    def __init__(
        self,
        clock: Clock,
        *,
        series: EurothermSeries | str = "2416",
        slave_address: int = 1,
        name: str = "furnace",
        ambient_c: float = 25.0,
        heat_c_per_s: float = 0.5,
        loss_per_s: float = 0.5 / 1375.0,
        sensor_tau_s: float = 20.0,
        gain_pct_per_c: float = 4.0,
        holdback_band_c: float = 25.0,
        overtemp_trip_c: float = 1250.0,
        step_s: float = 2.0,
        seed: int = 0,
    ):
        super().__init__(clock, slave_address=slave_address, name=name, seed=seed)
        self.series = SERIES[series] if isinstance(series, str) else series
        self.reg = self.series.registers
        self.ambient_c = ambient_c
        self.heat_c_per_s = heat_c_per_s
        self.loss_per_s = loss_per_s
        self.sensor_tau_s = sensor_tau_s
        self.gain = gain_pct_per_c
        self.holdback_band_c = holdback_band_c
        self.overtemp_trip_c = overtemp_trip_c
        self.step_s = step_s
        # physical state
        self.chamber_c = ambient_c
        self.pv_c = ambient_c
        self.output_pct = 0.0
        self.wsp_c = ambient_c
        self.max_chamber_c = ambient_c  # hottest it has been (for tests of "heated twice")
        self._t = clock.now()
        # controller state
        self.tsp_c = 0.0
        self.sp_rate_c_per_min = 0.0
        self.manual = False
        self.manual_output = 0.0
        self.store: dict[int, int] = {}  # plain parameter registers (programme area, SP1...)
        self.program: list[_Segment] = []
        self.state = "reset"
        self.seg_idx = 0
        self.seg_elapsed_s = 0.0
        self.seg_start_wsp = ambient_c
        self.runs_started = 0  # how many times RUN was accepted
        # faults
        self.sensor_broken = False
        self.stuck_output_pct: float | None = None
        self.stuck_state: str | None = None
        self.alarm_latched = False
        self.read_only = {
            self.reg[k]
            for k in (
                "pv",
                "output",
                "working_sp",
                "segment",
                "segment_time_left",
                "status_word",
                "sensor_break",
            )
        }

    # -- faults ----------------------------------------------------------------------------------
    def set_sensor_break(self, broken: bool = True) -> None:
        with self.lock:
            self._advance()
            self.sensor_broken = broken

    def stick_output(self, pct: float | None = 100.0) -> None:
        """A welded contactor / failed SSR: the heater runs at ``pct`` whatever the controller says."""
        with self.lock:
            self._advance()
            self.stuck_output_pct = pct

    def stick_program(self, state: str | None) -> None:
        """Freeze the programmer in ``"hold"`` or ``"holdback"`` (None releases it)."""
        if state not in (None, "hold", "holdback"):
            raise ValueError("stick_program takes 'hold', 'holdback' or None")
        if state and state not in self.series.program_status_codes.values():
            raise ValueError(f"series {self.series.name} has no {state!r} state")
        with self.lock:
            self._advance()
            self.stuck_state = state

    def trip_overtemperature(self) -> None:
        with self.lock:
            self._advance()
            self.alarm_latched = True

    def make_read_only(self, register: int) -> None:
        """Writes to ``register`` are refused with exception 02 (e.g. comms access locked)."""
        with self.lock:
            self.read_only.add(register)

    # -- physics ---------------------------------------------------------------------------------
    def _advance(self) -> None:
        now = self.clock.now()
        while self._t < now:
            dt = min(self.step_s, now - self._t)
            self._step(dt)
            self._t += dt

    def advance(self) -> None:
        """Bring the model up to ``clock.now()`` (reads do this by themselves)."""
        with self.lock:
            self._advance()

    def _step(self, dt: float) -> None:
        self._program_step(dt)
        if self.state in ("reset",):
            self._follow_tsp(dt)
        # control
        if self.manual:
            out = self.manual_output
        elif (
            self.sensor_broken or self.alarm_latched or (self.state == "complete" and self._end_output_off())
        ):
            out = 0.0
        else:
            hold_power = 100.0 * self.loss_per_s * (self.wsp_c - self.ambient_c) / self.heat_c_per_s
            out = hold_power + self.gain * (self.wsp_c - self.pv_c)
        out = min(100.0, max(0.0, out))
        self.output_pct = out
        power = self.stuck_output_pct if self.stuck_output_pct is not None else out
        if self.alarm_latched:
            power = 0.0  # the independent limit controller has opened the contactor
        self.chamber_c += (
            self.heat_c_per_s * power / 100.0 - self.loss_per_s * (self.chamber_c - self.ambient_c)
        ) * dt
        self.pv_c += (self.chamber_c - self.pv_c) * min(1.0, dt / self.sensor_tau_s)
        self.max_chamber_c = max(self.max_chamber_c, self.chamber_c)
        if self.chamber_c > self.overtemp_trip_c:
            self.alarm_latched = True

    def _end_output_off(self) -> bool:
        return bool(self.program) and self.program[-1].end_type == END_TYPES["output"]

    def _follow_tsp(self, dt: float) -> None:
        if self.sp_rate_c_per_min > 0:
            step = self.sp_rate_c_per_min / 60.0 * dt
            delta = self.tsp_c - self.wsp_c
            self.wsp_c += max(-step, min(step, delta))
        else:
            self.wsp_c = self.tsp_c

    def _program_step(self, dt: float) -> None:
        if self.state not in ("run", "holdback"):
            return
        if self.stuck_state:
            self.state = self.stuck_state
            return
        if self.seg_idx >= len(self.program):
            self.state = "complete"
            return
        seg = self.program[self.seg_idx]
        lagging = abs(self.pv_c - self.wsp_c) > self.holdback_band_c and "holdback" in self._states()
        if seg.kind in (SEGMENT_TYPES["rate"], SEGMENT_TYPES["time"], SEGMENT_TYPES["dwell"]) and lagging:
            self.state = "holdback"
            return
        self.state = "run"
        if seg.kind == SEGMENT_TYPES["rate"]:
            step = seg.value * dt
            delta = seg.target - self.wsp_c
            self.wsp_c += max(-step, min(step, delta))
            if abs(seg.target - self.wsp_c) < 1e-9:
                self._next_segment()
        elif seg.kind == SEGMENT_TYPES["time"]:
            self.seg_elapsed_s += dt
            frac = min(1.0, self.seg_elapsed_s / max(seg.value, 1e-9))
            self.wsp_c = self.seg_start_wsp + (seg.target - self.seg_start_wsp) * frac
            if frac >= 1.0:
                self._next_segment()
        elif seg.kind == SEGMENT_TYPES["dwell"]:
            self.seg_elapsed_s += dt
            if self.seg_elapsed_s >= seg.value:
                self._next_segment()
        elif seg.kind == SEGMENT_TYPES["step"]:
            self.wsp_c = seg.target
            self._next_segment()
        else:  # end
            if seg.end_type == END_TYPES["reset"]:
                self.state = "reset"
            else:
                self.state = "complete"

    def _states(self) -> set[str]:
        return set(self.series.program_status_codes.values())

    def _next_segment(self) -> None:
        self.seg_idx += 1
        self.seg_elapsed_s = 0.0
        self.seg_start_wsp = self.wsp_c

    def _load_program(self) -> list[_Segment]:
        r, stride = self.reg, self.series.segment_stride
        rate_unit = _TIME_UNIT_S.get(self.store.get(r["ramp_units"], 1), 60.0)
        dwell_unit = _TIME_UNIT_S.get(self.store.get(r["dwell_units"], 1), 60.0)
        scale = 10**self.series.temperature_decimals
        segs = []
        for i in range(self.series.max_segments):
            base = r["segment_base"] + stride * i
            kind = self.store.get(base, 0)
            target = _signed(self.store.get(base + 1, 0)) / scale
            raw = self.store.get(base + 2, 0)
            end_type = self.store.get(base + 3, 0)
            if kind == SEGMENT_TYPES["rate"]:
                value = raw / self.series.rate_scale / rate_unit  # °C per second
            elif kind in (SEGMENT_TYPES["time"], SEGMENT_TYPES["dwell"]):
                # the duration register counts units of duration_unit_s when dwell units are minutes
                value = raw * self.series.duration_unit_s * (dwell_unit / 60.0)
            else:
                value = 0.0
            segs.append(_Segment(kind, target, value, end_type))
            if kind == SEGMENT_TYPES["end"]:
                break
        return segs

    # -- registers -------------------------------------------------------------------------------
    def _temp_raw(self, c: float) -> int:
        return round(c * 10**self.series.temperature_decimals) & 0xFFFF

    def read_holding(self, address: int) -> int:
        self._advance()
        r = self.reg
        if address == r["pv"]:
            return self._temp_raw(self.pv_c)
        if address == r["target_sp"]:
            return self._temp_raw(self.tsp_c)
        if address == r["output"]:
            return round(self.output_pct * 10**self.series.output_decimals) & 0xFFFF
        if address == r["working_sp"]:
            return self._temp_raw(self.wsp_c)
        if address == r["program_status"]:
            return self.series.code_for(self.state)
        if address == r["segment"]:
            return min(self.seg_idx + 1, len(self.program)) if self.state != "reset" else 0
        if address == r["segment_time_left"]:
            return self._time_left_raw()
        if address == r["sensor_break"]:
            return int(self.sensor_broken)
        if address == r["status_word"]:
            bits = self.series.status_bits
            return (int(self.alarm_latched) << bits["alarm1"]) | (
                int(self.sensor_broken) << bits["sensor_break"]
            )
        if address == r["sp_rate"]:
            return self._temp_raw(self.sp_rate_c_per_min)
        if address == r["auto_manual"]:
            return int(self.manual)
        if 0 <= address < 1000 or 8192 <= address < r["segment_base"] + self.series.segment_stride * 64:
            return self.store.get(address, 0)
        raise ModbusError(2)

    def _time_left_raw(self) -> int:
        if self.state not in ("run", "holdback", "hold") or self.seg_idx >= len(self.program):
            return 0
        seg = self.program[self.seg_idx]
        if seg.kind == SEGMENT_TYPES["rate"]:
            left = abs(seg.target - self.wsp_c) / max(seg.value, 1e-9)
        elif seg.kind in (SEGMENT_TYPES["time"], SEGMENT_TYPES["dwell"]):
            left = max(0.0, seg.value - self.seg_elapsed_s)
        else:
            left = 0.0
        return min(0xFFFF, round(left / 60.0 * self.series.time_left_scale))

    def check_writable(self, address: int, value: int) -> None:
        if address in self.read_only:
            raise ModbusError(2)
        self.read_holding(address)  # unknown addresses raise 02

    def write_holding(self, address: int, value: int) -> None:
        self.check_writable(address, value)
        self._advance()
        r = self.reg
        scale = 10**self.series.temperature_decimals
        if address == r["target_sp"]:
            self.tsp_c = _signed(value) / scale
        elif address == r["sp_rate"]:
            self.sp_rate_c_per_min = value / scale
        elif address == r["auto_manual"]:
            self.manual = bool(value)
        elif address == r["ack_alarms"]:
            if value and self.chamber_c < self.overtemp_trip_c - 10.0:
                self.alarm_latched = False
        elif address == r["program_status"]:
            self._program_command(value)
        else:
            if self.state in ("run", "hold", "holdback") and address >= r["ramp_units"]:
                raise ModbusError(3)  # a running programme cannot be edited
            self.store[address] = value

    def _program_command(self, code: int) -> None:
        names = self.series.program_status_codes
        if code not in names:
            raise ModbusError(3)
        want = names[code]
        if want == "run":
            if self.sensor_broken or self.alarm_latched:
                raise ModbusError(4)
            if self.state == "hold":
                self.state = "run"  # resume
                return
            if self.state in ("run", "holdback"):
                return
            self.program = self._load_program()
            self.seg_idx, self.seg_elapsed_s = 0, 0.0
            self.wsp_c = self.pv_c  # servo start from the process value
            self.seg_start_wsp = self.wsp_c
            self.state = "run"
            self.runs_started += 1
        elif want == "reset":
            self.state = "reset"
            self.seg_idx = 0
        elif want == "hold":
            if self.state in ("run", "holdback"):
                self.state = "hold"
        else:
            raise ModbusError(3)


def _signed(v: int) -> int:
    return v - 0x10000 if v >= 0x8000 else v
