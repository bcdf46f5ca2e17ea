"""HTML pages: thin shells whose scripts read the REST API; the login form; the API reference.

Forms posted by a browser (login, logout) carry a CSRF token: the login form a per-form token that
must match a cookie (there is no session yet), the logout form the session's token.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from labos import __version__
from labos.web import accounts
from labos.web.accounts import Principal
from labos.web.deps import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    DbSession,
    admin,
    audit_action,
    operator,
    optional_principal,
    state,
    viewer,
)
from labos.web.errors import ConsoleError, PermissionDenied
from labos.web.routes.auth import login_user, set_session_cookie
from labos.web.security import Role, new_token, tokens_equal

HERE = Path(__file__).resolve().parents[1]
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)
PageId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]

NAV = [
    ("/", "Overview", "overview", Role.VIEWER),
    ("/experiments", "Experiments", "experiments", Role.VIEWER),
    ("/samples", "Samples", "samples", Role.VIEWER),
    ("/devices", "Devices", "devices", Role.VIEWER),
    ("/inventory", "Inventory", "inventory", Role.VIEWER),
    ("/interventions", "Interventions", "interventions", Role.VIEWER),
    ("/audit", "Audit", "audit", Role.OPERATOR),
    ("/admin/users", "Users", "users", Role.ADMIN),
    ("/docs/api", "API", "api", Role.VIEWER),
]


def render(
    request: Request, name: str, who: Principal, *, title: str, section: str, status: int = 200, **ctx
):
    return templates.TemplateResponse(
        request,
        name,
        {
            "user": who,
            "csrf": who.csrf_token if who.via == "cookie" else "",
            "nav": NAV,
            "section": section,
            "page": name.removesuffix(".html"),
            "title": title,
            "version": __version__,
            **ctx,
        },
        status_code=status,
    )


def error_page(request: Request, status: int, message: str) -> Response:
    who: Principal | None = getattr(request.state, "principal", None)
    heading = {403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Slow down"}.get(status, "Error")
    if who is None:
        return HTMLResponse(
            f"<!doctype html><title>{status}</title><p>{status}: {heading}</p>", status_code=status
        )
    return render(
        request, "error.html", who, title=heading, section="", status=status, heading=heading, message=message
    )


def _safe_next(target: str | None) -> str:
    """Only same-site paths: an attacker's link must not turn the login form into an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return parts.path + (f"?{parts.query}" if parts.query else "") if not parts.netloc else "/"


# ------------------------------------------------------------------------------------------ login


def _login_form(
    request: Request,
    session: Session,
    *,
    next_: str,
    error: str | None = None,
    status: int = 200,
    username: str = "",
):
    token = new_token()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "login_csrf": token,
            "next": _safe_next(next_),
            "error": error,
            "username": username,
            "version": __version__,
            "host": request.url.hostname,
            "no_users": accounts.count_users(session) == 0,
        },
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=state(request).secure_cookies,
    )
    return response


@router.get("/login")
def login_page(
    request: Request,
    session: DbSession,
    next: str = "/",
    who: Principal | None = Depends(optional_principal),
):
    if who is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, session, next_=next)


@router.post("/login")
def login_submit(
    request: Request,
    session: DbSession,
    username: str = Form("", max_length=64),
    password: str = Form("", max_length=256),
    csrf_token: str = Form("", max_length=200),
    next: str = Form("/", max_length=500),
):
    if not tokens_equal(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_form(
            request, session, next_=next, error="The form expired; please sign in again.", status=400
        )
    try:
        token, _ = login_user(request, session, username, password)
    except ConsoleError as exc:
        return _login_form(
            request, session, next_=next, error=str(exc), status=exc.status_code, username=username
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(request, response, token)
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout_submit(
    request: Request,
    session: DbSession,
    csrf_token: str = Form("", max_length=200),
    who: Principal | None = Depends(optional_principal),
):
    if who is not None:
        if who.via == "cookie" and not tokens_equal(csrf_token, who.csrf_token):
            raise PermissionDenied("missing or wrong CSRF token: reload the page and try again")
        accounts.revoke_session(session, who.session_id)
        audit_action(session, request, who, "auth.logout", subject=who.username)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------------------------------ pages


@router.get("/")
def overview(request: Request, who: Principal = Depends(viewer)):
    return render(request, "overview.html", who, title="Overview", section="overview")


@router.get("/campaigns/{campaign_id}")
def campaign_page(request: Request, campaign_id: PageId, who: Principal = Depends(viewer)):
    return render(
        request, "campaign.html", who, title="Campaign", section="overview", campaign_id=campaign_id
    )


@router.get("/experiments")
def experiments_page(request: Request, who: Principal = Depends(viewer)):
    return render(request, "experiments.html", who, title="Experiments", section="experiments")


@router.get("/experiments/{experiment_id}")
def experiment_page(request: Request, experiment_id: PageId, who: Principal = Depends(viewer)):
    return render(
        request,
        "experiment.html",
        who,
        title=experiment_id,
        section="experiments",
        experiment_id=experiment_id,
    )


@router.get("/samples")
def samples_page(request: Request, who: Principal = Depends(viewer)):
    return render(request, "samples.html", who, title="Samples", section="samples")


@router.get("/samples/{sample_id}")
def sample_page(request: Request, sample_id: PageId, who: Principal = Depends(viewer)):
    return render(request, "sample.html", who, title=sample_id, section="samples", sample_id=sample_id)


@router.get("/devices")
def devices_page(request: Request, who: Principal = Depends(viewer)):
    return render(request, "devices.html", who, title="Devices", section="devices")


@router.get("/inventory")
def inventory_page(request: Request, who: Principal = Depends(viewer)):
    return render(request, "inventory.html", who, title="Inventory", section="inventory")


@router.get("/interventions")
def interventions_page(request: Request, who: Principal = Depends(viewer)):
    return render(request, "interventions.html", who, title="Interventions", section="interventions")


@router.get("/audit")
def audit_page(request: Request, who: Principal = Depends(operator)):
    return render(request, "audit.html", who, title="Audit log", section="audit")


@router.get("/admin/users")
def users_page(request: Request, who: Principal = Depends(admin)):
    return render(request, "users.html", who, title="Users", section="users")


@router.get("/docs/api")
def api_docs(request: Request, who: Principal = Depends(viewer)):
    spec = request.app.openapi()
    tags = []
    for tag in spec.get("tags", []):
        ops = []
        for path, methods in spec.get("paths", {}).items():
            for method, op in methods.items():
                if tag["name"] not in op.get("tags", []):
                    continue
                body = op.get("requestBody", {}).get("content", {})
                ref = next(iter(body.values()), {}).get("schema", {}).get("$ref", "") if body else ""
                ops.append(
                    {
                        "method": method,
                        "path": path,
                        "summary": op.get("summary", ""),
                        "description": op.get("description", ""),
                        "params": op.get("parameters", []),
                        "body": ref.rsplit("/", 1)[-1] if ref else ("JSON" if body else ""),
                    }
                )
        tags.append({**tag, "operations": ops})
    return render(request, "apidocs.html", who, title="API", section="api", spec=spec, tags=tags)


# ------------------------------------------------------------------------------------------ vendor


@lru_cache(maxsize=1)
def _plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@router.get("/vendor/plotly.min.js")
def plotly_js():
    """plotly.js as bundled with the plotly Python package: plots work offline, no CDN."""
    return FileResponse(
        _plotly_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )
