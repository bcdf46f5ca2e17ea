"""``labos interventions``: what the lab needs from a person; answer it."""

from __future__ import annotations

from typing import Annotated

import typer

from labos.cli.common import console, emit_json, fail
from labos.cli.console_common import DbOption, JsonOption, ago, cli_actor, listing, session, status, table

app = typer.Typer(no_args_is_help=True, help="Operator interventions: list them, answer them.")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="also answered ones")] = False,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open interventions (or all of them)."""
    from labos.web import labgate

    with session(db) as s:
        items = labgate.interventions(s, "all" if all_ else "open")
    listing(
        as_json,
        items,
        lambda: table(
            "Interventions",
            ["id", "kind", "status", "level", "message", "options", "answered", "raised"],
            [
                (
                    i.id,
                    i.kind,
                    status(i.status),
                    i.level,
                    i.message,
                    " | ".join(i.options),
                    f"{i.answer} by {i.answered_by}" if i.answer else None,
                    ago(i.created_at),
                )
                for i in items
            ],
        ),
    )


def _values(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            fail(f"--value {pair!r} must look like key=value (e.g. mg=25000)")
        try:
            out[key.strip()] = float(raw)
        except ValueError:
            out[key.strip()] = raw.strip()
    return out


@app.command()
def answer(
    intervention_id: str,
    option: Annotated[str, typer.Argument(help="one of the intervention's options")],
    value: Annotated[
        list[str] | None, typer.Option("--value", "-v", help="key=value the answer needs")
    ] = None,
    note: Annotated[str | None, typer.Option(help="a note for the audit log")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Answer an intervention; the lab OS applies the answer and the audit log records who gave it."""
    from labos.web import audit, labgate

    actor = cli_actor()
    values = _values(value or [])
    with session(db) as s:
        result = labgate.answer(s, intervention_id, option, user=actor, values=values)
        audit.record(
            s,
            "intervention.answer",
            username=actor,
            subject=intervention_id,
            answer=option,
            values=values or None,
            note=note,
        )
    if as_json:
        emit_json(result.model_dump(mode="json"))
    else:
        console.print(f"answered {intervention_id}: {option}")
