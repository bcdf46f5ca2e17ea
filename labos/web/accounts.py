"""Accounts and sessions: add / change / disable users, log in with lock-out, resolve session tokens.

Used by both the web app and ``labos users``; every change is written to the audit log in the same
transaction as the change itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from labos.web import audit
from labos.web.errors import AccountError, AuthenticationFailed, Conflict, LoginThrottled, NotFound
from labos.web.records import UserRow, UserSessionRow
from labos.web.security import (
    Role,
    burn_verify,
    check_password,
    check_username,
    hash_password,
    needs_rehash,
    new_token,
    parse_role,
    token_digest,
    verify_password,
)

BROWSER_SESSION_TTL = timedelta(hours=12)
MAX_FAILED_LOGINS = 5
FAILED_LOGIN_WINDOW = timedelta(minutes=15)
LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time labos writes is UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class Principal:
    """Who is making a request: resolved from a session cookie or a bearer token."""

    user_id: int
    username: str
    role: Role
    session_id: int
    csrf_token: str
    via: str  # "cookie" or "token"
    expires_at: datetime

    def allows(self, needed: Role | str) -> bool:
        return self.role.allows(needed)


# ---------------------------------------------------------------------------------------------- users


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count(UserRow.id))) or 0)


def get_user(session: Session, username: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.username == username.strip().lower()))
    if row is None:
        raise NotFound(f"no user {username!r}")
    return row


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.username)))


def add_user(
    session: Session,
    username: str,
    password: str,
    role: str | Role,
    *,
    actor: str | None,
    client: str | None = None,
) -> UserRow:
    name = check_username(username)
    check_password(password, name)
    role = parse_role(str(role))
    if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise Conflict(f"user {name!r} already exists")
    row = UserRow(username=name, password_hash=hash_password(password), role=role.value, active=True)
    session.add(row)
    session.flush()
    audit.record(session, "user.create", username=actor, subject=name, client=client, role_given=role.value)
    return row


def update_user(
    session: Session,
    username: str,
    *,
    actor: str | None,
    role: str | Role | None = None,
    active: bool | None = None,
    password: str | None = None,
    client: str | None = None,
) -> UserRow:
    """Change a user's role, enable/disable them or set a new password; disabling or a new password
    revokes every open session of that user."""
    row = get_user(session, username)
    changes: dict[str, object] = {}
    if role is not None:
        new_role = parse_role(str(role))
        if new_role.value != row.role:
            _keep_an_admin(session, row, new_role=new_role, active=active)
            changes["role"] = [row.role, new_role.value]
            row.role = new_role.value
    if active is not None and active != row.active:
        if not active:
            _keep_an_admin(session, row, new_role=parse_role(row.role), active=False)
        changes["active"] = [row.active, active]
        row.active = active
    if password is not None:
        check_password(password, row.username)
        row.password_hash = hash_password(password)
        changes["password"] = "changed"
    if not changes:
        return row
    if changes.get("password") or active is False or "role" in changes:
        revoke_user_sessions(session, row.id)
    audit.record(session, "user.update", username=actor, subject=row.username, client=client, changes=changes)
    return row


def _keep_an_admin(session: Session, row: UserRow, *, new_role: Role, active: bool | None) -> None:
    """Refuse the change that would leave the lab without an active admin."""
    if row.role != Role.ADMIN or not row.active:
        return
    if new_role == Role.ADMIN and active is not False:
        return
    others = session.scalar(
        select(func.count(UserRow.id)).where(
            UserRow.role == Role.ADMIN.value, UserRow.active.is_(True), UserRow.id != row.id
        )
    )
    if not others:
        raise Conflict(f"{row.username!r} is the last active admin; make another admin first")


# ------------------------------------------------------------------------------------------- sessions


def authenticate(session: Session, username: str, password: str, *, client: str | None = None) -> UserRow:
    """Check a password. Failed attempts are audited and, past MAX_FAILED_LOGINS in FAILED_LOGIN_WINDOW,
    the name is locked for the rest of the window (the same message whether or not the name exists).
    A failed attempt is committed at once so that it counts although the caller's request fails."""
    name = (username or "").strip().lower()[:64]
    row = session.scalar(select(UserRow).where(UserRow.username == name)) if name else None
    since = utcnow() - FAILED_LOGIN_WINDOW
    if row is not None and row.last_login_at is not None:
        since = max(since, as_utc(row.last_login_at))
    if name and audit.failures_since(session, name, "auth.login", since) >= MAX_FAILED_LOGINS:
        audit.record(session, "auth.login", username=name, ok=False, client=client, reason="locked")
        session.commit()
        raise LoginThrottled(
            f"too many failed logins for {name!r}; try again in {int(FAILED_LOGIN_WINDOW.total_seconds() // 60)} minutes"
        )
    if row is None or not row.active:
        burn_verify(password or "")
        ok = False
        reason = "unknown user" if row is None else "disabled"
    else:
        ok = verify_password(row.password_hash, password or "")
        reason = None if ok else "wrong password"
    if not ok:
        audit.record(session, "auth.login", username=name or None, ok=False, client=client, reason=reason)
        session.commit()  # the failed attempt must count even though the request fails
        raise AuthenticationFailed("wrong user name or password")
    if needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    row.last_login_at = utcnow()
    return row


def open_session(
    session: Session,
    user: UserRow,
    *,
    kind: str = "browser",
    ttl: timedelta = BROWSER_SESSION_TTL,
    label: str | None = None,
) -> tuple[str, UserSessionRow]:
    """Create a session (browser) or an API token; returns the secret, which is never stored."""
    if kind not in ("browser", "token"):
        raise AccountError(f"unknown session kind {kind!r}")
    if ttl <= timedelta(0) or ttl > timedelta(days=366):
        raise AccountError("token lifetime must be between 1 minute and 366 days")
    token = new_token()
    row = UserSessionRow(
        user_id=user.id,
        token_hash=token_digest(token),
        kind=kind,
        label=label,
        csrf_token=new_token(),
        expires_at=utcnow() + ttl,
    )
    session.add(row)
    session.flush()
    return token, row


def resolve(session: Session, token: str | None, *, via: str) -> Principal | None:
    """The principal behind a session cookie or bearer token, or None when it is unknown, expired,
    revoked or belongs to a disabled user."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(UserSessionRow).where(UserSessionRow.token_hash == token_digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if as_utc(row.expires_at) <= now:
        return None
    user = row.user
    if not user.active:
        return None
    if now - as_utc(row.last_seen_at) > LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
    return Principal(
        user_id=user.id,
        username=user.username,
        role=Role(user.role),
        session_id=row.id,
        csrf_token=row.csrf_token,
        via=via,
        expires_at=as_utc(row.expires_at),
    )


def revoke_session(session: Session, session_id: int) -> None:
    session.execute(
        update(UserSessionRow)
        .where(UserSessionRow.id == session_id, UserSessionRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def revoke_user_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(UserSessionRow)
        .where(UserSessionRow.user_id == user_id, UserSessionRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def session_alive(session: Session, session_id: int) -> bool:
    """Still valid? (the event stream re-checks this so a revoked session stops receiving events)."""
    row = session.get(UserSessionRow, session_id)
    return bool(
        row is not None and row.revoked_at is None and as_utc(row.expires_at) > utcnow() and row.user.active
    )
