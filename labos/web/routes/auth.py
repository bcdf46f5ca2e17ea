"""Sign in / out, who am I, API tokens, health and the (authenticated) OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from labos import __version__
from labos.web import accounts
from labos.web.accounts import Principal
from labos.web.deps import SESSION_COOKIE, DbSession, audit_action, authenticated, client_ip, state, viewer
from labos.web.schemas import Health, LoginRequest, Me, TokenOut, TokenRequest

router = APIRouter(prefix="/api", tags=["auth"])


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    st = state(request)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(st.session_ttl_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=st.secure_cookies,
        path="/",
    )


def login_user(request: Request, session: Session, username: str, password: str) -> tuple[str, Principal]:
    """Check the password, open a browser session, audit it; shared by the JSON API and the form."""
    user = accounts.authenticate(session, username, password, client=client_ip(request))
    ttl = timedelta(hours=state(request).session_ttl_hours)
    token, row = accounts.open_session(session, user, kind="browser", ttl=ttl)
    principal = accounts.resolve(session, token, via="cookie")
    assert principal is not None
    audit_action(session, request, principal, "auth.login", subject=user.username)
    return token, principal


def _me(p: Principal) -> Me:
    return Me(
        username=p.username,
        role=p.role.value,
        via=p.via,
        expires_at=p.expires_at,
        csrf_token=p.csrf_token if p.via == "cookie" else None,
    )


@router.get("/health", response_model=Health, summary="Liveness and database check (no login needed)")
def health(request: Request) -> Health:
    from labos.web import labgate

    lab = False
    try:
        with state(request).factory() as session:
            session.execute(text("SELECT 1"))
            lab = labgate.lab_available(session.get_bind().engine)
        database = "ok"
    except Exception as exc:  # report, don't crash: this is what monitoring polls
        database = f"error: {type(exc).__name__}"
    return Health(
        status="ok" if database == "ok" else "degraded",
        version=__version__,
        database=database,
        lab="connected" if lab else "not available",
    )


@router.post("/auth/login", response_model=Me, summary="Sign in; sets the session cookie")
def login(body: LoginRequest, request: Request, response: Response, session: DbSession) -> Me:
    token, principal = login_user(request, session, body.username, body.password)
    set_session_cookie(request, response, token)
    return _me(principal)


@router.post("/auth/logout", status_code=204, summary="Sign out (revokes this session or token)")
def logout(
    request: Request,
    response: Response,
    session: DbSession,
    principal: Principal = Depends(authenticated),
) -> Response:
    accounts.revoke_session(session, principal.session_id)
    audit_action(session, request, principal, "auth.logout", subject=principal.username)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/auth/me", response_model=Me, summary="The signed-in user, role and CSRF token")
def me(principal: Principal = Depends(authenticated)) -> Me:
    return _me(principal)


@router.post(
    "/auth/tokens", response_model=TokenOut, status_code=201, summary="Create an API token for yourself"
)
def create_token(
    body: TokenRequest,
    request: Request,
    session: DbSession,
    principal: Principal = Depends(authenticated),
) -> TokenOut:
    user = accounts.get_user(session, principal.username)
    token, row = accounts.open_session(
        session, user, kind="token", ttl=timedelta(days=body.ttl_days), label=body.label
    )
    audit_action(
        session, request, principal, "auth.token.create", subject=principal.username, label=body.label
    )
    return TokenOut(token=token, expires_at=accounts.as_utc(row.expires_at), label=body.label)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, _: Principal = Depends(viewer)) -> dict:
    return request.app.openapi()
