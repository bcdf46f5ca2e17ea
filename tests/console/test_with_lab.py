"""The console on a database the lab OS really ran: control reaches the lab's engine, and the
timeline, devices, lineage and inventory show what the simulated lab did."""

from __future__ import annotations

import warnings

import pytest

from labos.domain import (
    DoseStep,
    Experiment,
    GrindStep,
    HeatSegment,
    HeatStep,
    MixStep,
    Recipe,
    Target,
    XRDStep,
)
from tests.console.conftest import login
from tests.console.seed import add_users

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _experiment(temp_c: float) -> Experiment:
    return Experiment(
        target=Target(formula="LiMn2O4"),
        recipe=Recipe(
            steps=[
                DoseStep(precursor="Li2CO3", mass_mg=370.0),
                DoseStep(precursor="MnO2", mass_mg=1739.0),
                MixStep(),
                HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=temp_c, dwell_min=240)]),
                GrindStep(),
                XRDStep(),
            ]
        ),
        explanation="console integration test",
    )


def test_console_controls_and_shows_a_simulated_lab(tmp_path):
    lab = pytest.importorskip("labos.lab")
    from labos.web import create_app

    url = f"sqlite:///{tmp_path / 'lab.sqlite'}"
    sim = lab.SimLab.build(url, inventory={"Li2CO3": 1e7, "MnO2": 1e7}, furnaces=2)
    add_users(sim.lab.store.factory)
    app = create_app(url, lab=sim.lab)  # the console hosts this lab: its changes wake the engine
    otto = login(TestClient(app), "otto")

    assert otto.post("/api/lab/pause", json={"reason": "loading racks"}).json()["desired"] == "paused"
    exps = [_experiment(700.0), _experiment(750.0)]
    for e in exps:
        sim.lab.submit(e)
    sim.run(until=5 * 3600)
    assert {otto.get(f"/api/experiments/{e.id}").json()["status"] for e in exps} == {"queued"}
    assert otto.post("/api/lab/resume", json={}).json()["desired"] == "running"
    sim.run()
    assert {otto.get(f"/api/experiments/{e.id}").json()["status"] for e in exps} == {"completed"}

    events = otto.get("/api/events", params={"kind": "lab.", "limit": 50}).json()
    control = [
        (e["kind"], e["data"].get("user"))
        for e in reversed(events)
        if e["kind"] in ("lab.paused", "lab.resumed")
    ]
    assert control == [("lab.paused", "otto"), ("lab.resumed", "otto")]
    audit = otto.get("/api/audit", params={"action": "lab."}).json()
    assert [(a["action"], a["username"]) for a in reversed(audit)] == [
        ("lab.pause", "otto"),
        ("lab.resume", "otto"),
    ]
    assert audit[-1]["detail"]["reason"] == "loading racks"

    # the task graph as it ran, on the lab clock, with the devices it booked
    tl = otto.get(f"/api/experiments/{exps[0].id}/timeline").json()
    tasks = [t for t in tl if t["status"] != "event"]
    kinds = [t["kind"] for t in tasks]
    assert {"dose", "heat", "xrd"} <= set(kinds) and all(t["status"] == "done" for t in tasks)
    assert all(t["end_min"] >= t["start_min"] for t in tasks)
    heat = next(t for t in tasks if t["kind"] == "heat")
    assert heat["device"].startswith("furnace_") and heat["end_min"] - heat["start_min"] > 240
    furnace = otto.get(f"/api/experiments/{exps[0].id}/furnace").json()
    assert furnace["furnace"] == heat["device"] and max(furnace["setpoint"]["temperature_c"]) == 700.0

    # devices: furnaces were busy, nothing is booked any more
    devices = {d["name"]: d for d in otto.get("/api/devices").json()}
    assert all(d["holder"] is None for d in devices.values())
    assert devices[heat["device"]]["utilisation"] > 0.3 and devices[heat["device"]]["grants"] >= 1
    assert otto.get("/api/lab").json()["clock_s"] > 4 * 3600

    # lineage: weighed masses and lots from the lab's provenance, the XRD file, the outcome
    [sample] = otto.get("/api/samples", params={"experiment": exps[0].id}).json()["items"]
    s = otto.get(f"/api/samples/{sample['id']}").json()
    assert s["position"].startswith("storage/")
    doses = {d["precursor"]: d for d in s["lineage"]["doses"]}
    assert abs(doses["MnO2"]["weighed_mg"] - 1739.0) < 40 and doses["MnO2"]["lots"][0]["lot"] == "SIM-1"
    assert [p["kind"] for p in s["lineage"]["provenance"]][:2] == ["dose", "dose"]
    assert s["lineage"]["xrd_files"] and s["lineage"]["outcomes"]
    lots = {lot["formula"]: lot for lot in otto.get("/api/inventory").json()}
    assert lots["MnO2"]["initial_mg"] - lots["MnO2"]["stock_mg"] > 3000  # two experiments' doses
