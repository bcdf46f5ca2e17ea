"""Eurotherm 2416 / 3216 box-furnace controllers over Modbus RTU (PROTOCOLS.md §2), via minimalmodbus.

minimalmodbus does the framing and CRC-16; this module adds what it lacks: a serial adapter that
logs every frame through :mod:`labos.drivers.transport`, reads exception replies without waiting
for the timeout and notices trailing bytes (long frames); typed errors for every Modbus failure;
retries only for reads and idempotent writes; and the programme logic.

Series differences (programme-status codes, implied decimals, the "running" threshold A-Lab used)
live in :class:`EurothermSeries` objects in :data:`SERIES`, not in code paths. Register numbers
come from PROTOCOLS.md; three that it does not list are marked ``unverified`` below (status word
75 with bit 0 = alarm 1 and bit 5 = sensor break, and 274 = acknowledge all alarms, from the
2400-series comms handbook as we read it; the 3216's programme area is assumed to match the
2416's) — check them on a real controller and override with ``options.registers``.

Programme encoding (as A-Lab wrote it): ramp units and dwell units set to minutes; a rate is
``int(rate * 10)`` (0.1 °C/min), a duration ``int(seconds / 6)`` (0.1 min). Each
:class:`HeatSegment` becomes a rate segment and, if it dwells, a dwell segment; the programme ends
with an end segment whose end type switches the output off so the furnace cools.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import minimalmodbus
from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
)
from labos.drivers.protocols import FurnaceStatus
from labos.drivers.registry import DeviceLimits, DeviceSpec, lab_context, register_kind
from labos.drivers.safety import check_program, check_ramp, check_setpoint
from labos.drivers.transport import LineTransport, SerialLine, open_transport, retry_call
from labos.simulator.clock import Clock, WallClock
from pydantic import BaseModel, ConfigDict, Field

from labos.domain import HeatSegment
from labos.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["SERIES", "EurothermFurnace", "EurothermSeries", "ProgramEncodingError", "encode_program"]

DEFAULT_REGISTERS: dict[str, int] = {
    "pv": 1,
    "target_sp": 2,
    "output": 3,
    "working_sp": 5,
    "program_number": 22,
    "program_status": 23,
    "sp1": 24,
    "sp2": 25,
    "sp_rate": 35,
    "segment": 56,
    "segment_time_left": 58,
    "status_word": 75,  # unverified: 2400 handbook "instrument status word"
    "sensor_break": 258,
    "auto_manual": 273,
    "ack_alarms": 274,  # unverified: 2400 handbook "acknowledge all alarms"
    "ramp_units": 8330,
    "dwell_units": 8331,
    "segment_base": 8336,
}

SEGMENT_TYPES = {"end": 0, "rate": 1, "time": 2, "dwell": 3, "step": 4}
END_TYPES = {"dwell": 0, "reset": 1, "output": 2}  # hold last SP / go to reset / output to end level (0 %)
TIME_UNITS = {"second": 0, "minute": 1, "hour": 2}


class ProgramEncodingError(DeviceError, ValueError):
    """A programme that cannot be written to this controller (too many segments, out of range)."""


class EurothermSeries(BaseModel):
    """What differs between controller series; everything else is shared code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    registers: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_REGISTERS))
    program_status_codes: dict[int, str]
    temperature_decimals: int = Field(ge=0, le=2)
    output_decimals: int = 1
    running_threshold_c: float  # A-Lab counted a furnace "running" while PV is at or above this
    segment_stride: int = 8
    max_segments: int = 16
    rate_scale: int = 10  # rate register = int(rate °C/min * rate_scale)
    duration_unit_s: float = 6.0  # duration register = int(seconds / duration_unit_s)
    time_left_scale: int = 10  # segment-time-left register, minutes × scale
    status_bits: dict[str, int] = Field(default_factory=lambda: {"alarm1": 0, "sensor_break": 5})

    def code_for(self, state: str) -> int:
        for code, name in self.program_status_codes.items():
            if name == state:
                return code
        raise ConfigError(f"series {self.name} has no programme-status code for {state!r}")

    def with_registers(self, overrides: dict[str, int]) -> EurothermSeries:
        unknown = set(overrides) - set(self.registers)
        if unknown:
            raise ConfigError(f"unknown Eurotherm register names: {sorted(unknown)}")
        return self.model_copy(update={"registers": {**self.registers, **overrides}})


