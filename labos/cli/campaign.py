"""``labos campaign``: run a closed-loop campaign, list, show, submit and report campaigns; and
``labos bench campaign`` (the A-Lab-scale benchmark: our planner against the baselines) and
``labos bench measurement`` (its measurement model against real pattern analysis).

One group for everything about campaigns; ``labos campaigns`` is a hidden alias of it
(:mod:`labos.cli.campaigns`) so older scripts keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from labos.cli.bench import bench_app
from labos.cli.common import console, emit_json, err_console, fail

app = typer.Typer(
    no_args_is_help=True, help="Closed-loop autonomous campaigns: run, list, show, submit, report."
)

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="database URL (default: LABOS_DATABASE_URL or SQLite in LABOS_HOME)"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]


def _guard(fn):
    from pydantic import ValidationError

    from labos.errors import LabosError

    try:
        return fn()
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()))
    except LabosError as exc:
        fail(str(exc))


def read_target_file(path: Path) -> list[str]:
    """Formulas from a text file (one per line, # comments), a GNoME/MP summary CSV or a CIF folder."""
    from labos.models.thermo import read_targets

    if not path.exists():
        fail(f"targets file {path} does not exist")
    return list(dict.fromkeys(c.formula for c in read_targets(path)))


def report_dir(campaign_id: str) -> Path:
    from labos.config import get_settings

    return get_settings().home / "campaigns" / campaign_id


def live_progress(total_days: float, quiet: bool = False):
    """A rich progress display fed by the runner's Progress callbacks; returns (callback, context)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[days]:.1f}/{task.total:g} lab days"),
        TextColumn(
            "made {task.fields[made]}/{task.fields[targets]} · exps {task.fields[exps]}"
            " (in lab {task.fields[fly]})"
        ),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
        disable=quiet,
    )
    task = bar.add_task("campaign", total=total_days, days=0.0, made=0, targets=0, exps=0, fly=0)

    def update(p) -> None:
        bar.update(
            task,
            completed=min(p.lab_days, total_days),
            days=p.lab_days,
            made=p.succeeded,
            targets=p.targets,
            exps=p.experiments,
            fly=p.in_flight,
        )
        if p.last and not quiet:
            mark = "[green]✓[/]" if p.last.get("success") else "·"
            bar.console.print(f"  {mark} day {p.lab_days:5.2f}  {p.message}")

    return update, bar


def print_report(rep) -> None:
    from rich.table import Table

    s = rep.summary
    console.print(
        f"[bold]{rep.name}[/] ({rep.campaign_id}) {rep.status}: made [bold]{s.succeeded}/{s.targets}[/] targets "
        f"with {s.experiments} experiments"
        + (f" ({s.experiments_per_success:.1f} per success)" if s.experiments_per_success else "")
        + f"; furnace utilisation {_pct(s.furnace_utilisation)}; {s.virtual_days:.2f} lab days; "
        f"{s.wall_s:.0f} s wall"
    )
    t = Table(show_lines=False)
    for col in ("target", "status", "exps", "best", "route that worked / what blocked"):
        t.add_column(col)
    for tr in rep.targets:
        if tr.route:
            r = tr.route
            what = f"{' + '.join(r.precursors)} at {r.temperature_c:.0f} °C → {r.target_fraction:.0%}"
        elif tr.failed_routes:
            f = tr.failed_routes[0]
            blocked = ", ".join(f"{k} {v:.0%}" for k, v in list(f.blocking.items())[:3])
            what = f"best {' + '.join(f.precursors)}: {f.best_fraction:.0%}; " + (
                f"blocked by {blocked}" if blocked else "the precursors did not react"
            )
        else:
            what = tr.reason
        style = {"succeeded": "green", "exhausted": "red", "rejected": "yellow", "infeasible": "yellow"}
        t.add_row(
            tr.formula,
            f"[{style.get(tr.status, 'white')}]{tr.status}[/]",
            str(tr.experiments_used),
            _pct(tr.best_fraction),
            what,
        )
    console.print(t)


def _pct(v) -> str:
    return "–" if v is None else f"{v:.0%}"


def write_reports(rep, out: Path | None = None) -> tuple[Path, Path]:
    folder = out or report_dir(rep.campaign_id)
    return rep.write_json(folder / "report.json"), rep.write_html(folder / "report.html")


@app.command()
def run(
    targets: Annotated[
        Path | None, typer.Option("--targets", help="file of target formulas (txt, MP/GNoME CSV, CIF folder)")
    ] = None,
    lab: Annotated[
        str | None, typer.Option("--lab", help="lab configuration TOML (default: the simulated layout)")
    ] = None,
    budget_per_target: Annotated[int, typer.Option(help="experiments allowed per target", min=1)] = 8,
    days: Annotated[float, typer.Option(help="virtual lab days allowed", min=0.01)] = 17.0,
    planner: Annotated[str, typer.Option(help="labos, arrows3, thermo, bo or random")] = "labos",
    seed: Annotated[int, typer.Option(help="seed of the planners and the simulated world", min=0)] = 0,
    chemistry: Annotated[str, typer.Option(help="simulated world: demo or full")] = "demo",
    furnaces: Annotated[int, typer.Option(help="furnaces of the simulated layout", min=1)] = 4,
    xrd: Annotated[
        str, typer.Option(help="pattern (simulate + analyse .xrdml) or truth (fast error model)")
    ] = "pattern",
    threshold: Annotated[
        float | None, typer.Option(help="success: target weight fraction above this")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a name for the campaign")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="continue this campaign id")] = None,
    priors: Annotated[
        bool, typer.Option("--priors/--no-priors", help="literature priors for first recipes")
    ] = True,
    out: Annotated[Path | None, typer.Option(help="folder for report.html and report.json")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a closed-loop campaign (or --resume one): plan, synthesise, analyse XRD, learn, until every
    target is made or its budget is spent, or the lab days are up."""
    from labos.campaign import CampaignConfig, CampaignRunner

    cfg = None
    if resume is None:
        if targets is None:
            fail("give --targets FILE (or --resume CAMPAIGN_ID)")
        formulas = read_target_file(targets)
        cfg = _guard(
            lambda: CampaignConfig(
                name=name or targets.stem,
                targets=formulas,
                budget_per_target=budget_per_target,
                days=days,
                planner=planner,
                seed=seed,
                chemistry=chemistry,
                threshold=threshold,
                use_priors=priors,
                lab={"config_path": lab, "furnaces": furnaces, "xrd": xrd},
            )
        )
    total = cfg.days if cfg else days
    update, bar = live_progress(total, quiet=as_json)
    with bar:
        runner = _guard(lambda: CampaignRunner(cfg, db_url=db, campaign_id=resume, progress=update))
        rep = _guard(runner.run)
    paths = write_reports(rep, out)
    if as_json:
        emit_json(rep.model_dump(mode="json"))
        return
    print_report(rep)
    console.print(f"report: {paths[1]} · {paths[0]}")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every campaign (run here, or submitted from the console) with targets made and experiments."""
    from labos.cli.console_common import ago, listing, pct, session, status, table
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
    """One campaign: per target the outcome, best yield, the route that worked or what blocked it
    (a campaign the runner has not run yet: its targets and latest experiments)."""
    from labos.campaign import persist
    from labos.campaign.report import build_report
    from labos.lab.store import Store

    store = _guard(lambda: Store(db))
    with store.factory() as s:
        row = s.get(persist.CampaignRow, campaign_id)
        ran = row is not None and bool(persist.decisions(s, campaign_id))
    if row is None:
        fail(f"no campaign {campaign_id!r} in this database")
    if not ran:
        _show_detail(campaign_id, db, as_json)
        return
    rep = _guard(lambda: build_report(campaign_id, store.url))
    if as_json:
        emit_json(rep.model_dump(mode="json"))
        return
    print_report(rep)


def _show_detail(campaign_id: str, db: str | None, as_json: bool) -> None:
    from labos.cli.console_common import pct, session, status, table
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
    """Queue a campaign (status 'submitted') for the campaign runner to pick up (audited)."""
    from labos.cli.console_common import cli_actor, session
    from labos.web import audit, control
    from labos.web.schemas import CampaignSubmit

    formulas = list(target or []) + (_submitted_targets(targets_file) if targets_file else [])
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


def _submitted_targets(path: Path) -> list[str]:
    """One formula per line (# comments; anything after a comma is a note)."""
    if not path.is_file():
        fail(f"targets file {path} does not exist")
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split(",")[0].strip())
    return out


@app.command()
def report(
    campaign_id: str,
    out: Annotated[Path | None, typer.Option(help="folder for report.html and report.json")] = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the campaign's report as self-contained HTML (plots inlined) and JSON."""
    from labos.campaign.report import build_report

    rep = _guard(lambda: build_report(campaign_id, db))
    j, h = write_reports(rep, out)
    if as_json:
        emit_json({"html": str(h), "json": str(j), "summary": rep.summary.model_dump()})
        return
    console.print(f"wrote {h} and {j}")


@bench_app.command("campaign")
def bench_campaign(
    targets: Annotated[int, typer.Option(help="targets per campaign", min=1)] = 58,
    furnaces: Annotated[int, typer.Option(help="furnaces in the simulated lab", min=1)] = 8,
    furnace_slots: Annotated[int, typer.Option(help="crucibles per furnace", min=1)] = 4,
    days: Annotated[float, typer.Option(help="virtual days per campaign", min=0.01)] = 17.0,
    seeds: Annotated[int, typer.Option(help="worlds (hidden kinetics and target sets)", min=1)] = 5,
    budget_per_target: Annotated[int, typer.Option(help="experiments allowed per target", min=1)] = 8,
    planners: Annotated[
        str, typer.Option(help="comma-separated; the first is compared with the rest")
    ] = "labos,thermo,random",
    workers: Annotated[int, typer.Option(help="campaigns run in parallel processes", min=1)] = 1,
    priors: Annotated[
        bool, typer.Option("--priors/--no-priors", help="literature priors for our planner")
    ] = False,
    first_seed: Annotated[int, typer.Option(help="first seed", min=0)] = 0,
    chemistry: Annotated[
        str, typer.Option(help="full (thermodynamic database) or demo (6 targets, crystal structures)")
    ] = "full",
    xrd: Annotated[
        str,
        typer.Option(
            help="truth (simulator truth + measurement model, fast) or analyse (simulate and analyse "
            "every pattern, ~1 s each; needs --chemistry demo)"
        ),
    ] = "truth",
    sigma: Annotated[
        float | None, typer.Option(help="measurement model: wt-fraction error (default: calibrated)", min=0)
    ] = None,
    detection_limit: Annotated[
        float | None, typer.Option(help="measurement model: smallest phase reported", min=0)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A-Lab-scale campaigns (58 targets, 8 furnaces, 17 days) in simulated worlds: our planner vs
    thermodynamics-only ranking and random precursor sets, in the same invocation."""
    from labos.campaign.bench import BenchSpec, run_bench

    names = tuple(p.strip() for p in planners.split(",") if p.strip())
    from labos.planners.registry import PLANNERS

    bad = [p for p in names if p not in PLANNERS]
    if bad or not names:
        fail(f"unknown planner(s) {', '.join(bad) or '(none)'}; choose from {', '.join(PLANNERS)}")
    spec = _guard(
        lambda: BenchSpec(
            targets=targets,
            furnaces=furnaces,
            furnace_slots=furnace_slots,
            days=days,
            seeds=seeds,
            budget_per_target=budget_per_target,
            planners=names,
            priors=priors,
            workers=workers,
            first_seed=first_seed,
            chemistry=chemistry,
            xrd=_xrd_mode(xrd),
            sigma=sigma,
            detection_limit=detection_limit,
        )
    )

    def note(r):
        err_console.print(
            f"{r['planner']:>8} seed {r['seed']}: made {r['succeeded']}/{r['targets']} with "
            f"{r['experiments']} experiments, furnace utilisation {_pct(r['furnace_utilisation'])}, "
            f"{r['virtual_days']:.1f} lab days, {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU"
        )

    result = _guard(lambda: run_bench(spec, progress=note))
    if as_json:
        emit_json(result)
        return
    console.print_json(data={k: v for k, v in result.items() if k != "runs"})


def _xrd_mode(name: str) -> str:
    """The CLI's --xrd word → LabSpec.xrd ('analyse' is the pattern path)."""
    modes = {"truth": "truth", "analyse": "pattern", "analyze": "pattern", "pattern": "pattern"}
    if name not in modes:
        fail(f"unknown --xrd {name!r}; choose truth or analyse")
    return modes[name]


@bench_app.command("measurement")
def bench_measurement(
    experiments: Annotated[int, typer.Option(help="syntheses measured both ways", min=2)] = 60,
    seeds: Annotated[int, typer.Option(help="hidden demo worlds the experiments come from", min=1)] = 3,
    sigma: Annotated[
        float | None, typer.Option(help="model wt-fraction error to check (default: the current one)", min=0)
    ] = None,
    detection_limit: Annotated[
        float | None, typer.Option(help="model detection limit to check (default: the current one)", min=0)
    ] = None,
    sample_seed: Annotated[int, typer.Option(help="which grid cells are drawn", min=0)] = 0,
    with_cases: Annotated[bool, typer.Option("--cases", help="include every case in the JSON")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check the campaign benchmark's measurement model against real XRD analysis: the same demo
    syntheses through (a) simulated pattern → analysis and (b) truth + model; agreement of success
    decisions, target wt% MAE, phase-set F1; and the model calibrated from (a)'s errors."""
    from labos.campaign.agreement import run_agreement

    def note(i: int) -> None:
        if i % 10 == 0 or i == experiments:
            err_console.print(f"analysed {i}/{experiments} patterns")

    result = _guard(
        lambda: run_agreement(
            experiments,
            tuple(range(seeds)),
            sigma=sigma,
            detection_limit=detection_limit,
            sample_seed=sample_seed,
            progress=None if as_json else note,
        )
    )
    if not with_cases:
        result.pop("cases", None)
    if as_json:
        emit_json(result)
        return
    console.print_json(data=result)
