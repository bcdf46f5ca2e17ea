"""Operator interventions: typed requests with options, escalation after a timeout, and an audit
record of who answered what. Answering applies the answer to the lab state in the same
transaction (a confirmed position moves the sample, a refill books the new lot, a cleared fault
returns the device to service), so the console can answer from another process."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.db.records import SampleRow
from labos.domain import new_id, utcnow
from labos.errors import LabosError
from labos.lab import inventory, journal
from labos.lab.events import emit
from labos.lab.records import FurnaceRunRow, InterventionRow, TaskRow
from labos.lab.resources import set_device_state
from labos.lab.samples import is_slot, move_sample, set_sample_status
from labos.lab.transitions import abort_experiment, close_run, resume_task


class InterventionError(LabosError):
    """An answer that is not one of the options, or to a request already answered."""


class Intervention(BaseModel):
    """Base of every request type. ``options`` are the answers the operator may give."""

    kind: str
    task_id: str | None = None
    OPTIONS: ClassVar[tuple[str, ...]] = ()

    def options(self) -> list[str]:
        return list(self.OPTIONS)

    def subject(self) -> str | None:
        return self.task_id

    def message(self) -> str:  # pragma: no cover - every subclass says what it wants
        raise NotImplementedError

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        raise NotImplementedError  # pragma: no cover


# ---- unknown outcomes after a crash or a timeout


_VERDICTS = {
    "move": {"at_destination": "done", "at_source": "redo", "missing": "lost"},
    "create_sample": {"placed": "done", "not_placed": "redo", "discard": "abort"},
    "dose": {"dosed": "done", "not_dosed": "redo", "discard": "abort"},
    "heat_start": {"running_or_ran": "done", "not_started": "redo", "discard": "abort"},
}
_DEFAULT_VERDICTS = {"done": "done", "not_done": "redo", "abort": "abort"}


class ConfirmStep(Intervention):
    """A hardware step whose outcome is unknown: the operator looks and says what happened."""

    kind: Literal["confirm_step"] = "confirm_step"
    owner: str
    step: str
    attempt: int
    effect: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    reason: str = "the process stopped while the step was running"

    def verdicts(self) -> dict[str, str]:
        return _VERDICTS.get(self.effect or "", _DEFAULT_VERDICTS)

    def options(self) -> list[str]:
        return list(self.verdicts())

    def subject(self) -> str | None:
        return self.data.get("sample_id") or self.owner

    def message(self) -> str:
        d = self.data
        if self.effect == "move":
            return (
                f"Confirm where sample {d.get('sample_id')} is: the arm was moving it from {d.get('source')} "
                f"to {d.get('destination')} when {self.reason}."
            )
        if self.effect == "dose":
            return (
                f"Confirm whether {d.get('target_mg')} mg of {d.get('precursor')} went into sample "
                f"{d.get('sample_id')} at {d.get('position')} ({self.reason}); give dosed_mg if weighed."
            )
        if self.effect == "create_sample":
            return f"Confirm whether a fresh vial was placed at {d.get('position')} ({self.reason})."
        if self.effect == "heat_start":
            return f"Confirm whether furnace {d.get('furnace')} started its programme for run {self.owner} ({self.reason})."
        return f"Confirm whether step {self.step} of {self.owner} happened ({self.reason})."

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        verdict = self.verdicts()[option]
        is_run = session.get(FurnaceRunRow, self.owner) is not None
        cause = f"confirmed by {user}"
        if verdict == "done":
            result = dict(values)
            if self.effect == "dose":
                result.setdefault("dosed_mg", float(self.data["target_mg"]))
            if self.effect == "heat_start":
                result.setdefault("started_s", lab_t)
            result["confirmed_by"] = user
            journal.write(
                session, self.owner, self.step, self.attempt, "done", data={"result": result}, lab_t=lab_t
            )
            journal.apply_effect(session, self.effect, self.owner, self.data, result, lab_t, cause)
        elif verdict == "redo":
            journal.write(
                session, self.owner, self.step, self.attempt, "abandoned", data={"by": user}, lab_t=lab_t
            )
        else:  # abort / lost
            journal.write(
                session, self.owner, self.step, self.attempt, "abandoned", data={"by": user}, lab_t=lab_t
            )
            if is_run:
                abort_run(session, self.owner, reason=f"{option} ({user})", now_s=lab_t)
            else:
                lost = verdict == "lost"
                task = session.get(TaskRow, self.owner)
                abort_experiment(
                    session,
                    task.experiment_id,
                    reason=f"{self.step}: {option} (answered by {user})",
                    now_s=lab_t,
                    sample_to="lost" if lost else "removed",
                    sample_status="lost" if lost else "discarded",
                    failed_task=task.id,
                )
            return
        _resume_owner(session, self.owner, is_run, lab_t)


def _resume_owner(session: Session, owner: str, is_run: bool, lab_t: float) -> None:
    if is_run:
        run = session.get(FurnaceRunRow, owner)
        if run.status == "waiting_operator":
            run.status = "heating"
        run.worker = None
    else:
        resume_task(session, owner, lab_t)


def abort_run(session: Session, run_id: str, *, reason: str, now_s: float) -> None:
    """Give up a furnace run: its crucibles are taken out by the operator, experiments fail."""
    run = session.get(FurnaceRunRow, run_id)
    exps = set()
    for m in run.members:
        t = session.get(TaskRow, m)
        if t is not None:
            exps.add(t.experiment_id)
    run.status = "failed"
    for e in sorted(exps):
        abort_experiment(session, e, reason=f"furnace run {run_id}: {reason}", now_s=now_s)
    close_run(session, run, now_s, status="failed")


# ---- device faults and protective stops


class ClearDeviceFault(Intervention):
    """A device reported a fault (or kept failing); the operator clears it or gives up."""

    kind: Literal["clear_device_fault"] = "clear_device_fault"
    device: str
    error: str
    code: str | None = None
    owner: str | None = None  # task or run that was using the device
    OPTIONS: ClassVar[tuple[str, ...]] = ("retry", "abort")

    def subject(self) -> str | None:
        return self.device

    def message(self) -> str:
        return f"Device {self.device} failed: {self.error}. Clear the fault and retry, or abort the work."

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        set_device_state(session, self.device, "ok", {"cleared_by": user})
        emit(session, "device.state", self.device, lab_t=lab_t, state="ok", by=user)
        owner = self.owner or self.task_id
        if owner is None:
            return
        is_run = session.get(FurnaceRunRow, owner) is not None
        if option == "retry":
            _resume_owner(session, owner, is_run, lab_t)
        elif is_run:
            abort_run(session, owner, reason=f"fault on {self.device} ({user})", now_s=lab_t)
        else:
            task = session.get(TaskRow, owner)
            abort_experiment(
                session,
                task.experiment_id,
                reason=f"fault on {self.device}: {self.error}",
                now_s=lab_t,
                failed_task=task.id,
            )


class ClearProtectiveStop(Intervention):
    kind: Literal["clear_protective_stop"] = "clear_protective_stop"
    device: str
    status: str
    OPTIONS: ClassVar[tuple[str, ...]] = ("cleared", "take_offline")

    def subject(self) -> str | None:
        return self.device

    def message(self) -> str:
        return f"Robot {self.device} is in a protective stop ({self.status}); check the cell and clear it."

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        state = "ok" if option == "cleared" else "offline"
        set_device_state(session, self.device, state, {"by": user})
        emit(session, "device.state", self.device, lab_t=lab_t, state=state, by=user)
        if self.task_id and option == "cleared":
            resume_task(session, self.task_id, lab_t)


# ---- consumables and racks


class RefillPrecursor(Intervention):
    kind: Literal["refill_precursor"] = "refill_precursor"
    formula: str
    needed_mg: float
    stock_mg: float
    OPTIONS: ClassVar[tuple[str, ...]] = ("refilled", "cancel_experiment")

    def subject(self) -> str | None:
        return self.formula

    def message(self) -> str:
        return (
            f"Refill precursor {self.formula}: {self.needed_mg:.1f} mg needed, {self.stock_mg:.1f} mg left. "
            "Answer 'refilled' with lot and mg."
        )

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        if option == "refilled":
            mg = values.get("mg")
            if mg is None:
                raise InterventionError("a refill needs values {'lot': ..., 'mg': ...}")
            inventory.refill(
                session,
                self.formula,
                str(values.get("lot", f"refill-{lab_t:.0f}")),
                float(mg),
                user=user,
                lab_t=lab_t,
            )
            if self.task_id:
                resume_task(session, self.task_id, lab_t)
        elif self.task_id:
            task = session.get(TaskRow, self.task_id)
            abort_experiment(
                session,
                task.experiment_id,
                reason=f"no {self.formula} ({user})",
                now_s=lab_t,
                status="cancelled",
                failed_task=task.id,
            )


class EmptyRack(Intervention):
    """A rack is full of finished samples: the operator takes them away (they go to the archive)."""

    kind: Literal["empty_rack"] = "empty_rack"
    group: str
    OPTIONS: ClassVar[tuple[str, ...]] = ("emptied",)

    def subject(self) -> str | None:
        return self.group

    def message(self) -> str:
        return f"Rack {self.group} is full: take out the finished samples so the lab can continue."

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        prefix_rows = session.scalars(select(SampleRow).where(SampleRow.position.like("%/%")))
        from labos.lab.records import ResourceRow

        for s in prefix_rows:
            slot = session.get(ResourceRow, s.position)
            if slot is None or slot.role != self.group or slot.holder is not None:
                continue
            if (s.data or {}).get("status") in ("done", "discarded", "stored"):
                move_sample(session, s.id, "archive", cause=f"rack emptied by {user}", lab_t=lab_t)
                set_sample_status(session, s.id, "archived")


class TaskError(Intervention):
    """A task failed for a reason that is not a device's (a bug, missing data): retry or abort."""

    kind: Literal["task_error"] = "task_error"
    error: str
    OPTIONS: ClassVar[tuple[str, ...]] = ("retry", "abort")

    def message(self) -> str:
        return f"Task {self.task_id} failed: {self.error}"

    def apply(self, session: Session, option: str, values: dict, user: str, lab_t: float) -> None:
        task = session.get(TaskRow, self.task_id)
        if option == "retry":
            resume_task(session, task.id, lab_t)
        else:
            sample = session.get(SampleRow, task.sample_id) if task.sample_id else None
            abort_experiment(
                session,
                task.experiment_id,
                reason=f"{self.error} (aborted by {user})",
                now_s=lab_t,
                failed_task=task.id,
                sample_to="removed" if sample is not None and is_slot(sample.position) else None,
            )


