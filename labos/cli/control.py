"""``labos control``: pause, resume or stop the running lab (its workers obey ``lab_state``)."""

from __future__ import annotations

from typing import Annotated

import typer

from labos.cli.common import console, emit_json
from labos.cli.console_common import DbOption, JsonOption, cli_actor, session, status, table

app = typer.Typer(no_args_is_help=True, help="Lab state: status, pause, resume, stop (audited).")
LabOption = Annotated[
    str | None, typer.Option("--lab", help="lab id (default: the only lab in the database)")
]


def _print(st, as_json: bool) -> None:
    if as_json:
        emit_json(st.model_dump(mode="json"))
        return
    console.print(
        f"lab [bold]{st.id}[/] {status(st.desired)} · clock {st.clock_s / 3600:.2f} h · "
        f"{st.devices} devices ({st.devices_busy} busy, {st.devices_fault} in fault)"
    )
    table(
        "Workers",
        ["worker", "pid", "host", "status", "heartbeat"],
        [(w["id"], w["pid"], w["host"], status(w["status"]), w["heartbeat_at"]) for w in st.workers],
    )


@app.command("status")
def status_(lab: LabOption = None, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Whether the lab is running, paused or stopped, its clock and its workers."""
    from labos.web import labgate

    with session(db) as s:
        _print(labgate.lab_status(s, lab), as_json)


def _act(action: str, lab: str | None, db: str | None, reason: str | None, as_json: bool) -> None:
    from labos.web import audit, labgate

    actor = cli_actor()
    with session(db) as s:
        st = labgate.control(s, action, user=actor, lab_id=lab)
        audit.record(s, f"lab.{action}", username=actor, subject=st.id, reason=reason)
    _print(st, as_json)


Reason = Annotated[str | None, typer.Option(help="why (kept in the audit log)")]


@app.command()
def pause(
    lab: LabOption = None, reason: Reason = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Pause: running steps finish, nothing new starts."""
    _act("pause", lab, db, reason, as_json)


@app.command()
def resume(
    lab: LabOption = None, reason: Reason = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Resume a paused or stopped lab."""
    _act("resume", lab, db, reason, as_json)


@app.command()
def stop(
    lab: LabOption = None, reason: Reason = None, db: DbOption = None, as_json: JsonOption = False
) -> None:
    """Stop the lab's workers after their current step."""
    _act("stop", lab, db, reason, as_json)
