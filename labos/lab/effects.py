"""What each kind of completed hardware step changes in the database.

Each effect runs in the transaction that writes the step's ``done`` journal row, whether the step
finished normally, was verified from the device after a crash, or was confirmed by the operator.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from labos.lab import inventory
from labos.lab.events import emit
from labos.lab.journal import effect
from labos.lab.records import FurnaceRunRow, TaskRow
from labos.lab.samples import add_provenance, create_sample, move_sample


@effect("create_sample")
def _create(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    create_sample(
        session,
        data["sample_id"],
        position=data["position"],
        container=data.get("container", "vial"),
        experiment_id=data.get("experiment_id"),
        cause=cause,
        lab_t=lab_t,
        parent_id=data.get("parent_id"),
    )


@effect("move")
def _move(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    move_sample(
        session,
        data["sample_id"],
        data["destination"],
        cause=cause,
        lab_t=lab_t,
        container=data.get("container"),
    )


@effect("dose")
def _dose(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    dosed = float((result or {}).get("dosed_mg", data["target_mg"]))
    lots = inventory.consume(session, data["precursor"], dosed, sample_id=data["sample_id"], lab_t=lab_t)
    add_provenance(
        session,
        data["sample_id"],
        "dose",
        task_id=owner,
        lab_t=lab_t,
        precursor=data["precursor"],
        target_mg=data["target_mg"],
        dosed_mg=round(dosed, 4),
        lots=lots,
        device=data.get("device"),
        confirmed_by=(result or {}).get("confirmed_by"),
    )


@effect("heat_start")
def _heat_start(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    run = session.get(FurnaceRunRow, owner)
    started = float((result or {}).get("started_s", lab_t))
    run.heat_start_s = started
    emit(session, "furnace_run.started", run.id, lab_t=started, furnace=run.furnace, members=len(run.members))
    for m in run.members:
        t = session.get(TaskRow, m)
        if t is not None and t.status in ("ready", "blocked"):
            t.status = "running"
            t.started_s = started
            emit(
                session,
                "task.started",
                t.id,
                lab_t=started,
                experiment=t.experiment_id,
                kind=t.kind,
                run=run.id,
            )


@effect("stage")
def _stage(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    """A processing step on a sample (mix, grind): provenance only."""
    add_provenance(
        session, data["sample_id"], data["stage"], task_id=owner, lab_t=lab_t, **data.get("info", {})
    )


@effect("xrd")
def _xrd(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    add_provenance(
        session,
        data["sample_id"],
        "xrd",
        task_id=owner,
        lab_t=lab_t,
        file=(result or {}).get("path"),
        device=data.get("device"),
        scan=data.get("scan"),
    )


@effect("outcome")
def _outcome(session: Session, owner: str, data: dict, result: Any, lab_t: float, cause: str) -> None:
    """The analysed outcome of an experiment, stored once (with its raw file) and announced."""
    from labos.db.repository import save_outcome
    from labos.domain import Outcome

    outcome = Outcome.model_validate(result)
    save_outcome(session, outcome, xrd_file=data.get("file"))
    if data.get("sample_id"):
        add_provenance(
            session,
            data["sample_id"],
            "analysis",
            task_id=owner,
            lab_t=lab_t,
            file=data.get("file"),
            target_fraction=outcome.target_fraction,
            success=outcome.success,
            phases={p.formula: p.weight_fraction for p in outcome.phases},
            rwp=outcome.rwp,
            source=outcome.source,
        )
    emit(
        session,
        "experiment.outcome",
        data["experiment_id"],
        lab_t=lab_t,
        target=outcome.target_formula,
        target_fraction=outcome.target_fraction,
        success=outcome.success,
        source=outcome.source,
    )
