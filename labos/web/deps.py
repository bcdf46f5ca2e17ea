"""FastAPI dependencies: the database session, who is asking (cookie or bearer token), CSRF, roles.

Authorisation is declared per route with ``Depends(require(Role.OPERATOR))``; a refused request is
audited (committed even though the request fails) so probing shows up in the audit log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from labos.db import session_scope
from labos.web import accounts, audit
from labos.web.accounts import Principal
from labos.web.errors import AuthenticationFailed, PermissionDenied
from labos.web.security import Role, tokens_equal

SESSION_COOKIE = "labos_session"
LOGIN_CSRF_COOKIE = "labos_login_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass
class ConsoleState:
    """What the app needs at run time (kept on ``app.state.console``)."""

    factory: sessionmaker[Session]
    db_url: str
    secure_cookies: bool = False
    session_ttl_hours: float = 12.0
    event_poll_s: float = 0.5
    stream_max_s: float = 300.0
    lab: object | None = None  # a running labos.lab.Lab in this process, when the server hosts one

    def notify_lab(self) -> None:
        """Wake an in-process lab after a change made through the database (other processes poll)."""
        notify = getattr(getattr(self.lab, "engine", None), "notify_change", None)
        if callable(notify):
            notify()


def state(request: Request) -> ConsoleState:
    return request.app.state.console


def db(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the route returns, rolled back on error."""
    with session_scope(state(request).factory) as session:
        yield session


# Committed before the response is sent (scope="function"): a client that follows a redirect or
# reads right after a change always sees it.
DbSession = Annotated[Session, Depends(db, scope="function")]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_principal(request: Request, session: DbSession) -> Principal | None:
    """The signed-in user, or None (pages redirect to the login form, the API answers 401)."""
    token = _bearer(request)
    if token:
        return accounts.resolve(session, token, via="token")
    return accounts.resolve(session, request.cookies.get(SESSION_COOKIE), via="cookie")


def _check_csrf(request: Request, principal: Principal, form_token: str | None = None) -> None:
    """Cookie-authenticated changes must carry the session's CSRF token and come from this origin.
    Bearer tokens are never sent by a browser on its own, so they need neither."""
    if principal.via != "cookie" or request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc != request.headers.get("host", request.url.netloc):
            raise PermissionDenied(f"cross-origin request from {origin} refused")
    sent = request.headers.get(CSRF_HEADER) or form_token
    if not tokens_equal(sent, principal.csrf_token):
        raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")


def authenticated(request: Request, principal: Principal | None = Depends(optional_principal)) -> Principal:
    if principal is None:
        raise AuthenticationFailed("sign in first (session cookie or 'Authorization: Bearer <token>')")
    _check_csrf(request, principal)
    request.state.principal = principal
    return principal


def require(role: Role) -> Callable[..., Principal]:
    """Dependency: the caller must hold ``role`` or higher; refusals are audited."""

    def dependency(
        request: Request,
        session: DbSession,
        principal: Principal = Depends(authenticated),
    ) -> Principal:
        if not principal.allows(role):
            audit.record(
                session,
                "denied",
                username=principal.username,
                role=principal.role.value,
                subject=f"{request.method} {request.url.path}",
                ok=False,
                client=client_ip(request),
                needed=role.value,
            )
            session.commit()
            raise PermissionDenied(
                f"this needs the {role.value} role; {principal.username} is {principal.role.value}"
            )
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


viewer = require(Role.VIEWER)
operator = require(Role.OPERATOR)
admin = require(Role.ADMIN)


def audit_action(
    session: Session,
    request: Request,
    principal: Principal,
    action: str,
    subject: str | None = None,
    ok: bool = True,
    **detail,
) -> None:
    """Record a control action by the caller, in the same transaction as the action."""
    audit.record(
        session,
        action,
        username=principal.username,
        role=principal.role.value,
        subject=subject,
        ok=ok,
        client=client_ip(request),
        via=principal.via,
        **detail,
    )
