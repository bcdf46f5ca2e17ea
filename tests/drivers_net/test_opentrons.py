"""Opentrons: dosing plans → Protocol API v2 → opentrons.simulate; HTTP client against the emulator."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.opentrons import (
    DosingPlan,
    OpentronsClient,
    ProtocolCheckError,
    Solution,
    Transfer,
    check_protocol,
    generate_protocol,
    simulate_protocol,
    volume_for_mass_ul,
    wet_mixing_plan,
)
from labos.drivers.protocols import LiquidHandler
from labos.drivers.registry import open_device
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import LINK_FAULTS, WireFault
from labos.simulator.emulators.opentrons import OpentronsEmulator

SOLUTIONS = [
    Solution(name="LiNO3", well="A1", formula="LiNO3", concentration_mol_l=2.0),
    Solution(name="Co(NO3)2", well="A2", formula="Co(NO3)2(H2O)6", concentration_mol_l=1.0),
    Solution(name="water", well="A3"),
]


@pytest.fixture(scope="module")
def protocol_text() -> str:
    plan = wet_mixing_plan(
        {"LiNO3": 69.0, "Co(NO3)2": 145.5}, SOLUTIONS, "B2", solvent="water", total_volume_ul=1500
    )
    return generate_protocol(plan)


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def emu(clock):
    with OpentronsEmulator(clock, step_s=2.0) as e:
        yield e


def make_client(emu, clock, **kw) -> OpentronsClient:
    opts = dict(clock=clock, sleep=lambda _s: clock.advance(5.0), poll_s=5.0, timeout_s=0.3)
    opts.update(kw)
    return OpentronsClient("127.0.0.1", emu.port, **opts)


@pytest.fixture
def client(emu, clock):
    c = make_client(emu, clock)
    yield c
    c.close()


# -- plans and simulation ---------------------------------------------------------------------
def test_volume_from_mass():
    # 68.95 g/mol LiNO3, 2 mol/L: 69 mg = 1.0007 mmol = 0.50036 mL
    assert volume_for_mass_ul(69.0, SOLUTIONS[0]) == pytest.approx(500.36, abs=0.05)
    with pytest.raises(ProtocolCheckError, match="solvent"):
        volume_for_mass_ul(10, SOLUTIONS[2])


def test_wet_mixing_plan_tops_up_with_solvent():
    plan = wet_mixing_plan({"LiNO3": 69.0}, SOLUTIONS, "A1", solvent="water", total_volume_ul=1000)
    assert plan.expected_ul()["A1"] == pytest.approx(1000)
    assert [t.solution for t in plan.transfers] == ["LiNO3", "water"]
    with pytest.raises(ProtocolCheckError, match="more than"):
        wet_mixing_plan({"LiNO3": 690.0}, SOLUTIONS, "A1", solvent="water", total_volume_ul=1000)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pipette": "flex_1channel_1000"}, "belongs on an Flex"),
        (
            {"transfers": [Transfer(solution="LiNO3", destination="A1", volume_ul=5)]},
            "below the 20 µL minimum",
        ),
        ({"transfers": [Transfer(solution="HCl", destination="A1", volume_ul=50)]}, "unknown solution"),
        ({"source_labware": "nest_12; import os"}, "load name"),
        ({"destination_slot": "1"}, "share a deck slot"),
    ],
)
def test_invalid_plans_name_the_problem(change, message):
    base = {"solutions": SOLUTIONS, "transfers": [Transfer(solution="LiNO3", destination="A1", volume_ul=50)]}
    with pytest.raises(ValueError, match=message):
        DosingPlan(**{**base, **change})


def test_generated_ot2_protocol_simulates_to_the_planned_volumes(protocol_text):
    plan = wet_mixing_plan(
        {"LiNO3": 69.0, "Co(NO3)2": 145.5}, SOLUTIONS, "B2", solvent="water", total_volume_ul=1500
    )
    report = check_protocol(plan, protocol_text)
    assert report.robot == "OT-2" and report.api_level == "2.20"
    assert report.dispensed_ul["3:B2"] == pytest.approx(1500, abs=0.01)
    assert report.aspirated_ul["2:A1"] == pytest.approx(plan.transfers[0].volume_ul, abs=0.01)
    assert report.tips_used == 2 + 2 + 2  # ~500 µL each = two 300 µL-tip aspirates, new tip for each
    assert not report.overfilled


def test_flex_protocol_and_overfill_check():
    plan = DosingPlan(
        robot="Flex",
        pipette="flex_1channel_1000",
        mount="left",
        tip_rack_slots=["B1"],
        source_slot="B2",
        destination_slot="C2",
        new_tip="once",
        solutions=SOLUTIONS,
        transfers=[Transfer(solution="water", destination="A1", volume_ul=4000)],  # a 3.4 mL well
    )
    with pytest.raises(ProtocolCheckError, match="overflow: C2:A1"):
        check_protocol(plan)


def test_simulation_rejects_a_broken_protocol(protocol_text):
    with pytest.raises(ProtocolCheckError, match="opentrons.simulate rejected"):
        simulate_protocol(protocol_text.replace("corning_24_wellplate_3.4ml_flat", "no_such_plate"))


# -- HTTP client against the emulator ---------------------------------------------------------
def test_run_to_success(client, emu, clock, protocol_text):
    assert isinstance(client, LiquidHandler)
    assert client.health()["robot_model"] == "OT-2 Standard"
    run_id = client.run_protocol(protocol_text, "wet_mix.py")
    assert client.run_status(run_id) == "running"
    assert client.wait_for_run(run_id, timeout_s=3600) == "succeeded"
    steps = len(emu.protocols[emu.runs[run_id].protocol.id].analysis["commands"])
    assert clock.now() >= 2.0 * steps
    assert emu.plays == [run_id]


def test_registry_opens_an_opentrons(emu, clock):
    c = open_device(
        {"name": "ot2", "kind": "opentrons", "host": "127.0.0.1", "tcp_port": emu.port}, clock=clock
    )
    assert isinstance(c, OpentronsClient)
    assert c.health()["api_version"] == "8.8.2"
    c.close()


def test_failed_run(client, emu, protocol_text):
    emu.fail_next_run(0.3, "Pipette overpressure detected")
    run_id = client.run_protocol(protocol_text, "wet_mix.py")
    with pytest.raises(DeviceFault, match="overpressure") as err:
        client.wait_for_run(run_id)
    assert err.value.code == "failed"
    assert emu.plays == [run_id]


def test_open_door_blocks_then_resume(client, emu, clock, protocol_text):
    run_id = client.run_protocol(protocol_text, "wet_mix.py")
    clock.advance(4.0)
    emu.open_door()
    with pytest.raises(DeviceBusy) as err:
        client.wait_for_run(run_id)
    assert err.value.code == "blocked-by-open-door"
    with pytest.raises(DeviceBusy):
        client.resume(run_id)  # not while the door is open
    emu.close_door()
    assert client.run_status(run_id) == "paused"
    client.resume(run_id)
    assert client.wait_for_run(run_id) == "succeeded"
    assert emu.plays == [run_id, run_id]


def test_a_second_run_while_one_is_active_is_refused(client, emu, protocol_text):
    client.run_protocol(protocol_text, "wet_mix.py")
    with pytest.raises(DeviceBusy) as err:
        client.run_protocol(protocol_text, "wet_mix.py")
    assert err.value.code == 409
    assert len(emu.plays) == 1


def test_robot_analysis_failure_stops_before_a_run(emu, clock):
    flex = generate_protocol(
        DosingPlan(
            robot="Flex",
            pipette="flex_1channel_1000",
            tip_rack_slots=["B1"],
            source_slot="B2",
            destination_slot="C2",
            solutions=SOLUTIONS,
            transfers=[Transfer(solution="water", destination="A1", volume_ul=100)],
        )
    )
    client = make_client(emu, clock, check_protocols=False)
    with pytest.raises(DeviceError, match="analysis") as err:
        client.run_protocol(flex, "flex.py")
    assert err.value.code == "analysis" and emu.runs == {}


def test_missing_version_header_is_422(emu, client):
    raw = httpx.get(f"http://127.0.0.1:{emu.port}/health")
    assert raw.status_code == 422 and "Opentrons-Version" in raw.text
    emu.strip_version_header()
    with pytest.raises(ProtocolError) as err:
        client.health()
    assert err.value.code == 422


@pytest.mark.parametrize("fault", sorted(LINK_FAULTS))
def test_one_bad_reply_to_a_status_request_is_retried(client, emu, protocol_text, fault):
    run_id = client.run_protocol(protocol_text, "wet_mix.py")
    emu.inject(fault, match="GET /runs", delay_s=0.6)
    assert client.run_status(run_id) == "running"


@pytest.mark.parametrize(
    "fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.GARBAGE, WireFault.PARTIAL, WireFault.OTHER_REPLY]
)
def test_persistent_bad_replies_are_typed_errors(client, emu, protocol_text, fault):
    run_id = client.run_protocol(protocol_text, "wet_mix.py")
    emu.inject(fault, match="GET /runs", count=None)
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        client.run_status(run_id)
    assert err.value.safe_to_retry


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.GARBAGE])
def test_lost_reply_to_play_is_never_resent(client, emu, protocol_text, fault):
    emu.inject(fault, match="POST /runs/")
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        client.run_protocol(protocol_text, "wet_mix.py")
    assert not err.value.safe_to_retry
    assert len(emu.plays) == 1  # executed once by the robot, never sent twice
    assert [m for m, p in emu.requests if p.endswith("/actions")] == ["POST"]


# -- fuzzed replies ---------------------------------------------------------------------------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.integers(100, 599), st.one_of(st.binary(max_size=40), _json.map(lambda v: json.dumps(v).encode())))
def test_any_reply_is_parsed_or_a_typed_error(status, body):
    client = OpentronsClient("robot.invalid", transport=lambda method, path, **kw: (status, body), retries=0)
    try:
        status_text = client.run_status("r1")
        assert isinstance(status_text, str)
    except DeviceError:
        pass
    finally:
        client.close()


def test_simulation_works_inside_a_running_event_loop():
    """A web server or notebook calls this from inside an event loop; opentrons uses asyncio.run()."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    plan = wet_mixing_plan({"LiNO3": 35.0}, SOLUTIONS, "C3", solvent="water", total_volume_ul=700)

    async def inside_loop():
        return check_protocol(plan)

    # a fresh thread, so that the test does not depend on what loop the test session runs
    with ThreadPoolExecutor(max_workers=1) as pool:
        report = pool.submit(asyncio.run, inside_loop()).result()
    assert report.dispensed_ul["3:C3"] == pytest.approx(700, abs=0.01)
