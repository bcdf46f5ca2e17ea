"""``labos campaigns``: list and inspect campaigns, submit one for the campaign runner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labos.cli.common import console, emit_json, fail
from labos.cli.console_common import (
    DbOption,
    JsonOption,
    ago,
    cli_actor,
    listing,
    pct,
    session,
    status,
    table,
)

app = typer.Typer(no_args_is_help=True, help="Campaigns: progress, targets, experiments; submit new ones.")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every campaign with targets made, experiments and success rate."""
    from labos.web import queries

    with session(db) as s:
        items = queries.list_campaigns(s)
    listing(
        as_json,
        items,
        lambda: table(
            "Campaigns",
            [
                "id",
                "name",
                "status",
                ("made", {"justify": "right"}),
                ("exps", {"justify": "right"}),
                ("running", {"justify": "right"}),
                ("success", {"justify": "right"}),
                "updated",
            ],
            [
                (
                    c.id,
                    c.name,
                    status(c.status),
                    f"{c.n_succeeded}/{c.n_targets}",
                    c.n_experiments,
                    c.n_running,
                    pct(c.success_rate),
                    ago(c.updated_at),
                )
                for c in items
            ],
        ),
    )


@app.command()
def show(campaign_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """One campaign: its targets with best yields and its latest experiments."""
    from labos.web import queries

    with session(db) as s:
        c = queries.campaign_detail(s, campaign_id)
    if as_json:
        emit_json(c.model_dump(mode="json"))
        return
    console.print(
        f"[bold]{c.name}[/] ({c.id}) {status(c.status)} — {c.n_succeeded}/{c.n_targets} targets made, "
        f"{c.n_experiments} experiments, {c.n_running} in progress"
    )
    table(
        "Targets",
        [
            "target",
            "status",
            ("exps", {"justify": "right"}),
            ("best", {"justify": "right"}),
            "best experiment",
        ],
        [
            (
                t.formula,
                status("succeeded" if t.succeeded else t.status),
                t.n_experiments,
                pct(t.best_fraction),
                t.best_experiment_id,
            )
            for t in c.targets
        ],
    )
    table(
        "Latest experiments",
        [
            "id",
            "target",
            "status",
            "precursors",
            ("T max", {"justify": "right"}),
            ("yield", {"justify": "right"}),
        ],
        [
            (
                e.id,
                e.target_formula,
                status(e.status),
                " + ".join(e.precursors),
                f"{e.max_temperature_c:.0f} °C" if e.max_temperature_c is not None else None,
                pct(e.target_fraction),
            )
            for e in c.experiments[:25]
        ],
    )


def _read_targets(path: Path) -> list[str]:
    if not path.is_file():
        fail(f"targets file {path} does not exist")
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split(",")[0].strip())
    return out


@app.command()
def submit(
    name: Annotated[str, typer.Argument(help="a name for the campaign")],
    target: Annotated[
        list[str] | None, typer.Option("--target", "-t", help="a target formula (repeatable)")
    ] = None,
    targets_file: Annotated[
        Path | None, typer.Option("--targets", help="file with one formula per line")
    ] = None,
    budget: Annotated[int, typer.Option(help="experiments allowed per target")] = 10,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a campaign (status 'submitted') for the campaign runner to pick up."""
    from labos.web import audit, control
    from labos.web.schemas import CampaignSubmit

    formulas = list(target or []) + (_read_targets(targets_file) if targets_file else [])
    if not formulas:
        fail("give targets with --target FORMULA or --targets FILE")
    body = CampaignSubmit(name=name, targets=formulas, budget_per_target=budget)
    actor = cli_actor()
    with session(db) as s:
        summary = control.submit_campaign(s, body, submitted_by=actor)
        audit.record(s, "campaign.submit", username=actor, subject=summary.id, name=name, targets=formulas)
    if as_json:
        emit_json(summary.model_dump(mode="json"))
    else:
        console.print(
            f"submitted campaign [bold]{summary.id}[/] with {len(formulas)} targets; "
            f"run it with `labos campaign run --resume {summary.id}`"
        )
