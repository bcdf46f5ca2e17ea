"""``labos demo``: what ``make demo`` runs on a fresh machine — a short, real closed-loop campaign on
the embedded default (SQLite in LABOS_HOME, the simulated lab, the built-in demo chemistry, every
sample's XRD pattern simulated and analysed), with live progress and a final report.

The budget is the A-Lab's scale (8 experiments per target, as ``labos campaign run`` and the
A-Lab-scale benchmark use): in the demo worlds most targets need 1100–1200 °C, which a planner
reaches only after a few partial results; with 4 the demo ended before it could. Seven lab days are
plenty (a demo campaign uses 2–4); the whole run takes well under a minute of wall time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    budget_per_target: Annotated[int, typer.Option(help="experiments allowed per target", min=1)] = 8,
    days: Annotated[float, typer.Option(help="virtual lab days allowed", min=0.1)] = 7.0,
    furnaces: Annotated[int, typer.Option(help="furnaces of the simulated lab", min=1)] = 3,
    seed: Annotated[int, typer.Option(help="seed of the planners and the hidden kinetics", min=0)] = 0,
    planner: Annotated[str, typer.Option(help="labos, arrows3, thermo, bo or random")] = "labos",
    priors: Annotated[
        bool,
        typer.Option(
            "--priors/--no-priors", help="literature priors (trained once, if the dataset is present)"
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="folder for report.html and report.json")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Run a short autonomous campaign on the built-in demo chemistry and print its report."""
    from labos.campaign import CampaignConfig, CampaignRunner
    from labos.cli.campaign import _guard, live_progress, print_report, write_reports
    from labos.cli.common import console
    from labos.config import get_settings
    from labos.simulator.demo_chemistry import DEMO_TARGETS

    settings = get_settings()
    cfg = _guard(
        lambda: CampaignConfig(
            name="demo",
            targets=list(DEMO_TARGETS),
            budget_per_target=budget_per_target,
            days=days,
            planner=planner,
            seed=seed,
            chemistry="demo",
            use_priors=priors,
            lab={"furnaces": furnaces, "xrd": "pattern"},
        )
    )
    if not as_json:
        console.print(
            f"[bold]labos demo[/]: {len(cfg.targets)} targets ({', '.join(cfg.targets)}) in a simulated lab with "
            f"{furnaces} furnaces; every sample's XRD pattern is simulated and analysed.\n"
            f"database: {settings.db_url}"
        )
    update, bar = live_progress(cfg.days, quiet=as_json)
    with bar:
        runner = _guard(lambda: CampaignRunner(cfg, progress=update))
        rep = _guard(runner.run)
    paths = write_reports(rep, out or settings.home / "demo")
    if as_json:
        from labos.cli.common import emit_json

        emit_json(rep.model_dump(mode="json"))
        return
    print_report(rep)
    console.print(f"report: {paths[1]}\n        {paths[0]}")
