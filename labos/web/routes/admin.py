"""Users (admin only) and the audit log (operators and admins)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from labos.web import accounts, audit
from labos.web.accounts import Principal
from labos.web.deps import DbSession, admin, client_ip, operator
from labos.web.schemas import AuditOut, UserCreate, UserOut, UserUpdate

router = APIRouter(prefix="/api", tags=["admin"])
Username = Annotated[str, Path(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


@router.get("/users", response_model=list[UserOut], summary="All users (admin)")
def users(session: DbSession, _: Principal = Depends(admin)):
    return accounts.list_users(session)


@router.post("/users", response_model=UserOut, status_code=201, summary="Add a user (admin)")
def add_user(body: UserCreate, request: Request, session: DbSession, who: Principal = Depends(admin)):
    return accounts.add_user(
        session, body.username, body.password, body.role, actor=who.username, client=client_ip(request)
    )


@router.patch(
    "/users/{username}", response_model=UserOut, summary="Change role, enable/disable, set password (admin)"
)
def update_user(
    body: UserUpdate,
    request: Request,
    username: Username,
    session: DbSession,
    who: Principal = Depends(admin),
):
    return accounts.update_user(
        session,
        username,
        actor=who.username,
        role=body.role,
        active=body.active,
        password=body.password,
        client=client_ip(request),
    )


@router.get("/audit", response_model=list[AuditOut], summary="The audit log, newest first (operator, admin)")
def audit_log(
    request: Request,
    session: DbSession,
    user: str | None = Query(None, max_length=64),
    action: str | None = Query(None, max_length=64, description="action prefix, e.g. 'lab.'"),
    ok: bool | None = None,
    before: int | None = Query(None, ge=1),
    limit: int = Query(100, ge=1, le=1000),
    who: Principal = Depends(operator),
):
    return audit.query(session, username=user, action=action, ok=ok, before_id=before, limit=limit)
