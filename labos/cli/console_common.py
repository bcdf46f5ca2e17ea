"""What the operator commands share: which database, who is acting, compact rich tables."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from labos.cli.common import console, emit_json

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: LABOS_DATABASE_URL or the SQLite file in LABOS_HOME)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]


def db_url(db: str | None) -> str:
    if db:
        return db
    from labos.config import get_settings

    return get_settings().db_url


@contextmanager
def session(db: str | None) -> Iterator[Session]:
    """One transaction on the chosen database (migrated to the newest schema on first use)."""
    from labos.db import connect, session_scope

    with session_scope(connect(db_url(db))) as s:
        yield s


def cli_actor() -> str:
    """Who a CLI action is audited as: the operating-system user (the CLI has direct database access)."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no login name in some containers
        return "cli:unknown"


def ago(ts: datetime | None) -> str:
    if ts is None:
        return "—"
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    sec = (datetime.now(UTC) - ts).total_seconds()
    if sec < 60:
        return "just now"
    if sec < 3600:
        return f"{sec / 60:.0f} min ago"
    if sec < 86400:
        return f"{sec / 3600:.0f} h ago"
    return ts.strftime("%Y-%m-%d")


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


STATUS_STYLE = {
    "running": "blue",
    "completed": "green",
    "succeeded": "green",
    "ok": "green",
    "answered": "green",
    "failed": "red",
    "fault": "red",
    "stopped": "red",
    "waiting_operator": "yellow",
    "open": "yellow",
    "paused": "yellow",
    "offline": "dim",
    "cancelled": "dim",
}


def status(text: str | None) -> str:
    text = text or "—"
    style = STATUS_STYLE.get(text)
    return f"[{style}]{text}[/]" if style else text


def table(
    title: str | None,
    columns: Sequence[str | tuple[str, dict[str, Any]]],
    rows: Iterable[Sequence[Any]],
) -> None:
    """Print a compact table that folds long cells to fit the terminal."""
    t = Table(title=title, title_justify="left", header_style="bold", pad_edge=False, expand=False)
    for col in columns:
        name, opts = (col, {}) if isinstance(col, str) else col
        t.add_column(name, overflow="fold", **opts)
    n = 0
    for row in rows:
        t.add_row(*("—" if v is None else str(v) for v in row))
        n += 1
    if n == 0:
        console.print(f"[dim]{title or 'nothing'}: none[/]")
        return
    console.print(t)


def listing(as_json: bool, items: list[Any], show: Callable[[], None]) -> None:
    """--json prints the items (pydantic models or dicts); otherwise ``show`` prints a table."""
    if as_json:
        emit_json([i.model_dump(mode="json") if hasattr(i, "model_dump") else i for i in items])
    else:
        show()
