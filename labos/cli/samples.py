"""``labos samples``: where every sample is, its history and lineage."""

from __future__ import annotations

from typing import Annotated

import typer

from labos.cli.common import console, emit_json
from labos.cli.console_common import DbOption, JsonOption, ago, listing, session, table

app = typer.Typer(no_args_is_help=True, help="Samples: positions, move history, lineage.")


@app.command("list")
def list_(
    position: Annotated[str | None, typer.Option(help="position prefix, e.g. furnace_1/")] = None,
    experiment: Annotated[str | None, typer.Option(help="only samples of this experiment")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000)] = 200,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Samples and where they are now."""
    from labos.web import queries

    with session(db) as s:
        total, items = queries.list_samples(s, position=position, experiment_id=experiment, limit=limit)
    listing(
        as_json,
        items,
        lambda: table(
            f"Samples ({len(items)} of {total})",
            [
                "id",
                "position",
                "container",
                "experiment",
                "target",
                ("moves", {"justify": "right"}),
                "last move",
            ],
            [
                (
                    x.id,
                    x.position,
                    x.container,
                    x.experiment_id,
                    x.target_formula,
                    x.n_moves,
                    ago(x.last_moved_at),
                )
                for x in items
            ],
        ),
    )


@app.command()
def show(sample_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One sample: every move with its cause, and where its material came from."""
    from labos.web import queries

    with session(db) as s:
        x = queries.sample_detail(s, sample_id)
    if as_json:
        emit_json(x.model_dump(mode="json"))
        return
    console.print(
        f"[bold]{x.id}[/] {x.container} at [bold]{x.position}[/] (experiment {x.experiment_id or '—'})"
    )
    table(
        "History",
        ["when", "position", "cause"],
        [(h.at.strftime("%Y-%m-%d %H:%M:%S"), h.position, h.cause) for h in x.history],
    )
    L = x.lineage
    table(
        "Precursors",
        ["precursor", ("planned mg", {"justify": "right"}), ("weighed mg", {"justify": "right"}), "lots"],
        [
            (
                d["precursor"],
                d.get("planned_mg"),
                d.get("weighed_mg"),
                ", ".join(f"{lot['lot']} ({lot['mg']} mg)" for lot in d.get("lots") or []),
            )
            for d in L.doses
        ],
    )
    for o in L.outcomes:
        console.print(f"outcome ({o.source}): target {100 * o.target_fraction:.0f}% file {o.xrd_file or '—'}")
    for p in L.provenance:
        console.print(f"[dim]{p['kind']}[/] {p.get('data', {})}")
