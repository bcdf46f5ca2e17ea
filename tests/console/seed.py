"""A small, realistic lab database for the console tests: one running campaign with experiments,
samples and their moves, XRD outcomes with saved fits, lab-OS state (devices, inventory,
interventions) and an event log. Until the campaign loop exists, this is the 'running campaign'."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from labos.models.xrd.fitfile import save_fit
from sqlalchemy.orm import Session, sessionmaker

from labos.db import connect, session_scope
from labos.db.records import CampaignRow, SampleEventRow, SampleRow, TargetRow
from labos.db.repository import record_event, save_experiment, save_outcome
from labos.domain import (
    DoseStep,
    Experiment,
    GrindStep,
    HeatSegment,
    HeatStep,
    MixStep,
    Outcome,
    PhaseResult,
    Recipe,
    Target,
    XRDPattern,
    XRDStep,
    utcnow,
)
from labos.web import accounts

PASSWORDS = {"ada": "ada-admin-pass", "otto": "otto-operator-pass", "vera": "vera-viewer-pass"}
ROLES = {"ada": "admin", "otto": "operator", "vera": "viewer"}
CAMPAIGN = "cmp-spinels"

# Reflections (2θ, relative intensity) for the synthetic patterns: LiMn2O4 spinel (Fd-3m, a = 8.24 Å)
# and Mn2O3 (bixbyite) with Cu Kα1; positions from Bragg's law for the cubic cells, intensities rounded.
PEAKS = {
    "LiMn2O4": [
        (18.6, 100),
        (36.1, 45),
        (37.8, 8),
        (43.9, 40),
        (48.1, 6),
        (58.1, 12),
        (63.8, 30),
        (67.1, 8),
        (75.6, 6),
    ],
    "Mn2O3": [(23.1, 12), (32.9, 100), (38.2, 10), (45.1, 12), (49.3, 20), (55.1, 35), (65.7, 12)],
    "Li2MnO3": [(18.7, 100), (21.0, 10), (36.8, 30), (44.7, 40), (64.6, 25), (65.6, 20)],
}


def _recipe(p1: str, m1: float, p2: str, m2: float, temp: float, dwell: float) -> Recipe:
    return Recipe(
        steps=[
            DoseStep(precursor=p1, mass_mg=m1),
            DoseStep(precursor=p2, mass_mg=m2),
            MixStep(method="shaker", duration_min=10),
            HeatStep(segments=[HeatSegment(ramp_c_per_min=5, target_c=temp, dwell_min=dwell)]),
            GrindStep(duration_min=5),
            XRDStep(),
        ]
    )


def _fit(phases: dict[str, float], seed: int):
    """A fake AnalysisResult (the attributes labos.models.xrd.fitfile.save_fit reads) and its raw pattern."""
    rng = np.random.default_rng(seed)
    x = np.round(np.arange(10.0, 80.0, 0.04), 4)
    background = 60 + 25 * np.exp(-(x - 10) / 25)
    curves, details = {}, []
    for name, wf in phases.items():
        y = np.zeros_like(x)
        for pos, inten in PEAKS[name]:
            y += 40 * wf * inten * np.exp(-0.5 * ((x - pos) / 0.09) ** 2)
        curves[name] = y + background
        details.append(
            SimpleNamespace(
                name=name,
                formula=name,
                spacegroup="Fd-3m" if name == "LiMn2O4" else None,
                weight_fraction=wf,
                uncertainty=0.02,
                ticks=[p for p, _ in PEAKS[name]],
            )
        )
    calculated = background + sum(c - background for c in curves.values())
    observed = rng.poisson(calculated).astype(float)
    rwp = float(np.sqrt(np.sum((observed - calculated) ** 2 / observed.clip(1)) / np.sum(observed)))
    result = SimpleNamespace(
        x=x,
        observed=observed,
        calculated=calculated,
        background=background,
        phase_curves=curves,
        details=details,
        rwp=rwp,
        confidence=0.9,
    )
    return result, XRDPattern(two_theta=x.tolist(), counts=observed.tolist())


@dataclass
class Seeded:
    url: str
    factory: sessionmaker[Session]
    experiments: list[str]
    running: str
    with_xrd: str
    interventions: list[str] = field(default_factory=list)
    lab: bool = False


def add_users(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        for name, pw in PASSWORDS.items():
            accounts.add_user(s, name, pw, ROLES[name], actor="seed")


def seed(url: str, data_dir: Path, *, users: bool = True, lab: bool = True) -> Seeded:
    """Fill the database at ``url``; raw XRD files and fits go to ``data_dir``."""
    from labos.models.xrd.io import write_xrdml

    factory = connect(url)
    data_dir.mkdir(parents=True, exist_ok=True)
    if users:
        add_users(factory)
    plan = [
        # (target, precursors, masses, T, dwell, status, phases or None)
        ("LiMn2O4", "Li2CO3", 370.0, "MnO2", 1739.0, 700, 480, "completed", {"LiMn2O4": 0.82, "Mn2O3": 0.18}),
        ("LiMn2O4", "LiOH", 240.0, "Mn2O3", 1579.0, 650, 360, "completed", {"LiMn2O4": 0.41, "Mn2O3": 0.59}),
        (
            "LiMn2O4",
            "Li2CO3",
            370.0,
            "Mn3O4",
            1526.0,
            800,
            600,
            "completed",
            {"LiMn2O4": 0.64, "Li2MnO3": 0.36},
        ),
        ("Li2MnO3", "Li2CO3", 739.0, "MnO2", 869.0, 900, 720, "completed", {"Li2MnO3": 0.31, "Mn2O3": 0.69}),
        ("Li2MnO3", "LiOH", 479.0, "MnO2", 869.0, 850, 600, "running", None),
        ("LiMn2O4", "LiNO3", 690.0, "MnO2", 1739.0, 600, 240, "waiting_operator", None),
        ("Li2MnO3", "Li2O", 299.0, "MnO2", 869.0, 950, 480, "queued", None),
    ]
    start = utcnow() - timedelta(hours=30)
    exp_ids: list[str] = []
    with session_scope(factory) as s:
        s.add(
            CampaignRow(
                id=CAMPAIGN, name="Li–Mn–O spinels", status="running", config={"success_threshold": 0.5}
            )
        )
        for formula, ehull in (("LiMn2O4", 0.0), ("Li2MnO3", 0.0), ("LiMnO2", 0.012)):
            s.add(
                TargetRow(
                    campaign_id=CAMPAIGN, formula=formula, source="mp", e_above_hull=ehull, status="active"
                )
            )
        s.flush()
        for i, (target, p1, m1, p2, m2, temp, dwell, status, phases) in enumerate(plan):
            exp = Experiment(
                target=Target(formula=target, source="mp"),
                recipe=_recipe(p1, m1, p2, m2, temp, dwell),
                status=status,
                explanation=(
                    f"{p1} + {p2} ranked {i + 1} by reaction energy toward {target} (−{0.31 - 0.03 * i:.2f} eV/atom); "
                    f"{temp} °C from literature priors for similar carbonate routes, {dwell / 60:.0f} h dwell."
                ),
                campaign_id=CAMPAIGN,
                created_at=start + timedelta(hours=4 * i),
            )
            save_experiment(s, exp, planner="labos")
            exp_ids.append(exp.id)
            t = start + timedelta(hours=4 * i)
            record_event(s, "experiment.submitted", exp.id, lab_t=i * 14400.0)
            if status != "queued":
                sample = SampleRow(
                    id=f"smp-{exp.id[4:]}",
                    experiment_id=exp.id,
                    container="crucible",
                    position="dosing/1",
                    data={"status": "active"},
                )
                s.add(sample)
                path = [
                    "dosing/1",
                    "crucible_rack/3",
                    f"furnace_{1 + i % 2}/2",
                    "cooling_rack/1",
                    "xrd/1",
                    f"storage/{10 + i}",
                ]
                last = 6 if status == "completed" else 3
                for k, pos in enumerate(path[:last]):
                    s.add(
                        SampleEventRow(
                            sample=sample,
                            at=t + timedelta(minutes=20 * k),
                            position=pos,
                            cause="created" if k == 0 else f"moved by arm ({pos.split('/')[0]})",
                        )
                    )
                    record_event(
                        s,
                        "sample.moved" if k else "sample.created",
                        sample.id,
                        position=pos,
                        lab_t=i * 14400.0 + 1200 * k,
                        experiment_id=exp.id,
                    )
                sample.position = path[last - 1]
                for k, task in enumerate(["dose", "mix", "heat", "grind", "xrd", "analyze"][:last]):
                    t0 = i * 14400.0 + 900 * k
                    record_event(
                        s,
                        "task.started",
                        f"{exp.id}:{task}",
                        experiment=exp.id,
                        task_kind=task,
                        lab_t=t0,
                        device={"dose": "doser_1", "heat": f"furnace_{1 + i % 2}", "xrd": "xrd_1"}.get(task),
                    )
                    if status == "completed" or k < last - 1:
                        record_event(
                            s,
                            "task.finished",
                            f"{exp.id}:{task}",
                            experiment=exp.id,
                            task_kind=task,
                            lab_t=t0 + 800,
                        )
            if phases:
                result, pattern = _fit(phases, seed=i)
                xrd_file = data_dir / f"{exp.id}.xrdml"
                write_xrdml(pattern, xrd_file)
                save_fit(result, xrd_file)
                frac = phases.get(target, 0.0)
                save_outcome(
                    s,
                    Outcome(
                        experiment_id=exp.id,
                        phases=[
                            PhaseResult(
                                phase_id=n,
                                formula=n,
                                weight_fraction=w,
                                uncertainty=0.02,
                                spacegroup="Fd-3m" if n == "LiMn2O4" else None,
                            )
                            for n, w in phases.items()
                        ],
                        target_formula=target,
                        target_fraction=frac,
                        success=frac > 0.5,
                        rwp=result.rwp,
                        confidence=0.9,
                    ),
                    xrd_file=str(xrd_file),
                )
                record_event(s, "experiment.outcome", exp.id, target_fraction=frac, success=frac > 0.5)
                record_event(s, "experiment.completed", exp.id)
        # a furnace profile measured for the running experiment (lab clock in minutes since the programme start)
        running = exp_ids[4]
        for k in range(0, 200, 5):
            temp = min(25 + 5 * k, 850) + (3 * np.sin(k / 7) if k > 165 else 0)
            record_event(
                s,
                "furnace.reading",
                running,
                furnace="furnace_1",
                temperature_c=round(float(temp), 1),
                t_min=float(k),
                experiment_id=running,
            )
    out = Seeded(url=url, factory=factory, experiments=exp_ids, running=exp_ids[4], with_xrd=exp_ids[0])
    if lab:
        out.lab = _seed_lab(factory, out)
    return out


def _seed_lab(factory: sessionmaker[Session], seeded: Seeded) -> bool:
    """Devices, slots, inventory and two open interventions through the lab OS's own functions."""
    from labos.web import labgate

    if not labgate.lab_available(factory.kw["bind"]):
        return False
    from labos.lab.config import sim_lab_config
    from labos.lab.interventions import ClearDeviceFault, RefillPrecursor, raise_intervention
    from labos.lab.inventory import sync_inventory
    from labos.lab.records import LabStateRow, ResourceRow
    from labos.lab.resources import set_device_state, sync_resources

    cfg = sim_lab_config(furnaces=2, inventory={"Li2CO3": 50_000, "MnO2": 800, "LiOH": 20_000})
    with session_scope(factory) as s:
        sync_resources(s, cfg)
        sync_inventory(s, cfg.inventory)
        s.add(LabStateRow(id="lab", desired="running", clock_s=36 * 3600.0, config={"name": cfg.name}))
        s.flush()
        for name, busy in (("furnace_1", 20.0), ("furnace_2", 14.5), ("doser_1", 3.0), ("xrd_1", 2.5)):
            row = s.get(ResourceRow, name)
            row.busy_s, row.grants = busy * 3600, int(busy)
        s.get(ResourceRow, "furnace_1").holder = f"{seeded.running}:heat"
        s.get(ResourceRow, "furnace_1/2").occupant = f"smp-{seeded.running[4:]}"
        set_device_state(s, "furnace_2", "fault", {"error": "thermocouple open circuit (E.04)"})
        from labos.lab.samples import add_provenance

        first = seeded.experiments[0]
        for precursor, planned, dosed, lot in (
            ("Li2CO3", 370.0, 369.4, "SIM-1"),
            ("MnO2", 1739.0, 1741.2, "SIM-1"),
        ):
            add_provenance(
                s,
                f"smp-{first[4:]}",
                "dose",
                task_id=f"{first}:dose",
                lab_t=600.0,
                precursor=precursor,
                target_mg=planned,
                dosed_mg=dosed,
                lots=[{"lot": lot, "mg": dosed}],
                device="doser_1",
            )
        a = raise_intervention(
            s,
            ClearDeviceFault(device="furnace_2", error="thermocouple open circuit (E.04)", code="E.04"),
            lab_t=36 * 3600.0,
        )
        b = raise_intervention(
            s, RefillPrecursor(formula="MnO2", needed_mg=1739.0, stock_mg=800.0), lab_t=36 * 3600.0
        )
        seeded.interventions = [a.id, b.id]
    return True


class EventPump(threading.Thread):
    """Appends events in the background, as a running lab would, to prove live updates arrive."""

    def __init__(
        self, factory: sessionmaker[Session], experiment_id: str, *, every_s: float = 0.4, count: int = 200
    ):
        super().__init__(daemon=True)
        self.factory, self.exp, self.every_s, self.count = factory, experiment_id, every_s, count
        self.stop = threading.Event()
        self.sent: list[int] = []

    def run(self) -> None:
        for k in range(self.count):
            if self.stop.wait(self.every_s):
                return
            with session_scope(self.factory) as s:
                row = record_event(
                    s,
                    "task.progress",
                    f"{self.exp}:heat",
                    experiment=self.exp,
                    task_kind="heat",
                    message=f"live tick {k}",
                    lab_t=40000.0 + k,
                )
                s.flush()
                self.sent.append(row.id)
