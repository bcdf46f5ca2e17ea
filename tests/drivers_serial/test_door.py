"""Furnace door controller over TCP: moves, the temperature interlock, latched errors, link faults."""

from __future__ import annotations

import socket

import pytest
from labos.drivers.errors import (
    DeviceBusy,
    DeviceError,
    DeviceFault,
    DeviceTimeout,
    ProtocolError,
    SafetyLimitError,
)
from labos.drivers.protocols import Door
from labos.drivers.registry import DeviceSpec, open_device
from labos.simulator.emulators import WireFault


def test_open_close_state(door, door_emu):
    assert isinstance(door, Door)
    assert door.state() == "closed"
    door.open()
    assert door.state() == "open"
    door.open()  # already open: no second move
    door.close_door()
    assert door.state() == "closed"
    assert door_emu.moves == [("A", "Open"), ("A", "Closed")]


def test_hot_furnace_refused_before_any_byte(door, door_emu, door_temp):
    door_temp["c"] = 450.0
    with pytest.raises(SafetyLimitError) as ei:
        door.open()
    assert ei.value.code == "safe_door_temperature_c"
    assert door_emu.requests == []
    door.close_door()  # closing a hot furnace is fine


def test_unknown_temperature_keeps_the_door_shut(door_emu):
    dev = open_device(
        DeviceSpec(name="d", kind="furnace_door", **door_emu.address, limits={"safe_door_temperature_c": 200})
    )
    try:
        with pytest.raises(SafetyLimitError, match="unknown"):
            dev.open()
    finally:
        dev.close()

    def broken() -> float:
        raise DeviceTimeout("no reply", device="furnace")

    dev = open_device(
        DeviceSpec(
            name="d", kind="furnace_door", **door_emu.address, limits={"safe_door_temperature_c": 200}
        ),
        temperature_c=broken,
    )
    try:
        with pytest.raises(SafetyLimitError):
            dev.open()
    finally:
        dev.close()
    assert door_emu.requests == []


def test_controller_interlock_when_driver_has_no_limit(door_emu, door_temp, fast_clock):
    door_emu.safe_temperature_c = 200
    door_temp["c"] = 300
    dev = open_device(DeviceSpec(name="d", kind="furnace_door", **door_emu.address), clock=fast_clock)
    try:
        with pytest.raises(SafetyLimitError) as ei:
            dev.open()
        assert ei.value.code == "too_hot"
        assert door_emu.moves == []
    finally:
        dev.close()


def test_limit_switch_timeout_latches_error_until_reset(door, door_emu):
    door_emu.jam("A")
    with pytest.raises(DeviceFault) as ei:
        door.open()
    assert ei.value.code == "ERROR"
    assert door.state() == "error"
    with pytest.raises(DeviceFault):
        door.open()  # refused while latched
    assert len(door_emu.moves) == 1
    door.reset()
    assert door.state() == "closed"  # it re-closed after the jam
    door.open()
    assert door.state() == "open"


def test_overtemperature_trip_latched(door, door_emu, door_temp):
    door_temp["c"] = 1350.0  # above the controller's trip point
    with pytest.raises(DeviceFault):
        door.close_door()
    with pytest.raises(DeviceError, match="over-temperature still active"):
        door.reset()
    door_temp["c"] = 150.0
    with pytest.raises(DeviceFault):
        door.open()  # still latched after cooling...
    door.reset()  # ...until the explicit reset
    door.open()
    assert door.state() == "open"


def test_trip_overtemperature_fault(door, door_emu):
    door_emu.trip_overtemperature()
    with pytest.raises(DeviceFault):
        door.open()
    door.reset()
    door.open()


def test_busy_when_another_client_moves_the_door(door, door_emu):
    addr = door_emu.address
    with socket.create_connection((addr["host"], addr["tcp_port"])) as other:
        other.sendall(b"Open A\n")
        assert other.recv(100) == b"OK\n"
        with pytest.raises(DeviceBusy):
            door.close_door()


@pytest.mark.parametrize(
    "fault",
    [
        WireFault.NO_REPLY,
        WireFault.PARTIAL,
        WireFault.LATE,
        WireFault.DROP,
        WireFault.GARBAGE,
        WireFault.WRONG_EOL,
        WireFault.OTHER_REPLY,
    ],
)
def test_status_faults_are_retried(door, door_emu, fault):
    door_emu.inject(fault, match="Status", delay_s=0.25)
    assert door.state() == "closed"


@pytest.mark.parametrize(
    "fault, error",
    [
        (WireFault.NO_REPLY, DeviceTimeout),
        (WireFault.DROP, DeviceTimeout),
        (WireFault.GARBAGE, ProtocolError),
        (WireFault.OTHER_REPLY, ProtocolError),
        (WireFault.WRONG_EOL, ProtocolError),
    ],
)
def test_persistent_status_fault_is_typed(door, door_emu, fault, error):
    door_emu.inject(fault, match="Status", count=4)
    with pytest.raises(error):
        door.state()
    door_emu.clear_faults()
    assert door.state() == "closed"


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.LATE])
def test_lost_move_reply_is_not_resent(door, door_emu, fault):
    door_emu.inject(fault, match="Open", delay_s=0.3)
    door.open()
    assert door.state() == "open"
    assert door_emu.moves == [("A", "Open")]
    assert door_emu.requests.count("Open A") == 1


@pytest.mark.parametrize("fault", [WireFault.GARBAGE, WireFault.OTHER_REPLY])
def test_corrupt_move_reply_is_typed(door, door_emu, fault):
    door_emu.inject(fault, match="Open")
    with pytest.raises(ProtocolError):
        door.open()
    assert door_emu.requests.count("Open A") == 1


def test_bad_config_is_clear(door_emu):
    from labos.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown door options"):
        open_device(DeviceSpec(name="d", kind="furnace_door", **door_emu.address, options={"speed": 3}))
    with pytest.raises(ConfigError, match="one capital letter"):
        open_device(DeviceSpec(name="d", kind="furnace_door", **door_emu.address, options={"furnace": "a"}))