SERIES: dict[str, EurothermSeries] = {
    # 2400 series / EPC3016: 1 reset, 2 run, 4 hold, 8 holdback, 16 complete (PROTOCOLS.md §2)
    "2416": EurothermSeries(
        name="2416",
        program_status_codes={1: "reset", 2: "run", 4: "hold", 8: "holdback", 16: "complete"},
        temperature_decimals=0,
        running_threshold_c=300.0,
    ),
    # 3200 series / 3216P: 0 reset, 1 run, 2 hold, 3 end (PROTOCOLS.md §2)
    "3216": EurothermSeries(
        name="3216",
        program_status_codes={0: "reset", 1: "run", 2: "hold", 3: "complete"},
        temperature_decimals=1,
        running_threshold_c=100.0,
    ),
}
SERIES["2408"] = SERIES["2416"].model_copy(update={"name": "2408"})
SERIES["3216P"] = SERIES["3216"].model_copy(update={"name": "3216P"})


def encode_program(
    series: EurothermSeries, segments: Sequence[HeatSegment], *, end_type: str = "output", device: str = ""
) -> list[list[int]]:
    """HeatSegments → controller segments ``[type, target, rate|duration, end_type]`` (unscaled ints)."""
    scale = 10**series.temperature_decimals
    out: list[list[int]] = []
    for seg in segments:
        rate = round(seg.ramp_c_per_min * series.rate_scale)
        target = round(seg.target_c * scale)
        if not 0 < rate <= 32767 or not -32768 <= target <= 32767:
            raise ProgramEncodingError(f"segment {seg} does not fit 16-bit registers", device=device)
        out.append([SEGMENT_TYPES["rate"], target, rate, 0])
        if seg.dwell_min > 0:
            duration = round(seg.dwell_min * 60 / series.duration_unit_s)
            if not 0 < duration <= 32767:
                raise ProgramEncodingError(
                    f"dwell {seg.dwell_min} min does not fit a 16-bit register", device=device
                )
            out.append([SEGMENT_TYPES["dwell"], target, duration, 0])
    out.append([SEGMENT_TYPES["end"], 0, 0, END_TYPES[end_type]])
    if len(out) > series.max_segments:
        raise ProgramEncodingError(
            f"{len(segments)} heating segments need {len(out)} controller segments; "
            f"the {series.name} holds {series.max_segments}",
            device=device,
        )
    return out


