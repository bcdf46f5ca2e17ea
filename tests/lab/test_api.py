"""The console's view: state, control (pause/resume/stop), event stream, task graph, inventory."""

from __future__ import annotations

import pytest

from labos.domain import DoseStep, Experiment, HeatSegment, HeatStep, Recipe, Target
from labos.errors import LabosError
from labos.lab import LabAPI, WorkflowError
from labos.lab.inventory import InventoryError
from tests.lab.labhelpers import experiment, simlab


def test_pause_resume_and_stop(lab_url):
    sim = simlab(lab_url)
    api = sim.lab.api
    api.pause("olga")
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    assert api.experiment_status(exp.id) == "queued" and api.state().desired == "paused"
    api.resume("olga")
    sim.run()
    assert api.experiment_status(exp.id) == "completed"
    api.stop("olga")
    sim.lab.submit(experiment())
    sim.run()
    state = api.state()
    assert state.desired == "stopped" and state.experiments == {"completed": 1, "queued": 1}
    kinds = [(e.kind, e.data.get("user")) for e in api.events(prefix="lab.") if e.kind != "lab.started"]
    assert kinds == [("lab.paused", "olga"), ("lab.resumed", "olga"), ("lab.stopped", "olga")]


def test_another_process_sees_the_same_lab(lab_url):
    sim = simlab(lab_url)
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    other = LabAPI(lab_url)  # e.g. the console, in its own process
    assert other.experiment_status(exp.id) == "completed"
    smp = other.samples(experiment_id=exp.id)[0]
    assert other.sample(smp.id).provenance and other.lineage(smp.id)[0].id == smp.id
    assert {d.name for d in other.devices()} >= {"doser_1", "furnace_1", "arm_char", "xrd_1"}
    assert any(p.occupant == smp.id for p in other.positions())
    runs = other.furnace_runs()
    assert runs[0].status == "done" and runs[0].max_c == 700
    moved = other.events(kinds=["sample.moved"], subject=smp.id)
    assert [e.data["destination"].split("/")[0] for e in moved][-1] == "storage"
    follow = list(other.follow(after_id=moved[-2].id, timeout_s=0.1, poll_s=0.02, kinds=["sample.moved"]))
    assert [e.id for e in follow] == [moved[-1].id]
    graph = other.graph(exp.id)
    assert list(graph.successors("dose")) == ["mix"]
    with pytest.raises(LabosError, match="no experiment"):
        other.experiment_status("exp-nope")


def test_submission_is_checked_and_idempotent(lab_url):
    sim = simlab(lab_url, furnaces=1)
    exp = experiment()
    assert sim.lab.submit(exp) == sim.lab.submit(exp)
    assert len(sim.lab.api.tasks(exp.id)) == 11
    too_hot = Experiment(
        target=Target(formula="LiMn2O4"),
        recipe=Recipe(
            steps=[
                DoseStep(precursor="Li2CO3", mass_mg=100),
                HeatStep(
                    segments=[HeatSegment(ramp_c_per_min=5, target_c=1190, dwell_min=60)], atmosphere="Ar"
                ),
            ]
        ),
    )
    with pytest.raises(WorkflowError, match="no furnace can run 1190 °C in Ar"):
        sim.lab.submit(too_hot)
    unknown = Experiment(
        target=Target(formula="ZrO2"), recipe=Recipe(steps=[DoseStep(precursor="ZrO2", mass_mg=5)])
    )
    with pytest.raises(InventoryError, match="ZrO2 is not in the lab's inventory"):
        sim.lab.submit(unknown)


def test_refill_and_device_offline(lab_url):
    sim = simlab(lab_url, furnaces=2)
    api = sim.lab.api
    api.refill("MnO2", "NEW-1", 2500.0, "pat")
    assert ("MnO2", "NEW-1", 2500.0) in {(lot.formula, lot.lot, lot.stock_mg) for lot in api.inventory()}
    with pytest.raises(InventoryError, match="positive"):
        api.refill("MnO2", "NEW-2", -1.0, "pat")
    api.set_device_state("furnace_1", "offline", "pat")
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    assert {r.furnace for r in api.furnace_runs()} == {"furnace_2"}
    with pytest.raises(LabosError, match="must be 'ok' or 'offline'"):
        api.set_device_state("furnace_1", "broken", "pat")
