"""``labos serve``: the web console (REST API, pages, live events) on 127.0.0.1 by default."""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from labos.cli.common import console, err_console
from labos.cli.console_common import DbOption, db_url

app = typer.Typer(help="Serve the operator console.")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.callback(invoke_without_command=True)
def serve(
    host: Annotated[
        str, typer.Option(help="address to listen on; keep 127.0.0.1 unless behind a TLS proxy")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    secure_cookies: Annotated[
        bool, typer.Option(help="mark the session cookie Secure (serving over HTTPS)")
    ] = False,
    session_hours: Annotated[float, typer.Option(help="browser session lifetime", min=0.1, max=720)] = 12.0,
    db: DbOption = None,
) -> None:
    """Serve the console until Ctrl-C."""
    import uvicorn

    from labos.db import session_scope
    from labos.web import accounts, create_app

    url = db_url(db)
    app_ = create_app(url, secure_cookies=secure_cookies, session_ttl_hours=session_hours)
    with session_scope(app_.state.console.factory) as s:
        if accounts.count_users(s) == 0:
            err_console.print(
                "[yellow]no users yet:[/] create an admin with `labos users add NAME --role admin`"
            )
    if not _loopback(host):
        err_console.print(
            f"[yellow]warning:[/] listening on {host} exposes the console beyond this machine; put it behind "
            "a TLS-terminating proxy and pass --secure-cookies"
        )
    console.print(f"labos console on http://{host}:{port}/ (database {url.split('@')[-1]})")
    uvicorn.run(
        app_, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3, proxy_headers=False
    )