TYPES: dict[str, type[Intervention]] = {
    c.model_fields["kind"].default: c
    for c in (ConfirmStep, ClearDeviceFault, ClearProtectiveStop, RefillPrecursor, EmptyRack, TaskError)
}


def register_intervention(cls: type[Intervention]) -> type[Intervention]:
    """Add a custom request type (its ``kind`` default names it)."""
    TYPES[cls.model_fields["kind"].default] = cls
    return cls


# ---- raising, answering, escalating


class InterventionView(BaseModel):
    id: str
    kind: str
    subject: str | None
    task_id: str | None
    message: str
    options: list[str]
    data: dict[str, Any]
    status: str
    level: int
    created_at: datetime
    raised_s: float
    escalate_at_s: float | None
    answer: str | None
    answer_data: dict[str, Any]
    answered_by: str | None
    answered_at: datetime | None


def view(row: InterventionRow) -> InterventionView:
    return InterventionView(
        id=row.id,
        kind=row.kind,
        subject=row.subject,
        task_id=row.task_id,
        message=row.message,
        options=row.options,
        data=row.data,
        status=row.status,
        level=row.level,
        created_at=row.created_at,
        raised_s=row.raised_s,
        escalate_at_s=row.escalate_at_s,
        answer=row.answer,
        answer_data=row.answer_data or {},
        answered_by=row.answered_by,
        answered_at=row.answered_at,
    )


