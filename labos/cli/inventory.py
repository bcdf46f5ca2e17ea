"""``labos inventory``: precursor stock per lot; record a refill."""

from __future__ import annotations

from typing import Annotated

import typer

from labos.cli.common import console
from labos.cli.console_common import DbOption, JsonOption, cli_actor, listing, session, table

app = typer.Typer(no_args_is_help=True, help="Precursor inventory: stock per lot, refills.")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every lot with its stock; low lots are marked."""
    from labos.web import labgate

    with session(db) as s:
        items = labgate.inventory(s)
    listing(
        as_json,
        items,
        lambda: table(
            "Inventory",
            [
                "precursor",
                "lot",
                ("stock g", {"justify": "right"}),
                ("refill below g", {"justify": "right"}),
                "state",
                "location",
            ],
            [
                (
                    x.formula,
                    x.lot,
                    f"{x.stock_mg / 1000:.2f}",
                    f"{x.low_mg / 1000:.2f}",
                    "[red]empty[/]" if x.stock_mg <= 0 else "[yellow]low[/]" if x.low else "[green]ok[/]",
                    x.location,
                )
                for x in items
            ],
        ),
    )


@app.command()
def refill(
    formula: str,
    mg: Annotated[float, typer.Option(help="mass added, mg", min=0.001)],
    lot: Annotated[str, typer.Option(help="lot number of the new stock")],
    db: DbOption = None,
) -> None:
    """Record that a precursor was refilled (adds the lot or tops it up; audited)."""
    from labos.web import audit, labgate

    actor = cli_actor()
    with session(db) as s:
        labgate.refill(s, formula, lot, mg, user=actor)
        audit.record(s, "inventory.refill", username=actor, subject=formula, lot=lot, mg=mg)
    console.print(f"added {mg:.0f} mg of {formula} (lot {lot})")
