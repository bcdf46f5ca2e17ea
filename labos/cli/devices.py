"""``labos devices``: live device state, faults, bookings and utilisation."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from labos.cli.common import console
from labos.cli.console_common import DbOption, JsonOption, listing, pct, session, status, table

app = typer.Typer(no_args_is_help=True, help="Devices: state, faults, what each is doing, utilisation.")


def _rows(db: str | None):
    from labos.web import labgate

    with session(db) as s:
        return labgate.devices(s)


def _show(items) -> None:
    table(
        "Devices",
        [
            "device",
            "role",
            "state",
            "doing",
            ("slots", {"justify": "right"}),
            ("busy", {"justify": "right"}),
            ("jobs", {"justify": "right"}),
            "fault",
        ],
        [
            (
                d.name,
                d.role,
                status(d.state),
                d.holder or "idle",
                f"{d.occupied}/{d.slots}" if d.slots else None,
                pct(d.utilisation),
                d.grants,
                d.fault,
            )
            for d in items
        ],
    )


@app.command("list")
def list_(
    watch: Annotated[
        float, typer.Option(help="refresh every N seconds until Ctrl-C (0: print once)", min=0)
    ] = 0,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every device with its live state (from the lab OS's database)."""
    items = _rows(db)
    if not watch or as_json:
        listing(as_json, items, lambda: _show(items))
        return
    from rich.live import Live

    try:
        with Live(console=console, refresh_per_second=2, transient=False) as live:
            while True:
                with console.capture() as cap:
                    _show(_rows(db))
                live.update(cap.get(), refresh=True)
                time.sleep(watch)
    except KeyboardInterrupt:
        pass


@app.command()
def positions(
    occupied: Annotated[bool, typer.Option(help="only positions holding a sample")] = True,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sample positions (device slots and racks) and what is in them."""
    from labos.web import labgate

    with session(db) as s:
        items = [p for p in labgate.positions(s) if p.occupant or not occupied]
    listing(
        as_json,
        items,
        lambda: table(
            "Positions",
            ["position", "group", "device", "sample", "booked by"],
            [(p.name, p.group, p.device, p.occupant, p.holder) for p in items],
        ),
    )
