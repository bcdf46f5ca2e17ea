"""``labos export``: results as CSV/JSON, raw XRD files, analysis plots (PNG)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer

from labos.cli.common import console, fail
from labos.cli.console_common import DbOption, session

app = typer.Typer(no_args_is_help=True, help="Export results: tables, raw XRD files, plots.")
Campaign = Annotated[str | None, typer.Option(help="only this campaign")]


@app.command()
def results(
    out: Annotated[Path, typer.Option("--out", "-o", help="file to write (.csv or .json)")],
    campaign: Campaign = None,
    db: DbOption = None,
) -> None:
    """One row per experiment: recipe facts and the outcome that speaks for it."""
    from labos.web.exporting import experiment_rows, write_json

    if out.suffix.lower() not in (".csv", ".json"):
        fail(f"--out {out} must end in .csv or .json")
    with session(db) as s:
        rows = experiment_rows(s, campaign)
    if out.suffix.lower() == ".json":
        write_json(rows, out)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as fh:
            if rows:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    console.print(f"wrote {len(rows)} experiments to {out}")


@app.command()
def xrd(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the files")],
    campaign: Campaign = None,
    db: DbOption = None,
) -> None:
    """Copy every raw XRD file (and its fit) into OUT/<experiment>/."""
    from labos.web.exporting import copy_xrd_files

    with session(db) as s:
        files = copy_xrd_files(s, out, campaign)
    console.print(f"copied {len(files)} files to {out}")


@app.command("plots")
def plots_(
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the PNG files")],
    experiment: Annotated[
        list[str] | None, typer.Option("--experiment", "-e", help="experiment id (repeatable)")
    ] = None,
    campaign: Campaign = None,
    db: DbOption = None,
) -> None:
    """Draw the XRD fit and furnace profile of experiments as PNG files."""
    from rich.progress import Progress

    from labos.web.exporting import experiment_rows, plot_experiment

    with session(db) as s:
        ids = list(experiment or []) or [r["experiment_id"] for r in experiment_rows(s, campaign)]
        if not ids:
            fail("no experiments to plot")
        written = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("plotting", total=len(ids))
            for eid in ids:
                written += plot_experiment(s, eid, out)
                progress.advance(task)
    console.print(f"wrote {len(written)} plots to {out}")
