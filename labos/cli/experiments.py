"""``labos experiments``: list and inspect experiments (recipe, reasons, outcomes, timeline)."""

from __future__ import annotations

from typing import Annotated

import typer

from labos.cli.common import console, emit_json
from labos.cli.console_common import DbOption, JsonOption, ago, listing, pct, session, status, table

app = typer.Typer(
    no_args_is_help=True, help="Experiments: recipes, the planner's reasons, outcomes, timelines."
)


@app.command("list")
def list_(
    campaign: Annotated[str | None, typer.Option(help="only this campaign")] = None,
    state: Annotated[
        str | None, typer.Option("--status", help="only this status (running, completed ...)")
    ] = None,
    target: Annotated[str | None, typer.Option(help="only this target formula")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Experiments, newest first."""
    from labos.web import queries

    with session(db) as s:
        total, items = queries.list_experiments(
            s, campaign_id=campaign, status=state, target=target, limit=limit
        )
    listing(
        as_json,
        items,
        lambda: table(
            f"Experiments ({len(items)} of {total})",
            [
                "id",
                "target",
                "status",
                "precursors",
                ("T max", {"justify": "right"}),
                ("yield", {"justify": "right"}),
                "created",
            ],
            [
                (
                    e.id,
                    e.target_formula,
                    status(e.status),
                    " + ".join(e.precursors),
                    f"{e.max_temperature_c:.0f} °C" if e.max_temperature_c is not None else None,
                    pct(e.target_fraction),
                    ago(e.created_at),
                )
                for e in items
            ],
        ),
    )


def _step(s: dict) -> str:
    kind = s.get("kind")
    if kind == "dose":
        return f"dose {s['precursor']} {s['mass_mg']:.1f} mg"
    if kind == "heat":
        segs = ", then ".join(
            f"{g['ramp_c_per_min']} °C/min to {g['target_c']:.0f} °C for {g['dwell_min']:.0f} min"
            for g in s["segments"]
        )
        return f"heat {segs} in {s.get('atmosphere', 'air')}"
    if kind == "mix":
        return f"mix ({s.get('method')}) {s.get('duration_min')} min"
    if kind == "grind":
        return f"grind {s.get('duration_min')} min"
    if kind == "xrd":
        return f"XRD {s.get('two_theta_start')}–{s.get('two_theta_end')}° 2θ"
    return str(s)


@app.command()
def show(experiment_id: str, db: DbOption = None, as_json: JsonOption = False) -> None:
    """Recipe, the planner's explanation, outcomes with phases, and the task timeline."""
    from labos.web import plots, queries

    with session(db) as s:
        e = queries.experiment_detail(s, experiment_id)
        tl = plots.timeline(s, experiment_id)
    if as_json:
        emit_json({**e.model_dump(mode="json"), "timeline": [t.model_dump(mode="json") for t in tl]})
        return
    console.print(f"[bold]{e.target_formula}[/] {e.id} {status(e.status)} planner={e.planner or '—'}")
    if e.explanation:
        console.print(f"[dim]why:[/] {e.explanation}")
    for i, step in enumerate(e.recipe.get("steps", []), 1):
        console.print(f"  {i}. {_step(step)}")
    for o in e.outcomes:
        phases = ", ".join(f"{p.formula} {100 * p.weight_fraction:.0f}%" for p in o.outcome.phases)
        console.print(
            f"outcome ({o.source}): target {pct(o.target_fraction)} "
            f"{'[green]success[/]' if o.success else ''} {phases} {o.xrd_file or ''}"
        )
    table(
        "Timeline",
        ["task", "status", "device", "start", "end"],
        [(t.task, status(t.status), t.device, t.start_label, t.end_label) for t in tl],
    )
