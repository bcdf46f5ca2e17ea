"""Safety limits from the lab configuration, checked by drivers before any byte is sent.

One place for the checks so every driver words a refusal the same way and none forgets one.
Each check raises :class:`SafetyLimitError` naming the device, the limit and the value.
"""

from __future__ import annotations

from collections.abc import Sequence

from labos.drivers.errors import SafetyLimitError
from labos.drivers.registry import DeviceLimits

from labos.domain import HeatSegment


def _refuse(device: str, what: str, code: str) -> SafetyLimitError:
    return SafetyLimitError(f"refused before sending: {what}", device=device, code=code)


def check_setpoint(limits: DeviceLimits, device: str, target_c: float) -> None:
    if target_c != target_c:  # NaN
        raise _refuse(device, "setpoint is not a number", "setpoint")
    if limits.max_temperature_c is not None and target_c > limits.max_temperature_c:
        raise _refuse(
            device,
            f"setpoint {target_c:g} °C is above max_temperature_c = {limits.max_temperature_c:g} °C",
            "max_temperature_c",
        )


def check_ramp(limits: DeviceLimits, device: str, ramp_c_per_min: float) -> None:
    if not ramp_c_per_min > 0:
        raise _refuse(device, f"ramp rate {ramp_c_per_min} °C/min must be positive", "ramp")
    if limits.max_ramp_c_per_min is not None and ramp_c_per_min > limits.max_ramp_c_per_min:
        raise _refuse(
            device,
            f"ramp {ramp_c_per_min:g} °C/min is above max_ramp_c_per_min = {limits.max_ramp_c_per_min:g}",
            "max_ramp_c_per_min",
        )


def check_program(limits: DeviceLimits, device: str, segments: Sequence[HeatSegment]) -> None:
    """Every segment of a heating programme within the furnace's limits."""
    if not segments:
        raise _refuse(device, "a heating programme needs at least one segment", "program")
    for i, seg in enumerate(segments, 1):
        try:
            check_setpoint(limits, device, seg.target_c)
            check_ramp(limits, device, seg.ramp_c_per_min)
            if limits.max_dwell_min is not None and seg.dwell_min > limits.max_dwell_min:
                raise _refuse(
                    device,
                    f"dwell {seg.dwell_min:g} min is above max_dwell_min = {limits.max_dwell_min:g}",
                    "max_dwell_min",
                )
        except SafetyLimitError as exc:
            raise SafetyLimitError(f"segment {i}: {exc}", device=device, code=exc.code) from None


def check_dose(limits: DeviceLimits, device: str, target_mg: float, tolerance_pct: float) -> None:
    if not target_mg > 0:
        raise _refuse(device, f"dose target {target_mg} mg must be positive", "dose")
    if not tolerance_pct > 0:
        raise _refuse(device, f"dose tolerance {tolerance_pct} % must be positive", "tolerance")
    if limits.max_dose_mg is not None and target_mg > limits.max_dose_mg:
        raise _refuse(
            device, f"dose {target_mg:g} mg is above max_dose_mg = {limits.max_dose_mg:g} mg", "max_dose_mg"
        )
    if limits.min_dose_mg is not None and target_mg < limits.min_dose_mg:
        raise _refuse(
            device, f"dose {target_mg:g} mg is below min_dose_mg = {limits.min_dose_mg:g} mg", "min_dose_mg"
        )
    if limits.max_tolerance_pct is not None and tolerance_pct > limits.max_tolerance_pct:
        raise _refuse(
            device,
            f"tolerance {tolerance_pct:g} % is above max_tolerance_pct = {limits.max_tolerance_pct:g} %",
            "max_tolerance_pct",
        )


def check_door_temperature(limits: DeviceLimits, device: str, temperature_c: float | None) -> None:
    """Open a furnace door only when the furnace is known to be below the safe temperature."""
    safe = limits.safe_door_temperature_c
    if safe is None:
        return
    if temperature_c is None or temperature_c != temperature_c:
        raise _refuse(device, "furnace temperature unknown; the door stays closed", "safe_door_temperature_c")
    if temperature_c > safe:
        raise _refuse(
            device,
            f"furnace at {temperature_c:.0f} °C is above safe_door_temperature_c = {safe:g} °C",
            "safe_door_temperature_c",
        )
