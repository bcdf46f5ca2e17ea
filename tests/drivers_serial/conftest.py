"""Fixtures: each device emulator on a real pty / TCP socket, and its driver opened through the registry."""

from __future__ import annotations

import pytest
from labos.drivers.registry import DeviceSpec, open_device
from labos.drivers.transport import LineTransport
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import ScaledClock, sleeper_for
from labos.simulator.emulators.door import DoorEmulator
from labos.simulator.emulators.eurotherm import EurothermEmulator
from labos.simulator.emulators.mtsics import MtSicsEmulator, QuantosEmulator

FAST = 1000.0  # clock seconds per wall second for emulators that must make progress by themselves


class MemoryLine(LineTransport):
    """An in-memory transport: ``responder(request_bytes) -> reply_bytes`` plays the device."""

    def __init__(self, responder, name: str = "mem", timeout: float = 0.05, eol: str = "\r\n"):
        super().__init__(name, timeout=timeout, eol=eol)
        self.responder = responder
        self.sent: list[bytes] = []
        self._inbox = bytearray()

    def _send(self, data: bytes) -> None:
        self.sent.append(data)
        self._inbox += self.responder(data) or b""

    def _recv(self, timeout: float) -> bytes:
        data, self._inbox = bytes(self._inbox), bytearray()
        return data

    def _pending(self) -> bytes:
        return self._recv(0)

    def _close(self) -> None:
        pass


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fast_clock() -> ScaledClock:
    return ScaledClock(FAST)


@pytest.fixture
def balance_emu(manual_clock):
    emu = MtSicsEmulator(manual_clock, stability_timeout_s=5.0)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def balance(balance_emu):
    dev = open_device(
        DeviceSpec(
            name="balance",
            kind="mtsics_balance",
            **balance_emu.address,
            options={"timeout_s": 0.15, "stable_timeout_s": 0.3},
        )
    )
    yield dev
    dev.close()


@pytest.fixture
def quantos_emu(fast_clock):
    dosed: list[float] = []
    # "stable" = within stability_band_mg of the settled value; with noise (σ 4 µg) the reading may
    # be off by band + noise, so the band stays well inside the tests' 0.05 mg bound
    emu = QuantosEmulator(fast_clock, on_dose=dosed.append, stability_timeout_s=30.0, stability_band_mg=0.02)
    emu.hook_calls = dosed
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def quantos(quantos_emu, fast_clock):
    dev = open_device(
        DeviceSpec(
            name="quantos",
            kind="quantos",
            **quantos_emu.address,
            limits={"max_dose_mg": 2000, "min_dose_mg": 1},
            options={"timeout_s": 0.15, "stable_timeout_s": 0.3, "dose_timeout_s": 120},
        ),
        clock=fast_clock,
    )
    yield dev
    dev.close()


def make_furnace(emu, clock, **limits):
    return open_device(
        DeviceSpec(
            name="furnace",
            kind=f"eurotherm{emu.series.name}",
            **emu.address,
            limits=limits or {"max_temperature_c": 1200, "max_ramp_c_per_min": 20, "max_dwell_min": 2000},
            options={"baudrate": 115200, "timeout_s": 0.08, "stuck_after_s": 600},
        ),
        clock=clock,
    )


@pytest.fixture(params=["2416", "3216"])
def furnace_emu(request, manual_clock):
    emu = EurothermEmulator(manual_clock, series=request.param)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def furnace(furnace_emu, manual_clock):
    dev = make_furnace(furnace_emu, manual_clock)
    yield dev
    dev.close()


@pytest.fixture
def door_temp():
    return {"c": 25.0}


@pytest.fixture
def door_emu(fast_clock, door_temp):
    emu = DoorEmulator(fast_clock, temperature_c=lambda: door_temp["c"], overtemp_c=1300)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def door(door_emu, door_temp, fast_clock):
    dev = open_device(
        DeviceSpec(
            name="door",
            kind="furnace_door",
            **door_emu.address,
            limits={"safe_door_temperature_c": 200},
            options={"timeout_s": 0.15, "poll_s": 2.0, "move_timeout_s": 60},
        ),
        temperature_c=lambda: door_temp["c"],
        clock=fast_clock,
        sleep=sleeper_for(fast_clock),
    )
    yield dev
    dev.close()
