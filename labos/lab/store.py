"""Database access for the lab OS: transactions (retried on PostgreSQL deadlocks) and row locks.

SQLite is the embedded single-process default; PostgreSQL lets several worker processes share
one lab, each claiming rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` so no two workers ever
book the same device, slot or task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labos.db import connect
from labos.lab.records import LabStateRow

T = TypeVar("T")
_RETRY_CODES = {"40P01", "40001", "55P03"}  # deadlock, serialization failure, lock not available


class Store:
    """A session factory plus the dialect facts the lab OS needs."""

    def __init__(
        self, db: str | sessionmaker[Session] | None = None, lab_id: str = "lab", *, migrate: bool = True
    ):
        """``migrate=False`` skips the schema upgrade (and importing every area's tables): for
        extra worker processes on a database the first process has already set up."""
        if isinstance(db, sessionmaker):
            self.factory = db
        elif migrate:
            self.factory = connect(db)
        else:
            from labos.db.engine import make_engine
            from labos.lab import records  # noqa: F401  (the lab's tables on the shared metadata)

            if db is None:
                from labos.config import get_settings

                db = get_settings().db_url
            self.factory = sessionmaker(make_engine(db), expire_on_commit=False)
        self.engine = self.factory.kw["bind"]
        self.is_pg = self.engine.dialect.name == "postgresql"
        self.lab_id = lab_id

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=False)

    def locked(self, stmt: Select, *, skip: bool = True) -> Select:
        """Row-lock the selected rows on PostgreSQL (skipping rows another worker has locked)."""
        if self.is_pg:
            return stmt.with_for_update(skip_locked=skip)
        return stmt

    def run(self, fn: Callable[[Session], T], *, attempts: int = 6) -> T:
        """Run ``fn`` in one transaction; retry it when PostgreSQL aborts it for a deadlock."""
        for i in range(attempts):
            session = self.factory()
            try:
                out = fn(session)
                session.commit()
                return out
            except (OperationalError, DBAPIError) as exc:
                session.rollback()
                code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(
                    getattr(exc, "orig", None), "pgcode", None
                )
                locked_sqlite = "database is locked" in str(exc)
                if (code in _RETRY_CODES or locked_sqlite) and i < attempts - 1:
                    time.sleep(0.01 * (2**i))
                    continue
                raise
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        raise AssertionError("unreachable")  # pragma: no cover

    # ---- lab state (the operator's switch and the persisted lab clock)

    def state(self, session: Session) -> LabStateRow:
        row = session.get(LabStateRow, self.lab_id)
        if row is None:
            row = LabStateRow(id=self.lab_id, desired="running", clock_s=0.0, config={})
            session.add(row)
            session.flush()
        return row

    def save_clock(self, session: Session, now_s: float) -> None:
        res = session.execute(
            update(LabStateRow)
            .where(LabStateRow.id == self.lab_id, LabStateRow.clock_s < now_s)
            .values(clock_s=now_s)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount == 0 and session.get(LabStateRow, self.lab_id) is None:
            self.state(session).clock_s = now_s

    def clock_s(self) -> float:
        """The latest lab time the database has seen (where a restarted virtual clock resumes)."""
        from sqlalchemy import func

        from labos.lab.records import JournalRow, TaskRow

        with self.factory() as s:
            vals = [
                s.scalar(select(LabStateRow.clock_s).where(LabStateRow.id == self.lab_id)),
                s.scalar(select(func.max(JournalRow.lab_t))),
                s.scalar(select(func.max(TaskRow.finished_s))),
            ]
            return float(max((v for v in vals if v is not None), default=0.0))

    def desired(self, session: Session) -> str:
        v = session.scalar(select(LabStateRow.desired).where(LabStateRow.id == self.lab_id))
        return v or "running"


def jsonable(value: Any) -> Any:
    """A journal-safe (JSON) form of a driver result."""
    from dataclasses import asdict, is_dataclass
    from pathlib import Path

    from pydantic import BaseModel

    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)
