"""Eurotherm furnace controllers (2416/2408, 3216/3216P, EPC3016): the furnace logic, one class for every wire.

:class:`EurothermFurnace` holds what a furnace controller means — programme upload and read-back,
RUN sent exactly once and never blindly repeated, status, sensor break, over-temperature latch,
runaway and stuck-hold watchdog, and the safety limits checked before any byte is sent. It talks
to the controller through a :class:`~labos.drivers.furnace_transport.RegisterLink`, so the same
class runs over

* Modbus RTU on a serial line via minimalmodbus (kinds ``eurotherm``, ``eurotherm2416``,
  ``eurotherm3216``; PROTOCOLS.md §2),
* Modbus TCP via the pymodbus client (kind ``epc3016``: A-Lab's EPC3016),
* EI-Bisynch on a 7E1 serial line (kinds ``eurotherm2416_bisynch``, ``eurotherm_bisynch``; see
  :mod:`labos.drivers.bisynch`; no programme upload over that protocol).

Series differences (programme-status codes, implied decimals, the "running" threshold A-Lab used)
live in :class:`EurothermSeries` objects in :data:`SERIES`, not in code paths. Register numbers
come from PROTOCOLS.md; three that it does not list are marked ``unverified`` below (status word
75 with bit 0 = alarm 1 and bit 5 = sensor break, and 274 = acknowledge all alarms, from the
2400-series comms handbook as we read it; the 3216's programme area is assumed to match the
2416's, and so is the EPC3016's) — check them on a real controller and override with
``options.registers``.

Programme encoding (as A-Lab wrote it): ramp units and dwell units set to minutes; a rate is
``int(rate * 10)`` (0.1 °C/min), a duration ``int(seconds / 6)`` (0.1 min). Each
:class:`HeatSegment` becomes a rate segment and, if it dwells, a dwell segment; the programme ends
with an end segment whose end type switches the output off so the furnace cools.
"""

from __future__ import annotations

import logging
import termios
from collections.abc import Sequence
from typing import Any

from labos.drivers.bisynch import BISYNCH_PARAMS, BisynchLink, BisynchParam
from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
)
from labos.drivers.furnace_transport import ModbusRtuLink, ModbusTcpLink, RegisterLink
from labos.drivers.protocols import FurnaceStatus
from labos.drivers.registry import DeviceLimits, DeviceSpec, lab_context, register_kind
from labos.drivers.safety import check_program, check_ramp, check_setpoint
from labos.drivers.transport import LineTransport, SerialLine, open_transport
from labos.simulator.clock import Clock, WallClock
from pydantic import BaseModel, ConfigDict, Field

from labos.domain import HeatSegment
from labos.errors import ConfigError, NotImplementedYet

log = logging.getLogger(__name__)

__all__ = [
    "SERIES",
    "EurothermFurnace",
    "EurothermSeries",
    "ProgramEncodingError",
    "encode_program",
    "open_eurotherm",
    "open_eurotherm_bisynch",
    "open_eurotherm_tcp",
]

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
# EPC3016 on Modbus TCP: the 2400 programme-status encoding (PROTOCOLS.md §2) and, assumed, the 2400
# register map; one implied decimal and the 100 °C "running" threshold as for the 3216P (assumed).
SERIES["epc3016"] = SERIES["2416"].model_copy(
    update={"name": "epc3016", "temperature_decimals": 1, "running_threshold_c": 100.0}
)
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


