"""The audit log: every control action, login and refused request, with who, when and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labos.web.records import AuditRow


def record(
    session: Session,
    action: str,
    *,
    username: str | None,
    role: str | None = None,
    subject: str | None = None,
    ok: bool = True,
    client: str | None = None,
    **detail: Any,
) -> AuditRow:
    """Append one audit entry in the caller's transaction (so it commits with the action it describes)."""
    row = AuditRow(
        action=action,
        username=username,
        role=role,
        subject=(subject or None) and str(subject)[:200],
        ok=ok,
        client=client,
        detail={k: v for k, v in detail.items() if v is not None},
    )
    session.add(row)
    return row


def query(
    session: Session,
    *,
    username: str | None = None,
    action: str | None = None,
    ok: bool | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """Newest first; ``action`` matches a prefix ('lab.' finds lab.pause, lab.resume ...)."""
    stmt = select(AuditRow)
    if username:
        stmt = stmt.where(AuditRow.username == username)
    if action:
        stmt = stmt.where(AuditRow.action.startswith(action, autoescape=True))
    if ok is not None:
        stmt = stmt.where(AuditRow.ok == ok)
    if before_id:
        stmt = stmt.where(AuditRow.id < before_id)
    return list(session.scalars(stmt.order_by(AuditRow.id.desc()).limit(limit)))


def failures_since(session: Session, username: str, action: str, since: datetime) -> int:
    stmt = select(func.count(AuditRow.id)).where(
        AuditRow.username == username, AuditRow.action == action, AuditRow.ok.is_(False), AuditRow.at >= since
    )
    return int(session.scalar(stmt) or 0)
