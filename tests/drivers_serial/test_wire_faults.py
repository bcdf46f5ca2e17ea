"""The one fault vocabulary of the emulators (PROTOCOLS.md §7): who offers what, and a request lost
on its way in (the device never acts) against every kind of driver."""

from __future__ import annotations

import pytest
from labos.drivers.errors import DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.ur import URArm
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import LINK_FAULTS, FaultQueue, InjectedFault, WireFault
from labos.simulator.emulators.aeris import AerisEmulator
from labos.simulator.emulators.door import DoorEmulator
from labos.simulator.emulators.eurotherm import EurothermEmulator
from labos.simulator.emulators.mtsics import MtSicsEmulator, QuantosEmulator
from labos.simulator.emulators.opentrons import OpentronsEmulator
from labos.simulator.emulators.ur import UREmulator

from tests.drivers_serial.test_eurotherm import PROGRAM

SECTION_7 = {"no_reply", "partial", "late", "drop", "garbage", "wrong_eol", "other_reply"}


def test_link_faults_are_the_section_7_list():
    assert {f.value for f in LINK_FAULTS} == SECTION_7


@pytest.mark.parametrize("cls", [DoorEmulator, UREmulator, AerisEmulator, OpentronsEmulator])
def test_network_emulators_offer_every_link_fault(cls):
    assert LINK_FAULTS <= cls.supported_faults


def test_serial_emulators_offer_what_the_medium_allows():
    # a pty cannot drop; Modbus frames have no line ending but can be framed wrongly
    for cls in (MtSicsEmulator, QuantosEmulator):
        assert cls.supported_faults == LINK_FAULTS - {WireFault.DROP}
    assert EurothermEmulator.supported_faults == (LINK_FAULTS - {WireFault.DROP, WireFault.WRONG_EOL}) | {
        WireFault.BAD_CRC,
        WireFault.WRONG_ADDRESS,
        WireFault.LONG,
    }


def test_inject_refuses_what_cannot_happen():
    emu = DoorEmulator(ManualClock())
    with pytest.raises(ValueError, match="bad_crc does not apply"):
        emu.inject(WireFault.BAD_CRC)
    with pytest.raises(ValueError, match="drop does not apply"):
        MtSicsEmulator(ManualClock()).inject("drop")
    with pytest.raises(ValueError):
        emu.inject("not_a_fault")
    with pytest.raises(ValueError, match="count must be at least 1"):
        emu.inject(WireFault.GARBAGE, count=0)
    with pytest.raises(ValueError, match="only no_reply and drop"):
        emu.inject(WireFault.GARBAGE, executes=False)
    assert len(emu.faults) == 0


def test_fault_queue_matching_counts_and_directions():
    q = FaultQueue()
    q.add(InjectedFault(WireFault.GARBAGE, "status", remaining=2))
    q.add(InjectedFault(WireFault.NO_REPLY, None, remaining=None, executes=False))
    assert q.take("Open A") is None  # the reply fault matches only Status...
    assert q.take("  STATUS ").fault is WireFault.GARBAGE  # ...case-insensitive, spaces ignored
    assert q.take("Status").fault is WireFault.GARBAGE
    assert q.take("Status") is None  # two uses, then gone
    for _ in range(3):  # an inbound fault until cleared, and only for the request direction
        assert q.take("anything", inbound=True).fault is WireFault.NO_REPLY
    q.clear()
    assert q.take("anything", inbound=True) is None


# -- a request lost on its way in: the device never acts, the driver never resends blindly --------
def test_lost_dose_request_doses_nothing(quantos, quantos_emu):
    quantos_emu.inject(WireFault.NO_REPLY, match="QRA 61 1", executes=False)
    with pytest.raises(DeviceTimeout) as ei:
        quantos.dose(100.0)
    assert not ei.value.safe_to_retry  # the driver cannot know the request was lost
    assert quantos_emu.requests.count("QRA 61 1") == 1
    assert quantos_emu.hook_calls == [] and quantos_emu.job is None and quantos_emu.dosed_log == []


def test_lost_run_request_is_found_not_running_and_safe_to_retry(furnace, furnace_emu):
    run_key = furnace_emu.key(6, furnace_emu.reg["program_status"])
    furnace_emu.inject(WireFault.NO_REPLY, match=run_key, executes=False)
    with pytest.raises(DeviceTimeout) as ei:
        furnace.run_program(PROGRAM)
    assert ei.value.safe_to_retry  # the driver looked: the programme is in reset
    assert furnace_emu.runs_started == 0 and furnace_emu.requests.count(run_key) == 1


def test_dropped_door_request_moves_nothing(door, door_emu):
    door_emu.inject(WireFault.DROP, match="Open", executes=False)
    with pytest.raises(DeviceFault) as ei:
        door.open()
    assert ei.value.code == "position"  # the driver checked Status instead of resending
    assert door_emu.moves == [] and door_emu.requests.count("Open A") == 1
    assert door.state() == "closed"


def test_lost_play_request_starts_nothing(fast_clock):
    program = "def p():\n  sleep(1.0)\nend\n"
    with UREmulator(fast_clock, programs={"p.urp": program}) as emu:
        arm = URArm(
            "127.0.0.1",
            dashboard_port=emu.dashboard_port,
            secondary_port=emu.secondary_port,
            clock=fast_clock,
            timeout_s=0.2,
        )
        emu.inject(WireFault.NO_REPLY, match="play", executes=False)
        with pytest.raises(DeviceTimeout) as ei:
            arm.run_program("p.urp")
        assert not ei.value.safe_to_retry and arm.fault is not None
        assert emu.programs_started == [] and "play" not in emu.commands
        assert emu.requests.count("play") == 1
        arm.close()


def test_dropped_opentrons_play_request_plays_nothing():
    from labos.drivers.opentrons import OpentronsClient
    from labos.simulator.emulators.opentrons import EmulatedProtocol

    with OpentronsEmulator(ManualClock()) as emu:
        proto = EmulatedProtocol("p1", "p.py", "", {"id": "a", "result": "ok"}, 60.0)  # analysed already
        emu.protocols[proto.id] = proto
        client = OpentronsClient("127.0.0.1", emu.port, timeout_s=0.5)
        run_id = client.create_run(proto.id)
        emu.inject(WireFault.DROP, match="POST /runs/", executes=False)
        with pytest.raises((DeviceTimeout, ProtocolError)) as ei:
            client.action(run_id, "play")
        assert not ei.value.safe_to_retry
        assert emu.plays == [] and [m for m, p in emu.requests if p.endswith("/actions")] == []
        assert client.run_status(run_id) == "idle"  # the next request goes out on a fresh connection
        client.close()


def test_dropped_connections_are_reopened_for_reads(fast_clock):
    with UREmulator(fast_clock) as emu:
        arm = URArm(
            "127.0.0.1", dashboard_port=emu.dashboard_port, secondary_port=emu.secondary_port, timeout_s=0.2
        )
        assert arm.safety_status() == "NORMAL"
        emu.drop_connections()  # the controller rebooted its dashboard server
        assert arm.safety_status() == "NORMAL"  # a read: retried on a fresh connection
        assert emu.server.connections_accepted == 2
        arm.close()
