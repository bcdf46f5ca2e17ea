"""Every state change of the lab is a row in the core ``events`` table (append-only, read in id
order by the console and the campaign loop)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from labos.db.base import utcnow
from labos.db.records import EventRow

# The kinds the lab OS writes (subject in brackets).
KINDS = (
    "lab.started",  # [worker]
    "lab.recovered",
    "lab.paused",
    "lab.resumed",
    "lab.stopped",
    "experiment.submitted",  # [experiment]
    "experiment.started",
    "experiment.completed",
    "experiment.failed",
    "experiment.cancelled",
    "experiment.outcome",
    "task.ready",  # [task]
    "task.started",
    "task.finished",
    "task.failed",
    "task.retry",
    "task.waiting_operator",
    "task.recovered",
    "sample.created",  # [sample]
    "sample.moved",
    "sample.removed",
    "furnace_run.planned",  # [run]
    "furnace_run.joined",
    "furnace_run.started",
    "furnace_run.finished",
    "device.fault",  # [device]
    "device.state",
    "inventory.consumed",  # [formula]
    "inventory.low",
    "inventory.refilled",
    "intervention.raised",  # [intervention]
    "intervention.escalated",
    "intervention.answered",
)


def emit(
    session: Session, event: str, subject: str | None = None, /, *, lab_t: float | None = None, **data: Any
):
    """Record one event in the caller's transaction (so it commits with the change it describes).

    Events are buffered on the session and inserted in one statement just before it commits."""
    if lab_t is not None:
        data["lab_t"] = round(float(lab_t), 3)
    session.info.setdefault(_BUFFER, []).append(
        {"at": utcnow(), "kind": event, "subject": subject, "data": data}
    )


_BUFFER = "labos_lab_events"


# Changes that can let another worker start something: on PostgreSQL the committing transaction
# also sends NOTIFY on this channel, so idle workers wake at once instead of at their next poll.
CHANNEL = "labos_lab"
WAKE_KINDS = frozenset(
    {
        "task.finished",
        "task.ready",
        "experiment.submitted",
        "intervention.answered",
        "lab.resumed",
        "furnace_run.finished",
        "device.state",
        "inventory.refilled",
        "sample.removed",
    }
)


@sa_event.listens_for(Session, "before_commit")
def _write_events(session: Session) -> None:
    rows = session.info.pop(_BUFFER, None)
    if rows:
        session.execute(insert(EventRow.__table__), rows)
        bind = session.get_bind()
        if bind.dialect.name == "postgresql" and any(r["kind"] in WAKE_KINDS for r in rows):
            session.execute(text(f"NOTIFY {CHANNEL}"))


@sa_event.listens_for(Session, "after_rollback")
def _drop_events(session: Session) -> None:
    session.info.pop(_BUFFER, None)


class Event(BaseModel):
    id: int
    at: datetime
    kind: str
    subject: str | None
    data: dict[str, Any]


def read_events(
    factory: sessionmaker[Session],
    after_id: int = 0,
    *,
    kinds: list[str] | None = None,
    prefix: str | None = None,
    subject: str | None = None,
    limit: int = 1000,
) -> list[Event]:
    """Events with ``id > after_id`` in id order (filter by exact kinds, a kind prefix or subject)."""
    stmt = select(EventRow).where(EventRow.id > after_id)
    if kinds:
        stmt = stmt.where(EventRow.kind.in_(kinds))
    if prefix:
        stmt = stmt.where(EventRow.kind.startswith(prefix))
    if subject:
        stmt = stmt.where(EventRow.subject == subject)
    with factory() as s:
        rows = s.scalars(stmt.order_by(EventRow.id).limit(limit)).all()
        return [Event(id=r.id, at=r.at, kind=r.kind, subject=r.subject, data=r.data or {}) for r in rows]


def follow_events(
    factory: sessionmaker[Session],
    after_id: int = 0,
    *,
    poll_s: float = 0.5,
    timeout_s: float | None = None,
    **filters: Any,
) -> Iterator[Event]:
    """Yield events as they are written (polling), forever or until ``timeout_s`` passes quietly."""
    last, quiet_since = after_id, time.monotonic()
    while True:
        batch = read_events(factory, last, **filters)
        for ev in batch:
            last = ev.id
            yield ev
        if batch:
            quiet_since = time.monotonic()
        elif timeout_s is not None and time.monotonic() - quiet_since > timeout_s:
            return
        else:
            time.sleep(poll_s)