class _ModbusPort:
    """The serial-port surface minimalmodbus uses, over a :class:`LineTransport`.

    It logs through the transport, returns exception replies (5 bytes) as soon as they arrive
    instead of waiting out the timeout, and appends any bytes already waiting after a frame so a
    long frame fails the CRC check instead of polluting the next exchange.
    """

    def __init__(self, line: LineTransport, baudrate: int, timeout: float):
        self.line = line
        self.port = line.name
        self.baudrate = baudrate
        self.timeout = timeout
        self.last_rx = b""

    @property
    def is_open(self) -> bool:
        return not self.line.closed

    def open(self) -> None:
        if self.line.closed:
            raise DeviceError("serial port is closed", device=self.line.name)

    def close(self) -> None:
        self.line.close()

    def reset_input_buffer(self) -> None:
        self.line.flush_input()

    def reset_output_buffer(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        self.line.write(data)
        return len(data)

    def read(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        head = self.line.read_up_to(min(n, 2), self.timeout)
        if len(head) == 2 and head[1] & 0x80:
            want = 3  # exception reply: addr, fc|0x80, code, crc lo, crc hi
        else:
            want = n - len(head)
        rest = self.line.read_up_to(want, max(0.0, deadline - time.monotonic())) if want > 0 else b""
        data = head + rest + self.line.pending()
        self.last_rx = data
        return data


class EurothermFurnace:
    """One Eurotherm controller on a serial line (one slave address)."""

    def __init__(
        self,
        transport: LineTransport,
        *,
        series: EurothermSeries | str = "2416",
        name: str = "furnace",
        slave_address: int = 1,
        limits: DeviceLimits | None = None,
        baudrate: int = 9600,
        timeout_s: float = 0.5,
        retries: int = 2,
        runaway_margin_c: float = 50.0,
        stuck_after_s: float = 1800.0,
        clock: Clock | None = None,
    ):
        if isinstance(series, str):
            if series not in SERIES:
                raise ConfigError(f"unknown Eurotherm series {series!r}; known: {', '.join(SERIES)}")
            series = SERIES[series]
        if not 1 <= slave_address <= 247:
            raise ConfigError(f"Modbus slave address must be 1..247, got {slave_address}")
        self.series = series
        self.name = name
        self.limits = limits or DeviceLimits()
        self.retries = retries
        self.runaway_margin_c = runaway_margin_c
        self.stuck_after_s = stuck_after_s
        self.clock = clock or WallClock()
        self.t = transport
        self.port = _ModbusPort(transport, baudrate, timeout_s)
        self.inst = minimalmodbus.Instrument(self.port, slave_address)  # type: ignore[arg-type]
        self.inst.clear_buffers_before_each_transaction = True
        self.inst.close_port_after_each_call = False
        self.reg = series.registers
        self._hold_since: float | None = None
        self._last_pv: tuple[float, float] | None = None  # (time, PV) at the previous check()

    # -- Modbus plumbing -------------------------------------------------------------------------
    def _typed(self, exc: Exception, what: str, retry_safe: bool) -> DeviceError:
        rx = self.port.last_rx
        if isinstance(exc, minimalmodbus.NoResponseError):
            return DeviceTimeout(
                f"{what}: no reply", device=self.name, code="timeout", safe_to_retry=retry_safe
            )
        if isinstance(exc, minimalmodbus.SlaveDeviceBusyError):
            return DeviceBusy(
                f"{what}: controller busy (exception 06)", device=self.name, code=6, safe_to_retry=retry_safe
            )
        if isinstance(exc, minimalmodbus.SlaveReportedException):
            code = rx[2] if len(rx) >= 3 and rx[1] & 0x80 else None
            if isinstance(exc, minimalmodbus.IllegalRequestError):
                meaning = {
                    1: "illegal function",
                    2: "illegal data address (or read-only register)",
                    3: "illegal data value",
                }.get(code or 0, str(exc))
                return ProtocolError(
                    f"{what}: {meaning} (exception {code:02d})" if code else f"{what}: {exc}",
                    device=self.name,
                    code=code,
                )
            return DeviceFault(
                f"{what}: controller reported failure (exception {code})", device=self.name, code=code
            )
        if isinstance(exc, minimalmodbus.InvalidResponseError):
            text = str(exc)
            code = (
                "crc"
                if "CRC" in text or "checksum" in text
                else "address"
                if "slave" in text.lower()
                else "frame"
            )
            return ProtocolError(
                f"{what}: invalid reply ({code}): {rx!r}",
                device=self.name,
                code=code,
                safe_to_retry=retry_safe,
            )
        return ProtocolError(f"{what}: {exc}", device=self.name, code="modbus", safe_to_retry=retry_safe)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, retry: bool, **kw: Any) -> Any:
        """One Modbus transaction with typed errors; retried (``retry``) after a timeout, busy or a
        damaged frame, never after the controller's considered refusal (exceptions 01-04)."""

        def once() -> Any:
            try:
                return fn(*args, **kw)
            except (minimalmodbus.ModbusException, OSError) as exc:
                raise self._typed(exc, what, retry) from exc

        return retry_call(
            once,
            retries=self.retries if retry else 0,
            what=what,
            catch=(DeviceError,),
            retry_if=lambda err: (
                isinstance(err, DeviceTimeout | DeviceBusy)
                or (isinstance(err, ProtocolError) and err.code in ("crc", "address", "frame"))
            ),
        )

    def read_raw(self, register: int, count: int = 1) -> list[int]:
        """Holding registers as unsigned 16-bit ints (function 03); safe to retry."""
        return self._call(
            f"read register {register}", self.inst.read_registers, register, count, functioncode=3, retry=True
        )

    def _read_signed(self, register: int, decimals: int) -> float:
        return self._call(
            f"read register {register}",
            self.inst.read_register,
            register,
            decimals,
            functioncode=3,
            signed=True,
            retry=True,
        )

    def _write(self, register: int, value: int, *, retry: bool) -> None:
        self._call(
            f"write register {register}",
            self.inst.write_register,
            register,
            value,
            0,
            functioncode=6,
            signed=value < 0,
            retry=retry,
        )

    def _temp_raw(self, celsius: float) -> int:
        return round(celsius * 10**self.series.temperature_decimals)

    def _temp(self, raw: int) -> float:
        if raw >= 0x8000:
            raw -= 0x10000
        return raw / 10**self.series.temperature_decimals

    # -- reads -----------------------------------------------------------------------------------
    def pv(self) -> float:
        """Process value (°C): one register read."""
        return self._read_signed(self.reg["pv"], self.series.temperature_decimals)

    def temperature_c(self) -> float:
        return self.pv()

    def program_state(self) -> str:
        code = self.read_raw(self.reg["program_status"])[0]
        try:
            return self.series.program_status_codes[code]
        except KeyError:
            raise ProtocolError(
                f"unknown programme-status code {code} for series {self.series.name}",
                device=self.name,
                code="program_status",
            ) from None

    def status(self) -> FurnaceStatus:
        r = self.reg
        pv_block = self.read_raw(r["pv"], r["working_sp"] - r["pv"] + 1)
        sp_c = self._temp(pv_block[r["working_sp"] - r["pv"]])
        output = self._temp_out(pv_block[r["output"] - r["pv"]])
        state = self.program_state()
        segment = self.read_raw(r["segment"])[0]
        sensor_break = bool(self.read_raw(r["sensor_break"])[0])
        return FurnaceStatus(
            pv_c=self._temp(pv_block[0]),
            sp_c=sp_c,
            output_pct=output,
            program_state=state,
            segment=segment,
            sensor_break=sensor_break,
        )

    def _temp_out(self, raw: int) -> float:
        if raw >= 0x8000:
            raw -= 0x10000
        return raw / 10**self.series.output_decimals

    def alarms(self) -> dict[str, bool]:
        """Bits of the status word the series config names (alarm 1 = over-temperature, sensor break)."""
        word = self.read_raw(self.reg["status_word"])[0]
        return {name: bool(word >> bit & 1) for name, bit in self.series.status_bits.items()}

    def is_running(self) -> bool:
        """A-Lab's rule: the furnace counts as running (hot) while PV ≥ the series threshold."""
        return self.pv() >= self.series.running_threshold_c

    def check(self) -> FurnaceStatus:
        """Watchdog: status, or a DeviceFault for sensor break, latched alarm, runaway or a stuck hold.

        On a runaway the driver resets the programme first (output to reset level) and then raises.
        """
        st = self.status()
        if st.sensor_break:
            raise DeviceFault(
                "thermocouple sensor break (register 258)", device=self.name, code="sensor_break"
            )
        if self.alarms().get("alarm1"):
            raise DeviceFault(
                "over-temperature alarm latched; acknowledge after inspection",
                device=self.name,
                code="overtemp",
            )
        limit = self.limits.max_temperature_c
        now = self.clock.now()
        rising = self._last_pv is not None and st.pv_c > self._last_pv[1] + 0.5 and now > self._last_pv[0]
        self._last_pv = (now, st.pv_c)
        # above SP by the margin and still climbing (a furnace cooling after a reset is not a runaway)
        if (st.pv_c > st.sp_c + self.runaway_margin_c and rising) or (limit is not None and st.pv_c > limit):
            fault = DeviceFault(
                f"temperature running away: PV {st.pv_c:g} °C, SP {st.sp_c:g} °C",
                device=self.name,
                code="runaway",
            )
            try:
                self.reset_program()
            except DeviceError as exc:
                log.error("%s: could not reset the programme after a runaway: %s", self.name, exc)
            raise fault
        if st.program_state in ("hold", "holdback"):
            self._hold_since = self._hold_since if self._hold_since is not None else now
            if now - self._hold_since > self.stuck_after_s:
                raise DeviceFault(
                    f"programme stuck in {st.program_state.upper()} for {now - self._hold_since:.0f} s",
                    device=self.name,
                    code="stuck",
                )
        else:
            self._hold_since = None
        return st

    # -- writes ----------------------------------------------------------------------------------
    def set_setpoint(self, target_c: float) -> None:
        check_setpoint(self.limits, self.name, target_c)
        self._write(self.reg["target_sp"], self._temp_raw(target_c), retry=True)

    def set_ramp_rate(self, c_per_min: float) -> None:
        """Setpoint rate limit (°C/min) for manual setpoint changes."""
        check_ramp(self.limits, self.name, c_per_min)
        self._write(self.reg["sp_rate"], self._temp_raw(c_per_min), retry=True)

    def reset_program(self) -> None:
        """Programme to RESET (idempotent, so retried)."""
        self._write(self.reg["program_status"], self.series.code_for("reset"), retry=True)

    def acknowledge_alarms(self) -> None:
        """Explicit reset of a latched over-temperature alarm; DeviceFault if it is still latched."""
        self._write(self.reg["ack_alarms"], 1, retry=True)
        if self.alarms().get("alarm1"):
            raise DeviceFault(
                "over-temperature alarm still active after acknowledge (still too hot?)",
                device=self.name,
                code="overtemp",
            )

    def upload_program(self, segments: Sequence[HeatSegment], *, end_type: str = "output") -> list[list[int]]:
        """Write the programme and read it back; no effect on a running programme (checked first)."""
        check_program(self.limits, self.name, segments)
        encoded = encode_program(self.series, segments, end_type=end_type, device=self.name)
        r, stride = self.reg, self.series.segment_stride
        self._write(r["program_number"], 1, retry=True)
        self._write(r["ramp_units"], TIME_UNITS["minute"], retry=True)
        self._write(r["dwell_units"], TIME_UNITS["minute"], retry=True)
        for i, words in enumerate(encoded):
            addr = r["segment_base"] + stride * i
            values = [w & 0xFFFF for w in words]
            self._call(f"write segment {i + 1}", self.inst.write_registers, addr, values, retry=True)
        for i, words in enumerate(encoded):
            addr = r["segment_base"] + stride * i
            back = self.read_raw(addr, len(words))
            if back != [w & 0xFFFF for w in words]:
                raise ProtocolError(
                    f"segment {i + 1} reads back {back}, wrote {words}", device=self.name, code="readback"
                )
        return encoded

    def run_program(self, segments: Sequence[HeatSegment]) -> None:
        """Check limits, refuse if a programme is active or the controller is faulted, upload,
        verify, then send RUN exactly once and confirm it started."""
        check_program(self.limits, self.name, segments)
        encode_program(self.series, segments, device=self.name)  # fails before any byte if too long
        st = self.status()
        if st.sensor_break:
            raise DeviceFault(
                "sensor break: refusing to start a programme", device=self.name, code="sensor_break"
            )
        if self.alarms().get("alarm1"):
            raise DeviceFault(
                "over-temperature alarm latched: refusing to start", device=self.name, code="overtemp"
            )
        if st.program_state in ("run", "hold", "holdback"):
            raise DeviceBusy(
                f"a programme is already {st.program_state}; reset it first", device=self.name, code="busy"
            )
        if st.program_state == "complete":
            self.reset_program()
        self.upload_program(segments)
        run_code = self.series.code_for("run")
        try:
            self._write(self.reg["program_status"], run_code, retry=False)
        except (DeviceTimeout, ProtocolError) as exc:
            # the RUN may or may not have arrived: look, never send it again blindly
            state = self.program_state()
            if state in ("run", "holdback"):
                log.warning("%s: RUN reply lost (%s) but the programme is running", self.name, exc)
                return
            exc.safe_to_retry = state == "reset"
            raise
        state = self.program_state()
        if state not in ("run", "holdback", "complete"):
            raise DeviceFault(
                f"programme did not start (state {state})", device=self.name, code="not_started"
            )
        log.info("%s: programme of %d segments running", self.name, len(segments))

    def close(self) -> None:
        self.t.close()


@register_kind("eurotherm", "eurotherm2416", "eurotherm3216")
def open_eurotherm(spec: DeviceSpec, **context: Any) -> EurothermFurnace:
    opts = dict(spec.options)
    series_name = str(opts.pop("series", spec.kind.removeprefix("eurotherm") or "2416"))
    if series_name not in SERIES:
        raise ConfigError(f"device {spec.name!r}: unknown Eurotherm series {series_name!r}")
    series = SERIES[series_name]
    if "registers" in opts:
        series = series.with_registers(opts.pop("registers"))
    serial_kw = {k: opts.pop(k) for k in ("bytesize", "parity", "stopbits") if k in opts}
    baudrate = int(opts.pop("baudrate", 9600))
    if not spec.port:
        raise ConfigError(f"device {spec.name!r}: Modbus RTU needs a serial port")
    allowed = {"slave_address", "timeout_s", "retries", "runaway_margin_c", "stuck_after_s"}
    unknown = set(opts) - allowed
    if unknown:
        raise ConfigError(f"device {spec.name!r}: unknown Eurotherm options {sorted(unknown)}")
    line = open_transport(
        **spec.transport_kwargs(), baudrate=baudrate, timeout=float(opts.get("timeout_s", 0.5)), **serial_kw
    )
    assert isinstance(line, SerialLine)
    return EurothermFurnace(
        line,
        series=series,
        name=spec.name,
        limits=spec.limits,
        baudrate=baudrate,
        **opts,
        **lab_context(context, "clock"),
    )
