"""Drivers and emulators on a hand-advanced clock, the way a simulated lab drives them."""

from __future__ import annotations

import pytest
from labos.drivers.registry import DeviceSpec, open_device
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import sleeper_for
from labos.simulator.emulators.door import DoorEmulator
from labos.simulator.emulators.mtsics import QuantosEmulator


def test_dose_on_a_manual_clock_advanced_by_the_driver_sleep():
    clock = ManualClock()
    dosed: list[float] = []
    with QuantosEmulator(clock, on_dose=dosed.append) as emu:
        dev = open_device(
            DeviceSpec(name="q", kind="quantos", **emu.address, options={"timeout_s": 0.2, "poll_s": 5.0}),
            clock=clock,
            sleep=sleeper_for(clock),
        )
        try:
            result = dev.dose(200.0)  # 8 s + 40 s of virtual time
        finally:
            dev.close()
    assert result.within_tolerance and dosed == [pytest.approx(result.dosed_mg, abs=1e-3)]
    assert 48 <= clock.now() <= 48 + 3 * 5.0  # virtual time moved by about the dose duration


def test_door_on_a_manual_clock():
    clock = ManualClock()
    with DoorEmulator(clock, move_time_s=8.0) as emu:
        dev = open_device(
            DeviceSpec(name="d", kind="furnace_door", **emu.address, options={"poll_s": 1.0}),
            clock=clock,
            sleep=sleeper_for(clock),
        )
        try:
            dev.open()
            assert dev.state() == "open"
        finally:
            dev.close()
    assert 8.0 <= clock.now() <= 11.0


def test_frozen_clock_does_not_hang_the_dose():
    """A clock that never moves (a SimPy env blocked by the caller) ends in a wall-clock timeout."""
    clock = ManualClock()
    with QuantosEmulator(clock) as emu:
        dev = open_device(
            DeviceSpec(
                name="q", kind="quantos", **emu.address, options={"timeout_s": 0.1, "dose_timeout_s": 0.3}
            ),
            clock=clock,
        )
        try:
            from labos.drivers.errors import DeviceTimeout

            with pytest.raises(DeviceTimeout):
                dev.dose(100.0)
            assert emu.job is None  # stopped, nothing dispensed
            assert emu.dosed_log == []
        finally:
            dev.close()
