"""An experiment runs end to end on the simulated lab: DAG → scheduler → drivers' protocols → outcome."""

from __future__ import annotations

from labos.lab.workflow import build_graph
from tests.lab.labhelpers import check_invariants, experiment, simlab


def test_experiment_end_to_end(lab_url):
    sim = simlab(lab_url)
    outcomes = []
    sim.lab.on_outcome(outcomes.append)
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    api = sim.lab.api
    assert api.experiment_status(exp.id) == "completed"
    assert [o.experiment_id for o in outcomes] == [exp.id]
    assert sim.lab.outcomes(exp.id)[0].target_formula == "LiMn2O4"

    # the sample went through every station, one move per task, each with its cause
    (smp,) = api.samples()
    view = api.sample(smp.id)
    groups = [h.position.split("/")[0] for h in view.history]
    assert groups == [
        "doser_1",
        "mixer_1",
        "crucible_rack",
        groups[3],
        "cooling_rack",
        "grinder_1",
        "xrd_1",
        "storage",
    ]
    assert groups[3].startswith("furnace_")
    assert all(h.cause for h in view.history)
    assert view.container == "crucible" and view.status == "stored"
    # provenance: lots and weighed masses, heat run, XRD file, analysis
    kinds = [p.kind for p in view.provenance]
    assert kinds == ["dose", "dose", "mix", "heat", "grind", "xrd", "analysis"]
    dose = view.provenance[0].data
    assert dose["precursor"] == "Li2CO3" and dose["lots"][0]["lot"] == "SIM-1"
    assert abs(dose["dosed_mg"] - 370.0) < 10
    assert view.provenance[5].data["file"].endswith(".json")
    # inventory follows the weighed masses
    lots = {lot.formula: lot for lot in api.inventory()}
    assert abs((lots["Li2CO3"].initial_mg - lots["Li2CO3"].stock_mg) - dose["dosed_mg"]) < 1e-6
    # every task is done and every booking released
    assert {t.status for t in api.tasks(exp.id)} == {"done"}
    assert all(d.holder is None for d in api.devices())
    # the event stream tells the story in order
    kinds = [e.kind for e in api.events()]
    assert (
        kinds.index("experiment.submitted")
        < kinds.index("experiment.started")
        < kinds.index("experiment.outcome")
    )
    assert kinds[-1] == "experiment.completed" or "experiment.completed" in kinds
    assert kinds.count("sample.moved") == 7 and kinds.count("sample.created") == 1
    later = api.events(after_id=api.events()[-3].id)
    assert len(later) == 2
    graph = api.graph(exp.id)
    assert graph.number_of_nodes() == build_graph(exp, sim.lab.cfg).number_of_nodes()
    assert all(graph.nodes[n]["status"] == "done" for n in graph)
    check_invariants(sim)


def test_furnace_run_keeps_its_temperature_profile(lab_url):
    """The furnace is polled through the programme; the readings follow the setpoint profile."""
    from labos.lab.records import FurnaceRunRow

    sim = simlab(lab_url)
    exp = experiment()
    sim.lab.submit(exp)
    sim.run()
    with sim.lab.store.factory() as s:
        (run,) = s.query(FurnaceRunRow).all()
        readings = run.data["readings"]
    target_c = exp.recipe.heat.max_temperature_c
    times = [t for t, _ in readings]
    temps = [c for _, c in readings]
    assert times == sorted(times) and len(readings) >= exp.recipe.heat.duration_min() / 10 / 2
    assert abs(max(temps) - target_c) < 5  # the dwell is seen, not only the end of the programme
    assert temps[-1] < target_c / 2  # the run ends cooled

    from labos.web.plots import furnace_profile  # the console draws it against the setpoint

    with sim.lab.store.factory() as s:
        profile = furnace_profile(s, exp.id)
    assert profile.measured is not None and len(profile.measured.temperature_c) == len(readings)
    assert abs(max(profile.measured.temperature_c) - max(profile.setpoint.temperature_c)) < 5
