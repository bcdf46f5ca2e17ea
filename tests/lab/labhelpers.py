"""Shared helpers of the lab OS tests: recipes, a fast simulated lab, an auto-operator, invariants."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from labos.db.records import SampleRow
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
from labos.lab import SimLab
from labos.lab.records import FurnaceRunRow, ResourceRow, TaskRow

PRECURSORS = {"Li2CO3": 1e7, "MnO2": 1e7, "Fe2O3": 1e7, "ZnO": 1e7}


def recipe(temp_c: float = 700.0, dwell_min: float = 240.0, heats: int = 1) -> Recipe:
    steps = [
        DoseStep(precursor="Li2CO3", mass_mg=370.0),
        DoseStep(precursor="MnO2", mass_mg=1739.0),
        MixStep(),
    ]
    for _ in range(heats):
        steps += [
            HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=temp_c, dwell_min=dwell_min)]),
            GrindStep(),
        ]
    steps.append(XRDStep())
    return Recipe(steps=steps)


def experiment(temp_c: float = 700.0, **kw) -> Experiment:
    return Experiment(target=Target(formula="LiMn2O4"), recipe=recipe(temp_c, **kw))


def simlab(db_url: str, **kw) -> SimLab:
    kw.setdefault("inventory", PRECURSORS)
    kw.setdefault("furnaces", 2)
    return SimLab.build(db_url, **kw)


def answer_from_physics(sim: SimLab, user: str = "auto-operator") -> int:
    """Answer every open intervention the way an operator looking at the lab would."""
    n = 0
    for iv in sim.lab.api.interventions():
        data = iv.data
        if iv.kind == "confirm_step" and data.get("effect") == "move":
            d = data["data"]
            at_dest = sim.physics.at(d["destination"]) is not None
            at_src = d["source"] == "vial_supply" or sim.physics.at(d["source"]) is not None
            option = (
                "at_destination" if at_dest and not (at_src and d["source"] != "vial_supply") else "at_source"
            )
        elif iv.kind == "confirm_step":
            option = iv.options[0]
        elif iv.kind == "clear_device_fault":
            option = "retry"
        elif iv.kind == "task_error":
            option = "retry"
        else:
            option = iv.options[0]
        sim.lab.api.answer(iv.id, option, user)
        n += 1
    return n


def check_invariants(sim: SimLab, n_doses_per_exp: int = 2, n_heats_per_exp: int = 1) -> dict:
    """No sample lost or duplicated, no dose or heat twice, DB and physical world agree."""
    store = sim.lab.store
    with store.factory() as s:
        samples = list(s.scalars(select(SampleRow)))
        slots = {r.name: r.occupant for r in s.scalars(select(ResourceRow).where(ResourceRow.kind == "slot"))}
        runs = list(s.scalars(select(FurnaceRunRow)))
        tasks = list(s.scalars(select(TaskRow)))
    phys = sim.physics
    # one DB sample per physical object, at the same place
    db_pos = Counter(smp.position for smp in samples)
    assert all(v == 1 for p, v in db_pos.items() if "/" in p), f"two samples share a position: {db_pos}"
    for smp in samples:
        if "/" in smp.position:
            assert slots.get(smp.position) == smp.id, f"slot {smp.position} does not record {smp.id}"
            assert phys.at(smp.position) is not None, (
                f"DB has {smp.id} at {smp.position}, the lab has nothing there"
            )
    occupied = {p for p, o in slots.items() if o}
    assert occupied == set(phys.positions()), (
        f"DB slots {sorted(occupied)} != physical {sorted(phys.positions())}"
    )
    objects = phys.state["objects"]
    assert len(objects) == len(samples), f"{len(objects)} physical vials for {len(samples)} samples"
    for oid, o in objects.items():
        per = Counter(p for p, _ in o["doses"])
        assert len(o["doses"]) == n_doses_per_exp and all(v == 1 for v in per.values()), (
            f"{oid} doses {o['doses']}"
        )
        assert len(o["heats"]) == n_heats_per_exp, f"{oid} was heated {len(o['heats'])} times"
    heats = phys.count("heat")
    assert heats == len([r for r in runs if r.heat_start_s is not None]), "a furnace ran a programme twice"
    return {"samples": len(samples), "runs": len(runs), "tasks": len(tasks), "heats": heats}
