"""Device faults become retries or operator interventions, as configured; answers are audited."""

from __future__ import annotations

import pytest
from labos.drivers.errors import DeviceBusy, DeviceFault, DeviceTimeout

from labos.lab import InterventionError
from labos.lab.config import Faults
from tests.lab.labhelpers import answer_from_physics, check_invariants, experiment, simlab


def test_transient_fault_is_retried(lab_url):
    sim = simlab(lab_url)
    sim.lab.engine.devices["doser_1"].faults.inject(
        "dose", DeviceBusy("head busy", device="doser_1", safe_to_retry=True)
    )
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    assert api.experiment_status(exp.id) == "completed"
    retries = api.events(kinds=["task.retry"])
    assert len(retries) == 1 and "head busy" in retries[0].data["error"]
    assert not api.interventions(None)
    check_invariants(sim)


def test_device_fault_becomes_an_intervention_and_retry_resumes(lab_url):
    sim = simlab(lab_url)
    sim.lab.engine.devices["arm_furnace"].faults.inject(
        "move", DeviceFault("gripper lost", device="arm_furnace", code=7)
    )
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    assert (
        iv.kind == "clear_device_fault" and iv.subject == "arm_furnace" and iv.options == ["retry", "abort"]
    )
    assert api.experiment_status(exp.id) == "waiting_operator"
    assert {d.name: d.state for d in api.devices()}["arm_furnace"] == "fault"
    with pytest.raises(InterventionError, match="not an option"):
        api.answer(iv.id, "ignore", "bob")
    with pytest.raises(InterventionError, match="name of the user"):
        api.answer(iv.id, "retry", "  ")
    api.answer(iv.id, "retry", "bob")
    with pytest.raises(InterventionError, match="answered 'retry' by bob"):
        api.answer(iv.id, "retry", "carol")
    sim.run()
    assert api.experiment_status(exp.id) == "completed"
    assert {d.name: d.state for d in api.devices()}["arm_furnace"] == "ok"
    answered = api.events(kinds=["intervention.answered"])
    assert answered[0].data["user"] == "bob" and answered[0].data["option"] == "retry"
    check_invariants(sim)


def test_policy_fail_fails_the_experiment(lab_url):
    sim = simlab(lab_url, faults=Faults(on_exhausted="fail"))
    sim.lab.engine.devices["grinder_1"].faults.inject("run", DeviceFault("jammed", device="grinder_1"))
    bad, good = experiment(), experiment()
    sim.lab.submit(bad)
    sim.run()
    api = sim.lab.api
    assert api.experiment_status(bad.id) == "failed"
    assert not api.interventions()
    (stranded,) = [smp for smp in api.samples() if smp.status == "stranded"]
    assert stranded.position.startswith("grinder_1/")  # left where it was, blocking the grinder
    sim.physics.remove(stranded.position)
    api.remove_sample(stranded.id, "dave")
    assert api.sample(stranded.id).position == "removed"
    sim.lab.submit(good)
    sim.run()
    assert api.experiment_status(good.id) == "completed"


def test_lost_reply_of_a_dose_is_verified_on_the_balance(lab_url):
    """The doser dosed but its reply was lost: the balance shows the mass, nothing is dosed twice."""
    sim = simlab(lab_url)
    sim.lab.engine.devices["doser_1"].faults.inject(
        "dose", DeviceTimeout("no reply", device="doser_1"), after=True
    )
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    assert sim.lab.api.experiment_status(exp.id) == "completed"
    assert not sim.lab.api.interventions(None)
    check_invariants(sim)  # exactly one dose per precursor
    dose = [p for p in sim.lab.api.sample(sim.lab.api.samples()[0].id).provenance if p.kind == "dose"][0]
    assert abs(dose.data["dosed_mg"] - 370.0) < 10


def test_lost_reply_of_a_move_asks_where_the_sample_is(lab_url):
    sim = simlab(lab_url)
    sim.lab.engine.devices["arm_char"].faults.inject(
        "move", DeviceTimeout("no reply", device="arm_char"), after=True
    )
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    assert iv.kind == "confirm_step" and iv.options == ["at_destination", "at_source", "missing"]
    assert "Confirm where sample" in iv.message
    assert answer_from_physics(sim) == 1
    assert api.interventions(None)[0].answer == "at_destination"
    sim.run()
    assert api.experiment_status(exp.id) == "completed"
    check_invariants(sim)


def test_missing_sample_fails_its_experiment(lab_url):
    sim = simlab(lab_url)
    sim.lab.engine.devices["arm_furnace"].faults.inject(
        "move", DeviceTimeout("no reply", device="arm_furnace"), after=True
    )
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    sim.physics.remove(iv.data["data"]["destination"])  # the crucible fell and was swept up
    api.answer(iv.id, "missing", "erin")
    sim.run()
    assert api.experiment_status(exp.id) == "failed"
    (smp,) = api.samples()
    assert smp.position == "lost" and smp.status == "lost"
    assert all(p.occupant is None for p in api.positions())


def test_out_of_stock_asks_for_a_refill(lab_url):
    sim = simlab(lab_url, inventory={"Li2CO3": 100.0, "MnO2": 1e6})
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    assert iv.kind == "refill_precursor" and iv.subject == "Li2CO3"
    assert not sim.physics.state["objects"]  # asked before a vial was even placed
    with pytest.raises(InterventionError, match="lot"):
        api.answer(iv.id, "refilled", "frank")
    api.answer(iv.id, "refilled", "frank", values={"lot": "SA-77", "mg": 5000})
    sim.run()
    assert api.experiment_status(exp.id) == "completed"
    lots = {(lot.formula, lot.lot) for lot in api.inventory()}
    assert ("Li2CO3", "SA-77") in lots


def test_unanswered_intervention_escalates(lab_url):
    sim = simlab(lab_url, faults=Faults(escalate_after_min=30, escalate_max_level=3))
    sim.lab.engine.devices["doser_1"].faults.inject("dose", DeviceFault("powder jam", device="doser_1"))
    sim.lab.submit(experiment())
    sim.run()  # virtual time runs on: the request escalates every 30 min up to level 3
    (iv,) = sim.lab.api.interventions()
    assert iv.level == 3 and iv.escalate_at_s is None
    levels = [e.data["level"] for e in sim.lab.api.events(kinds=["intervention.escalated"])]
    assert levels == [1, 2, 3]


def test_furnace_fault_during_a_run_resumes_after_the_answer(lab_url):
    sim = simlab(lab_url)
    for f in ("furnace_1", "furnace_2"):
        sim.lab.engine.devices[f].faults.inject("status", DeviceFault("thermocouple", device=f), times=4)
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    assert iv.kind == "clear_device_fault" and iv.subject.startswith("furnace_")
    api.answer(iv.id, "retry", "gina")
    sim.run()
    assert api.experiment_status(exp.id) == "completed"
    check_invariants(sim)  # heated exactly once