def raise_intervention(
    session: Session, spec: Intervention, *, lab_t: float, escalate_after_s: float | None = None
) -> InterventionRow:
    """Open a request (or return the open one of the same kind and subject)."""
    subject = spec.subject()
    existing = session.scalar(
        select(InterventionRow).where(
            InterventionRow.status == "open",
            InterventionRow.kind == spec.kind,
            InterventionRow.subject == subject,
            InterventionRow.task_id == spec.task_id if spec.task_id else InterventionRow.task_id.is_(None),
        )
    )
    if existing is not None:
        return existing
    row = InterventionRow(
        id=new_id("int"),
        kind=spec.kind,
        subject=subject,
        task_id=spec.task_id,
        message=spec.message(),
        options=spec.options(),
        data=spec.model_dump(mode="json"),
        status="open",
        level=0,
        raised_s=lab_t,
        escalate_at_s=lab_t + escalate_after_s if escalate_after_s else None,
        answer_data={},
    )
    session.add(row)
    emit(
        session,
        "intervention.raised",
        row.id,
        lab_t=lab_t,
        kind=spec.kind,
        about=subject,
        message=row.message,
        options=row.options,
    )
    return row


def answer_intervention(
    session: Session,
    intervention_id: str,
    option: str,
    user: str,
    *,
    values: dict | None = None,
    lab_t: float,
) -> InterventionRow:
    if not user or not str(user).strip():
        raise InterventionError("an answer needs the name of the user who gives it")
    row = session.get(InterventionRow, intervention_id, with_for_update=True)
    if row is None:
        raise InterventionError(f"no intervention {intervention_id}")
    if row.status != "open":
        raise InterventionError(
            f"intervention {intervention_id} is {row.status}"
            + (f" (answered {row.answer!r} by {row.answered_by})" if row.answered_by else "")
        )
    if option not in row.options:
        raise InterventionError(
            f"{option!r} is not an option of intervention {intervention_id}: {row.options}"
        )
    spec = TYPES[row.kind].model_validate(row.data)
    spec.apply(session, option, dict(values or {}), user, lab_t)
    row.status = "answered"
    row.answer = option
    row.answer_data = dict(values or {})
    row.answered_by = user
    row.answered_at = utcnow()
    emit(
        session,
        "intervention.answered",
        row.id,
        lab_t=lab_t,
        kind=row.kind,
        option=option,
        user=user,
        values=row.answer_data,
    )
    return row


def escalate_due(session: Session, now_s: float, *, every_s: float, max_level: int) -> list[InterventionRow]:
    """Raise the level of open requests nobody answered in time (each level waits ``every_s``)."""
    rows = session.scalars(
        select(InterventionRow).where(
            InterventionRow.status == "open",
            InterventionRow.escalate_at_s.is_not(None),
            InterventionRow.escalate_at_s <= now_s,
        )
    ).all()
    for r in rows:
        r.level += 1
        r.escalate_at_s = now_s + every_s if r.level < max_level else None
        emit(
            session, "intervention.escalated", r.id, lab_t=now_s, level=r.level, kind=r.kind, about=r.subject
        )
    return list(rows)


def next_escalation_s(session: Session) -> float | None:
    from sqlalchemy import func

    return session.scalar(
        select(func.min(InterventionRow.escalate_at_s)).where(InterventionRow.status == "open")
    )