class EurothermFurnace:
    """One Eurotherm controller, whatever the wire: the furnace logic over a :class:`RegisterLink`.

    ``transport`` is either a :class:`RegisterLink` (Modbus RTU, Modbus TCP, EI-Bisynch; see
    :mod:`labos.drivers.furnace_transport`) or, as before, a serial :class:`LineTransport`, which
    is wrapped in a :class:`ModbusRtuLink` with ``slave_address``, ``baudrate``, ``timeout_s``.
    """

    def __init__(
        self,
        transport: LineTransport | RegisterLink,
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
        self.series = series
        self.name = name
        self.limits = limits or DeviceLimits()
        self.runaway_margin_c = runaway_margin_c
        self.stuck_after_s = stuck_after_s
        self.clock = clock or WallClock()
        if isinstance(transport, LineTransport):
            transport = ModbusRtuLink(
                transport,
                slave_address=slave_address,
                baudrate=baudrate,
                timeout_s=timeout_s,
                retries=retries,
                name=name,
            )
        self.link: RegisterLink = transport
        self.reg = series.registers
        self._hold_since: float | None = None
        self._last_pv: tuple[float, float] | None = None  # (time, PV) at the previous check()

    # -- registers -------------------------------------------------------------------------------
    def read_raw(self, register: int, count: int = 1) -> list[int]:
        """Holding registers as unsigned 16-bit ints (function 03); safe to retry."""
        return self.link.read(register, count)

    def _write(self, register: int, value: int, *, retry: bool) -> None:
        self.link.write(register, value, retry=retry)

    def _temp_raw(self, celsius: float) -> int:
        return round(celsius * 10**self.series.temperature_decimals)

    def _temp(self, raw: int) -> float:
        if raw >= 0x8000:
            raw -= 0x10000
        return raw / 10**self.series.temperature_decimals

    # -- reads -----------------------------------------------------------------------------------
    def pv(self) -> float:
        """Process value (°C): one register read."""
        return self._temp(self.link.read(self.reg["pv"])[0])

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
        words = self.link.read_set([r["pv"], r["output"], r["working_sp"]])
        state = self.program_state()
        segment = self.read_raw(r["segment"])[0]
        return FurnaceStatus(
            pv_c=self._temp(words[r["pv"]]),
            sp_c=self._temp(words[r["working_sp"]]),
            output_pct=self._temp_out(words[r["output"]]),
            program_state=state,
            segment=segment,
            sensor_break=self.sensor_break(),
        )

    def sensor_break(self) -> bool:
        """The sensor-break register (258), or the status word's bit where the link has no 258."""
        if self.link.supports(self.reg["sensor_break"]):
            return bool(self.read_raw(self.reg["sensor_break"])[0])
        return self.alarms()["sensor_break"]

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
        self._require_programmer("programme upload")
        r, stride = self.reg, self.series.segment_stride
        self._write(r["program_number"], 1, retry=True)
        self._write(r["ramp_units"], TIME_UNITS["minute"], retry=True)
        self._write(r["dwell_units"], TIME_UNITS["minute"], retry=True)
        for i, words in enumerate(encoded):
            addr = r["segment_base"] + stride * i
            values = [w & 0xFFFF for w in words]
            self.link.write_block(addr, values, retry=True)
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
        self._require_programmer("programme run")
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

    def _require_programmer(self, what: str) -> None:
        if not self.link.supports_programs:
            raise NotImplementedYet(
                f"{what} over {type(self.link).__name__} not implemented: the protocol does not reach "
                "the programmer's segment table; use Modbus (RTU or TCP) or set the setpoint and ramp rate"
            )

    def close(self) -> None:
        self.link.close()


_COMMON_OPTIONS = {"timeout_s", "retries", "runaway_margin_c", "stuck_after_s"}


def _series_and_options(spec: DeviceSpec, default: str, allowed: set[str]) -> tuple[EurothermSeries, dict]:
    """The series (with register overrides) and the remaining options, unknown ones refused."""
    opts = dict(spec.options)
    series_name = str(opts.pop("series", default))
    if series_name not in SERIES:
        raise ConfigError(f"device {spec.name!r}: unknown Eurotherm series {series_name!r}")
    series = SERIES[series_name]
    if "registers" in opts:
        series = series.with_registers(opts.pop("registers"))
    unknown = set(opts) - allowed - _COMMON_OPTIONS
    if unknown:
        raise ConfigError(f"device {spec.name!r}: unknown Eurotherm options {sorted(unknown)}")
    return series, opts


def _furnace(spec: DeviceSpec, link: RegisterLink, series: EurothermSeries, opts: dict, context: dict):
    logic = {k: opts[k] for k in ("runaway_margin_c", "stuck_after_s") if k in opts}
    return EurothermFurnace(
        link, series=series, name=spec.name, limits=spec.limits, **logic, **lab_context(context, "clock")
    )


@register_kind("eurotherm", "eurotherm2416", "eurotherm3216")
def open_eurotherm(spec: DeviceSpec, **context: Any) -> EurothermFurnace:
    """Modbus RTU on a serial port (minimalmodbus)."""
    series, opts = _series_and_options(
        spec,
        spec.kind.removeprefix("eurotherm") or "2416",
        {"slave_address", "baudrate", "bytesize", "parity", "stopbits"},
    )
    if not spec.port:
        raise ConfigError(f"device {spec.name!r}: Modbus RTU needs a serial port")
    serial_kw = {k: opts.pop(k) for k in ("bytesize", "parity", "stopbits") if k in opts}
    baudrate = int(opts.pop("baudrate", 9600))
    timeout = float(opts.get("timeout_s", 0.5))
    line = open_transport(**spec.transport_kwargs(), baudrate=baudrate, timeout=timeout, **serial_kw)
    assert isinstance(line, SerialLine)
    link = ModbusRtuLink(
        line,
        slave_address=int(opts.get("slave_address", 1)),
        baudrate=baudrate,
        timeout_s=timeout,
        retries=int(opts.get("retries", 2)),
        name=spec.name,
    )
    return _furnace(spec, link, series, opts, context)


@register_kind("epc3016", "eurotherm_tcp")
def open_eurotherm_tcp(spec: DeviceSpec, **context: Any) -> EurothermFurnace:
    """Modbus TCP (pymodbus client) to ``host``:``tcp_port`` (502 if not given)."""
    series, opts = _series_and_options(spec, "epc3016", {"unit_id"})
    if not spec.host:
        raise ConfigError(f"device {spec.name!r}: Modbus TCP needs a host (and tcp_port, default 502)")
    link = ModbusTcpLink(
        spec.host,
        spec.tcp_port or 502,
        unit_id=int(opts.get("unit_id", 1)),
        timeout_s=float(opts.get("timeout_s", 0.5)),
        retries=int(opts.get("retries", 2)),
        name=spec.name,
    )
    return _furnace(spec, link, series, opts, context)


@register_kind("eurotherm2416_bisynch", "eurotherm_bisynch")
def open_eurotherm_bisynch(spec: DeviceSpec, **context: Any) -> EurothermFurnace:
    """EI-Bisynch on a serial port, 7E1 unless ``bytesize``/``parity``/``stopbits`` say otherwise.

    ``mnemonics`` maps register names to mnemonics, replacing the built-in ones (see
    :mod:`labos.drivers.bisynch` for their provenance)."""
    series, opts = _series_and_options(
        spec, "2416", {"address", "baudrate", "bytesize", "parity", "stopbits", "mnemonics"}
    )
    if not spec.port:
        raise ConfigError(f"device {spec.name!r}: EI-Bisynch needs a serial port")
    params = dict(BISYNCH_PARAMS)
    for reg_name, mnemonic in dict(opts.pop("mnemonics", {})).items():
        if reg_name not in series.registers:
            raise ConfigError(f"device {spec.name!r}: mnemonic for unknown register name {reg_name!r}")
        fmt = params[reg_name].fmt if reg_name in params else "int"
        params[reg_name] = BisynchParam(str(mnemonic), reg_name, fmt)
    serial_kw = {"bytesize": 7, "parity": "E", "stopbits": 1}
    serial_kw.update({k: opts.pop(k) for k in ("bytesize", "parity", "stopbits") if k in opts})
    timeout = float(opts.get("timeout_s", 0.5))
    try:
        line = open_transport(
            **spec.transport_kwargs(), baudrate=int(opts.pop("baudrate", 9600)), timeout=timeout, **serial_kw
        )
    except DeviceError as exc:  # e.g. a pty opened 7E1 before: Linux keeps ptys 8N1 and says EINVAL
        if not isinstance(exc.__cause__, termios.error):
            raise
        raise DeviceError(
            f"cannot set {serial_kw} on {spec.port}: {exc} (a pseudo-terminal keeps 8 bits, no parity; "
            "set bytesize = 8, parity = 'N' there)",
            device=spec.name,
            code="open",
        ) from exc
    assert isinstance(line, SerialLine)
    link = BisynchLink(
        line,
        registers=series.registers,
        address=int(opts.get("address", 1)),
        temperature_decimals=series.temperature_decimals,
        output_decimals=series.output_decimals,
        timeout_s=timeout,
        retries=int(opts.get("retries", 2)),
        params=params,
        name=spec.name,
    )
    return _furnace(spec, link, series, opts, context)
