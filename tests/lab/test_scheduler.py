"""Scheduling: several resources at once without deadlock, furnace batching, utilisation, bounds."""

from __future__ import annotations

import random

from labos.lab.resources import Free, FreePool, Need
from tests.lab.labhelpers import answer_from_physics, check_invariants, experiment, simlab


def _runs(sim):
    return sim.lab.api.furnace_runs()


def test_two_experiments_compete_for_one_furnace(lab_url):
    """Different profiles cannot share a run: the furnace serves one after the other."""
    sim = simlab(lab_url, furnaces=1)
    a, b = experiment(700), experiment(900)
    sim.lab.submit(a)
    sim.lab.submit(b)
    sim.run()
    api = sim.lab.api
    assert api.experiment_status(a.id) == api.experiment_status(b.id) == "completed"
    runs = sorted(_runs(sim), key=lambda r: r.created_s)
    assert len(runs) == 2 and all(r.furnace == "furnace_1" and len(r.members) == 1 for r in runs)
    assert runs[0].finished_s <= runs[1].created_s  # never two runs in one furnace at once
    check_invariants(sim)
    m = sim.lab.metrics()
    assert m.completed == 2 and m.furnace_runs == 2
    assert m.lower_bound_h <= m.makespan_h
    assert 0 < m.furnace_utilisation <= m.furnace_occupancy <= 1


def test_same_profile_shares_one_furnace_run(lab_url):
    sim = simlab(lab_url, furnaces=1)
    exps = [experiment(800) for _ in range(3)]
    for e in exps:
        sim.lab.submit(e)
    sim.run()
    (run,) = _runs(sim)
    assert len(run.members) == 3 and run.capacity == 4
    check_invariants(sim)
    assert sim.lab.metrics().mean_batch == 3


def test_furnace_waits_briefly_for_a_batch_mate(lab_url):
    """A crucible ready 30 min later joins the run instead of waiting a whole programme."""
    sim = simlab(lab_url, furnaces=1)
    first, late = experiment(800), experiment(800)
    sim.lab.submit(first)

    def later():
        yield sim.lab.env.timeout(15 * 60)
        sim.lab.submit(late)

    sim.lab.process(later())
    sim.run()
    (run,) = _runs(sim)
    assert len(run.members) == 2


def test_without_batching_each_crucible_gets_its_own_run(lab_url):
    from labos.lab.config import Batching

    sim = simlab(lab_url, furnaces=2, batching=Batching(enabled=False))
    for _ in range(3):
        sim.lab.submit(experiment(800))
    sim.run()
    runs = _runs(sim)
    assert len(runs) == 3 and all(len(r.members) == 1 for r in runs)
    # a furnace never holds two runs at once
    for r in runs:
        for q in runs:
            if q.id != r.id and q.furnace == r.furnace:
                assert q.finished_s <= r.created_s or r.finished_s <= q.created_s


def test_busy_small_lab_never_deadlocks(lab_url):
    """Many experiments, tiny racks, mixed profiles and double heats: everything finishes."""
    rng = random.Random(3)
    sim = simlab(
        lab_url, furnaces=2, furnace_slots=2, crucible_rack=2, cooling_rack=1, xrd_slots=1, storage=30
    )
    exps = [experiment(rng.choice([700, 800, 900]), heats=rng.choice([1, 2])) for _ in range(10)]
    for e in exps:
        sim.lab.submit(e, priority=rng.random())
    sim.run()
    api = sim.lab.api
    assert {api.experiment_status(e.id) for e in exps} == {"completed"}
    assert not api.interventions()
    slots = {p.name: p for p in api.positions()}
    assert all(p.holder is None for p in slots.values())
    with sim.lab.store.factory() as s:
        from sqlalchemy import select

        from labos.db.records import SampleRow

        heats = {r.id: 0 for r in s.scalars(select(SampleRow))}
    for o in sim.physics.state["objects"].values():
        assert len(o["heats"]) in (1, 2)
    assert len(heats) == 10


def test_full_storage_asks_the_operator(lab_url):
    sim = simlab(lab_url, furnaces=1, storage=2)
    exps = [experiment(800) for _ in range(4)]
    for e in exps:
        sim.lab.submit(e)
    sim.run()
    api = sim.lab.api
    (iv,) = api.interventions()
    assert iv.kind == "empty_rack" and iv.subject == "storage" and iv.options == ["emptied"]
    for pos in [p for p in sim.physics.positions() if p.startswith("storage/")]:
        sim.physics.remove(pos)  # what alice does before she answers
    api.answer(iv.id, "emptied", "alice")
    sim.run()
    assert {api.experiment_status(e.id) for e in exps} == {"completed"}
    archived = [smp for smp in api.samples() if smp.position == "archive"]
    assert len(archived) == 2 and all(smp.status == "archived" for smp in archived)
    assert api.interventions(None)[0].answered_by == "alice"


def test_free_pool_books_all_or_nothing():
    rows = [
        Free("doser_1", "device", "doser", None),
        Free("arm", "device", "arm", None),
        Free("doser_1/1", "slot", "dosing", "doser_1"),
        Free("rack/1", "slot", "rack", None),
    ]
    pool = FreePool(rows)
    assert (
        pool.take([Need(role="doser"), Need(group="dosing", on="doser", tag="slot"), Need(name="xrd")])
        is None
    )
    assert pool.free_slots("dosing") == 1  # nothing taken by the failed request
    got = pool.take([Need(role="doser"), Need(group="dosing", on="doser", tag="slot"), Need(name="arm")])
    assert got == {"doser": "doser_1", "slot": "doser_1/1", "arm": "arm"}
    assert pool.take([Need(role="doser")]) is None
    assert pool.take([Need(group="rack")]) == {"rack": "rack/1"}


def test_auto_operator_helper_is_quiet_without_interventions(lab_url):
    sim = simlab(lab_url)
    assert answer_from_physics(sim) == 0
