"""``labos events``: the lab's event log, or follow it live."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from labos.cli.common import console, emit_json
from labos.cli.console_common import DbOption, JsonOption, session, table

app = typer.Typer(help="The lab's event log.")


@app.callback(invoke_without_command=True)
def events(
    kind: Annotated[str | None, typer.Option(help="kind prefix, e.g. task. or intervention.")] = None,
    subject: Annotated[str | None, typer.Option(help="only events about this subject")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events until Ctrl-C")
    ] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest events (or follow them; with --json one JSON document per line)."""
    from labos.web import queries

    with session(db) as s:
        items = list(reversed(queries.list_events(s, kind=kind, subject=subject, limit=limit)))
    if as_json and not follow:
        emit_json([e.model_dump(mode="json") for e in items])
        return

    def show(batch) -> None:
        for e in batch:
            if as_json:
                typer.echo(e.model_dump_json())
            else:
                data = ", ".join(f"{k}={v}" for k, v in list(e.data.items())[:5])
                console.print(
                    f"[dim]{e.at:%H:%M:%S}[/] #{e.id} [bold]{e.kind}[/] {e.subject or ''} [dim]{data}[/]"
                )

    if not follow:
        table(
            "Events",
            ["id", "at", "kind", "subject", "data"],
            [(e.id, f"{e.at:%Y-%m-%d %H:%M:%S}", e.kind, e.subject, str(e.data)[:120]) for e in items],
        )
        return
    show(items)
    last = items[-1].id if items else 0
    try:
        while True:
            with session(db) as s:
                batch = queries.list_events(s, after=last, kind=kind, subject=subject, limit=500)
            if batch:
                show(batch)
                last = batch[-1].id
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
