"""The console app: REST API under /api (documented by OpenAPI), HTML pages, static files.

Pages are thin shells; their scripts read the same REST API a script would use, and a server-sent
event stream (fed from the ``events`` table) keeps them live without reloading.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError

from labos import __version__
from labos.db import connect
from labos.errors import LabosError, NotImplementedYet
from labos.web.deps import ConsoleState
from labos.web.errors import ConsoleError

HERE = Path(__file__).parent
log = logging.getLogger("labos.web")

TAGS = [
    {
        "name": "auth",
        "description": "Sign in and out, who am I, API tokens. Login and health need no session.",
    },
    {
        "name": "campaigns",
        "description": "Campaigns and their targets; submitting one needs the operator role.",
    },
    {
        "name": "experiments",
        "description": "Experiments: recipe, explanation, outcomes, timeline, furnace and XRD plots.",
    },
    {"name": "samples", "description": "Where every sample is, its move history and lineage."},
    {"name": "lab", "description": "Devices, inventory, interventions, pause/resume/stop (from labos.lab)."},
    {
        "name": "events",
        "description": "The lab's event log, as pages and as a live server-sent event stream.",
    },
    {"name": "admin", "description": "Users (admin) and the audit log (operator and admin)."},
]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Everything is served from here (plotly included); plotly needs inline styles for its SVG.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
    ),
}


def _problem(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get(
        "accept", "text/html"
    )


def create_app(
    db_url: str | None = None,
    *,
    secure_cookies: bool = False,
    session_ttl_hours: float = 12.0,
    event_poll_s: float = 0.5,
    stream_max_s: float = 300.0,
    lab: object | None = None,
) -> FastAPI:
    """Build the console for the database at ``db_url`` (default: the configured one).

    ``secure_cookies`` marks the session cookie Secure (set it when served over HTTPS); ``lab`` is an
    optional running lab object the control endpoints act on in-process.
    """
    if db_url is None:
        from labos.config import get_settings

        db_url = get_settings().db_url
    app = FastAPI(
        title="labos console API",
        version=__version__,
        description=(
            "REST API of the labos operator console. Authenticate with the session cookie set by "
            "`POST /api/auth/login` (then send the `X-CSRF-Token` header it returns with every change) or "
            "with `Authorization: Bearer <token>` from `POST /api/auth/tokens` or `labos users token`. "
            "Roles: viewer reads; operator also runs the lab and answers interventions; admin also manages "
            'users. Errors are JSON `{"detail": ...}` with 400/401/403/404/409/422/429, and 501 for '
            "parts of the lab that are not built yet."
        ),
        openapi_tags=TAGS,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served behind authentication by routes.auth
    )
    app.state.console = ConsoleState(
        factory=connect(db_url),
        db_url=db_url,
        secure_cookies=secure_cookies,
        session_ttl_hours=session_ttl_hours,
        event_poll_s=event_poll_s,
        stream_max_s=stream_max_s,
        lab=lab,
    )

    from labos.web.routes import admin, auth, data, lab_routes, pages

    for module in (auth, data, lab_routes, admin, pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response: Response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError):
        if exc.status_code == 401 and _wants_html(request):
            return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
        if _wants_html(request):
            from labos.web.routes.pages import error_page

            return error_page(request, exc.status_code, str(exc))
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return _problem(exc.status_code, str(exc), headers)

    @app.exception_handler(NotImplementedYet)
    async def not_implemented(request: Request, exc: NotImplementedYet):
        return _problem(501, str(exc))

    @app.exception_handler(ValidationError)
    async def validation_error(request: Request, exc: ValidationError):
        return _problem(422, [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()])

    @app.exception_handler(RequestValidationError)
    async def request_validation_error(request: Request, exc: RequestValidationError):
        errors = [
            {"loc": list(e.get("loc", [])), "msg": e.get("msg", "invalid"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return _problem(422, errors)

    @app.exception_handler(LabosError)
    async def labos_error(request: Request, exc: LabosError):
        return _problem(400, str(exc))

    return app
