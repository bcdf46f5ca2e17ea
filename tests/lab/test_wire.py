"""End to end at wire level: the real drivers over pty/TCP to the device emulators.

Quantos doser (MT-SICS over a pty), UR arms (TCP dashboard + script port), a Eurotherm furnace
(Modbus RTU over a pty), its door (TCP) and an Aeris diffractometer (TCP + result folder), all on
one scaled clock; the lab OS runs on a real-time SimPy clock at the same speed-up.
"""

from __future__ import annotations

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
from labos.lab.wirelab import WireLab
from tests.lab.labhelpers import answer_from_physics


def _experiment(target: str = "Li2TiO3") -> Experiment:
    return Experiment(
        target=Target(formula=target),
        recipe=Recipe(
            steps=[
                DoseStep(precursor="Li2CO3", mass_mg=369.5),
                DoseStep(precursor="TiO2", mass_mg=798.7),
                MixStep(),
                HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=900, dwell_min=120)]),
                GrindStep(),
                XRDStep(),
            ]
        ),
    )


def _run(wl: WireLab, exp: Experiment) -> dict:
    """Run until settled; an operator looking at the cell answers what the lab could not verify
    (at a large clock speed-up a short arm move can finish between two driver polls)."""
    for _ in range(5):
        status = wl.lab.run_until_settled([exp.id], limit_s=3 * 24 * 3600)
        if status[exp.id] != "waiting_operator" or not answer_from_physics(wl):
            return status
    return status


def _check(wl: WireLab, exp: Experiment) -> None:
    api = wl.lab.api
    assert not wl.bridge.errors
    (obj,) = wl.physics.state["objects"].values()
    assert [p for p, _ in obj["doses"]] == ["Li2CO3", "TiO2"]
    assert len(obj["heats"]) == 1 and obj["scans"] == 1
    (smp,) = api.samples()
    assert smp.position.startswith("storage/") and wl.physics.at(smp.position) is not None
    doses = [p.data for p in api.sample(smp.id).provenance if p.kind == "dose"]
    assert [round(d["dosed_mg"], 2) for d in doses] == [round(m, 2) for _, m in obj["doses"]]
    furnace = next(e for e in wl.emulators if type(e).__name__ == "EurothermEmulator")
    assert furnace.runs_started == 1 and furnace.max_chamber_c > 850
    (outcome,) = wl.lab.outcomes(exp.id)
    assert outcome.source == "xrd" and outcome.rwp is not None


def test_experiment_end_to_end_over_the_wire(lab_url, tmp_path):
    """No chemistry world (the powders do not react): the drivers, the journal and the XRD path."""
    with WireLab.build(
        lab_url, factor=4000.0, inventory={"Li2CO3": 1e6, "TiO2": 1e6}, workdir=tmp_path
    ) as wl:
        exp = _experiment()
        wl.lab.submit(exp)
        assert _run(wl, exp) == {exp.id: "completed"}, wl.lab.api.interventions()
        _check(wl, exp)
        (outcome,) = wl.lab.outcomes(exp.id)
        assert {p.formula for p in outcome.phases} >= {"TiO2"} and outcome.target_fraction < 0.05


@pytest.mark.slow
def test_synthesis_over_the_wire_with_the_demo_world(lab_url, tmp_path):
    from labos.simulator.world import World

    world = World.demo(seed=0)
    with WireLab.build(
        lab_url, factor=4000.0, world=world, inventory={"Li2CO3": 1e6, "TiO2": 1e6}, workdir=tmp_path
    ) as wl:
        exp = _experiment()
        wl.lab.submit(exp)
        assert _run(wl, exp) == {exp.id: "completed"}
        _check(wl, exp)
        (outcome,) = wl.lab.outcomes(exp.id)
        truth = next(iter(wl.physics.state["objects"].values()))["phases"]["Li2TiO3"]
        assert outcome.success and abs(outcome.target_fraction - truth) < 0.05
