"""State transitions of tasks, experiments and furnace runs, each inside the caller's transaction.

These are the only functions that change a task's or an experiment's status, so the task
executor, the recovery code and the operator's answers all move the lab through the same steps.
"""

from __future__ import annotations

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from labos.db.records import ExperimentRow, SampleRow
from labos.lab.events import emit
from labos.lab.records import FurnaceRunRow, TaskRow
from labos.lab.resources import release
from labos.lab.samples import is_slot, move_sample, set_sample_status

ACTIVE = ("blocked", "ready", "running", "resume", "waiting_operator")


def finish_task(session: Session, task, now_s: float, result: dict | None = None) -> list[str]:
    """Mark done, free its bookings, unblock successors; returns the ids that became ready.

    ``task`` is a TaskRow or a TaskInfo (anything with id, kind, experiment_id, successors and
    started_s); the rows are changed with plain UPDATEs."""
    values: dict = {"status": "done", "finished_s": now_s}
    if result is not None:
        values["result"] = result
    session.execute(
        update(TaskRow)
        .where(TaskRow.id == task.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    release(session, task.id, None, now_s)
    emit(
        session,
        "task.finished",
        task.id,
        lab_t=now_s,
        experiment=task.experiment_id,
        kind=task.kind,
        duration_min=round((now_s - (task.started_s or now_s)) / 60, 3),
    )
    succ = sorted(task.successors or [])
    became_ready: list[str] = []
    if succ:
        unblocked = and_(TaskRow.pending <= 1, TaskRow.status == "blocked")
        rows = session.execute(
            update(TaskRow)
            .where(TaskRow.id.in_(succ))
            .values(
                pending=TaskRow.pending - 1,
                status=case((unblocked, "ready"), else_=TaskRow.status),
                ready_s=case((unblocked, now_s), else_=TaskRow.ready_s),
            )
            .returning(TaskRow.id, TaskRow.status, TaskRow.pending)
            .execution_options(synchronize_session=False)
        ).all()
        became_ready = [i for i, st, pending in rows if st == "ready" and pending <= 0]
    else:  # only the end of a branch can end an experiment
        _maybe_complete_experiment(session, task.experiment_id, now_s)
    return became_ready


def _maybe_complete_experiment(session: Session, exp_id: str, now_s: float) -> None:
    left = session.scalar(
        select(func.count())
        .select_from(TaskRow)
        .where(TaskRow.experiment_id == exp_id, TaskRow.status != "done")
    )
    if left:
        return
    exp = session.get(ExperimentRow, exp_id)
    if exp is not None and exp.status not in ("completed", "failed", "cancelled"):
        exp.status = "completed"
        for s in session.scalars(select(SampleRow).where(SampleRow.experiment_id == exp_id)):
            if (s.data or {}).get("status", "active") == "active":
                set_sample_status(session, s.id, "done")
        emit(session, "experiment.completed", exp_id, lab_t=now_s)


def start_experiment(session: Session, exp_id: str, now_s: float) -> None:
    res = session.execute(
        update(ExperimentRow)
        .where(ExperimentRow.id == exp_id, ExperimentRow.status == "queued")
        .values(status="running")
    )
    if res.rowcount:
        emit(session, "experiment.started", exp_id, lab_t=now_s)


def wait_operator(session: Session, task_id: str, intervention_id: str, now_s: float) -> None:
    task = session.get(TaskRow, task_id)
    if task is None:
        return
    task.status = "waiting_operator"
    task.worker = None
    exp = session.get(ExperimentRow, task.experiment_id)
    if exp is not None and exp.status in ("queued", "running"):
        exp.status = "waiting_operator"
    emit(session, "task.waiting_operator", task_id, lab_t=now_s, intervention=intervention_id)


def resume_task(session: Session, task_id: str, now_s: float) -> None:
    """After an operator's answer: a worker picks the task up again (keeping its bookings)."""
    task = session.get(TaskRow, task_id)
    if task is None or task.status in ("done", "failed", "cancelled"):
        return
    task.status = "resume"
    task.worker = None
    exp = session.get(ExperimentRow, task.experiment_id)
    if exp is not None and exp.status == "waiting_operator":
        still = session.scalar(
            select(func.count())
            .select_from(TaskRow)
            .where(
                TaskRow.experiment_id == exp.id, TaskRow.status == "waiting_operator", TaskRow.id != task_id
            )
        )
        if not still:
            exp.status = "running"


def abort_experiment(
    session: Session,
    exp_id: str,
    *,
    reason: str,
    now_s: float,
    sample_to: str | None = "removed",
    sample_status: str = "discarded",
    failed_task: str | None = None,
    status: str = "failed",
) -> None:
    """Stop an experiment: cancel what is left, free its bookings, take its sample off the deck
    (the operator removed it, or it is lost), and drop it from any furnace batch still loading."""
    tasks = list(session.scalars(select(TaskRow).where(TaskRow.experiment_id == exp_id)))
    for t in tasks:
        if t.status in ACTIVE:
            t.status = "failed" if t.id == failed_task else "cancelled"
            t.finished_s = now_s
            t.error = reason
            release(session, t.id, None, now_s)
        if t.run_id:
            _leave_run(session, t, now_s)
    for s in session.scalars(select(SampleRow).where(SampleRow.experiment_id == exp_id)):
        if sample_to and (is_slot(s.position) or s.position != sample_to):
            move_sample(session, s.id, sample_to, cause=f"experiment stopped: {reason}", lab_t=now_s)
        set_sample_status(session, s.id, sample_status)
    exp = session.get(ExperimentRow, exp_id)
    if exp is not None and exp.status not in ("completed", "failed", "cancelled"):
        exp.status = status
        emit(session, f"experiment.{status}", exp_id, lab_t=now_s, reason=reason)


def _leave_run(session: Session, task: TaskRow, now_s: float) -> None:
    run = session.get(FurnaceRunRow, task.run_id)
    if run is None or run.status not in ("loading", "cooled", "unloading"):
        return
    if task.kind == "heat" and run.status == "loading":
        run.members = [m for m in run.members if m != task.id]
    if not run.members:
        close_run(session, run, now_s, status="cancelled")
    elif run.status in ("cooled", "unloading"):
        maybe_close_run(session, run, now_s)


def maybe_close_run(session: Session, run: FurnaceRunRow, now_s: float) -> None:
    """A run is over when every member's crucible is out of the furnace."""
    heat_tasks = [session.get(TaskRow, m) for m in run.members]
    unloads = []
    for h in heat_tasks:
        if h is None:
            continue
        unloads += [session.get(TaskRow, s) for s in h.successors or []]
    unloads = [u for u in unloads if u is not None and u.kind == "unload"]
    if all(u.status in ("done", "cancelled", "failed") for u in unloads):
        close_run(session, run, now_s)


def close_run(session: Session, run: FurnaceRunRow, now_s: float, status: str = "done") -> None:
    run.status = status
    run.finished_s = now_s
    release(session, f"run:{run.id}", None, now_s)
    emit(session, "furnace_run.finished", run.id, lab_t=now_s, furnace=run.furnace, status=status)
