"""The campaign report: per target what worked and why, what failed and what blocked it, and the
campaign's numbers (success rate, experiments per success, furnace utilisation, virtual and wall
time). Built from the database at any time (a running campaign too), written as JSON and as one
self-contained HTML file (plotly's JavaScript inlined: it opens offline, no CDN)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from labos.domain import parse_formula

MIN_INTERMEDIATE = 0.02  # phases below 2 wt% are not named as blocking


class ExperimentEntry(BaseModel):
    id: str
    seq: int
    status: str  # reported | failed | cancelled | in_lab
    precursors: list[str]
    masses_mg: dict[str, float]
    temperature_c: float
    dwell_min: float
    regrind_reheat: bool = False
    target_fraction: float | None = None
    success: bool | None = None
    phases: dict[str, float] = Field(default_factory=dict)
    intermediates: dict[str, float] = Field(
        default_factory=dict, description="non-target, non-precursor phases"
    )
    unreacted: dict[str, float] = Field(default_factory=dict, description="precursors left")
    expected_yield: float | None = None
    success_probability: float | None = None
    expected_reaction: str | None = None
    explanation: str = ""
    proposed_day: float | None = None
    reported_day: float | None = None
    outcome_source: str | None = None
    rwp: float | None = None
    confidence: float | None = None
    xrd_file: str | None = None
    note: str | None = None


class Route(BaseModel):
    """One precursor set as tried for a target."""

    precursors: list[str]
    temperatures_c: list[float]
    experiments: list[str]
    best_fraction: float
    blocking: dict[str, float] = Field(
        default_factory=dict, description="intermediates seen, max wt fraction"
    )
    unreacted: dict[str, float] = Field(default_factory=dict)


class WorkingRoute(BaseModel):
    experiment: str
    precursors: list[str]
    masses_mg: dict[str, float]
    temperature_c: float
    dwell_min: float
    regrind_reheat: bool
    target_fraction: float
    reaction: str | None
    why: str


class TargetReport(BaseModel):
    formula: str
    status: str
    reason: str = ""
    e_above_hull: float | None = None
    screening: list[str] = Field(default_factory=list)
    experiments_used: int = 0
    reported: int = 0
    best_fraction: float | None = None
    best_experiment: str | None = None
    route: WorkingRoute | None = None
    failed_routes: list[Route] = Field(default_factory=list)
    experiments: list[ExperimentEntry] = Field(default_factory=list)


class Summary(BaseModel):
    targets: int
    attempted: int
    succeeded: int
    success_rate: float | None = Field(description="succeeded / targets")
    success_rate_attempted: float | None = Field(description="succeeded / targets attempted (screened in)")
    experiments: int
    reported: int
    failed: int
    cancelled: int
    in_lab: int
    experiments_per_success: float | None
    furnace_utilisation: float | None = Field(description="heating time / (furnaces × campaign makespan)")
    furnace_occupancy: float | None = None
    furnace_runs: int = 0
    mean_batch: float | None = None
    furnaces: int = 0
    virtual_days: float
    makespan_h: float | None = None
    wall_s: float
    sessions: int


class CampaignReport(BaseModel):
    campaign_id: str
    name: str
    status: str
    planner: str
    seed: int
    chemistry: str
    xrd: str
    threshold: float
    budget_per_target: int
    days_allowed: float
    priors: str | None = None
    summary: Summary
    targets: list[TargetReport]
    timeline: list[dict[str, Any]] = Field(
        default_factory=list, description="(day, target, fraction, success)"
    )
    furnace_runs: list[dict[str, Any]] = Field(default_factory=list)
    lab: dict[str, Any] = Field(default_factory=dict)

    def to_json(self, **kw: Any) -> str:
        return self.model_dump_json(**kw)

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1))
        return path

    def write_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(self), encoding="utf-8")
        return path


# ---------------------------------------------------------------------------------------------- build


def _key(formula: str) -> str:
    try:
        return parse_formula(formula)
    except Exception:  # a phase label that is not a formula
        return formula


def build_report(campaign_id: str, db_url: str | None = None, *, with_lab: bool = True) -> CampaignReport:
    """Everything about a campaign, read from its database."""
    from labos.campaign import persist
    from labos.db.records import OutcomeRow
    from labos.lab.store import Store

    store = Store(db_url)
    with store.factory() as s:
        row = persist.load_campaign(s, campaign_id)
        cfg = persist.config_of(row)
        meta = dict(row.config or {})
        trows = persist.target_rows(s, campaign_id)
        drows = persist.decisions(s, campaign_id)
        ids = [d.experiment_id for d in drows]
        outcomes = persist.last_outcomes(s, ids)
        files: dict[str, str | None] = {}
        exp_status = persist.experiment_status(s, ids)
        for i in range(0, len(ids), 500):
            for eid, f in s.execute(
                OutcomeRow.__table__.select()
                .with_only_columns(OutcomeRow.experiment_id, OutcomeRow.xrd_file)
                .where(OutcomeRow.experiment_id.in_(ids[i : i + 500]))
            ):
                files[eid] = f
        sess = persist.sessions(s, campaign_id)
        lab_state = store.state(s)
        lab_cfg_data = dict(lab_state.config or {})
    start = float(meta.get("lab_start_s", 0.0))
    threshold = cfg.success_threshold
    day = lambda t: None if t is None else round((t - start) / 86400.0, 4)  # noqa: E731

    by_target: dict[str, list[ExperimentEntry]] = {}
    explanations: dict[str, dict] = {}
    for d in drows:
        p = d.proposal
        out = outcomes.get(d.experiment_id)
        st = d.status
        if out is not None:
            st = "reported"
        elif st == "proposed":
            st = (
                "in_lab"
                if exp_status.get(d.experiment_id) not in ("failed", "cancelled")
                else exp_status[d.experiment_id]
            )
        masses = {}
        for step in p["recipe"]["steps"]:
            if step.get("kind") == "dose":
                masses[step["precursor"]] = round(float(step["mass_mg"]), 2)
        heats = [step for step in p["recipe"]["steps"] if step.get("kind") == "heat"]
        entry = ExperimentEntry(
            id=d.experiment_id,
            seq=d.seq,
            status=st,
            precursors=list(p["precursors"]),
            masses_mg=masses,
            temperature_c=float(p["temperature_c"]),
            dwell_min=float(p.get("dwell_min") or 0.0),
            regrind_reheat=len(heats) > 1,
            expected_yield=p.get("expected_yield"),
            success_probability=p.get("success_probability"),
            expected_reaction=p.get("expected_reaction"),
            explanation=p.get("explanation", ""),
            proposed_day=day(d.proposed_s),
            reported_day=day(d.reported_s),
            note=d.note,
        )
        if out is not None:
            prec = {_key(x) for x in entry.precursors}
            target = _key(d.target)
            phases: dict[str, float] = {}
            for ph in out.phases:
                phases[ph.formula] = phases.get(ph.formula, 0.0) + round(float(ph.weight_fraction), 4)
            entry.phases = phases
            entry.target_fraction = round(float(out.target_fraction), 4)
            entry.success = out.target_fraction > threshold
            entry.intermediates = {
                k: v
                for k, v in phases.items()
                if _key(k) != target and _key(k) not in prec and v >= MIN_INTERMEDIATE
            }
            entry.unreacted = {k: v for k, v in phases.items() if _key(k) in prec and v >= MIN_INTERMEDIATE}
            entry.outcome_source = out.source
            entry.rwp = out.rwp
            entry.confidence = out.confidence
            entry.xrd_file = files.get(d.experiment_id)
        by_target.setdefault(_key(d.target), []).append(entry)
        explanations[d.experiment_id] = p

    targets: list[TargetReport] = []
    for formula in cfg.targets:
        key = _key(formula)
        trow = trows.get(key)
        data = dict(trow.data or {}) if trow is not None else {}
        exps = by_target.get(key, [])
        measured = [e for e in exps if e.target_fraction is not None]
        best = max(measured, key=lambda e: e.target_fraction or 0.0, default=None)
        success = next((e for e in measured if e.success), None)
        status = trow.status if trow is not None else "pending"
        tr = TargetReport(
            formula=formula,
            status=status,
            reason=str(data.get("reason") or ""),
            e_above_hull=data.get("e_above_hull"),
            screening=list(data.get("screening") or []),
            experiments_used=sum(1 for e in exps if e.status != "cancelled"),
            reported=len(measured),
            best_fraction=best.target_fraction if best else None,
            best_experiment=best.id if best else None,
            experiments=exps,
        )
        if success is not None:
            tr.route = WorkingRoute(
                experiment=success.id,
                precursors=success.precursors,
                masses_mg=success.masses_mg,
                temperature_c=success.temperature_c,
                dwell_min=success.dwell_min,
                regrind_reheat=success.regrind_reheat,
                target_fraction=success.target_fraction or 0.0,
                reaction=success.expected_reaction,
                why=success.explanation,
            )
        routes: dict[tuple[str, ...], Route] = {}
        for e in measured:
            if e.success:
                continue
            k = tuple(sorted(_key(p) for p in e.precursors))
            r = routes.get(k)
            if r is None:
                r = routes[k] = Route(
                    precursors=e.precursors, temperatures_c=[], experiments=[], best_fraction=0.0
                )
            r.temperatures_c.append(e.temperature_c)
            r.experiments.append(e.id)
            r.best_fraction = max(r.best_fraction, e.target_fraction or 0.0)
            for ph, w in e.intermediates.items():
                r.blocking[ph] = max(r.blocking.get(ph, 0.0), w)
            for ph, w in e.unreacted.items():
                r.unreacted[ph] = max(r.unreacted.get(ph, 0.0), w)
        if success is not None:  # a set that also worked is not a failed route
            ok = tuple(sorted(_key(p) for p in success.precursors))
            routes.pop(ok, None)
        for r in routes.values():
            r.blocking = dict(sorted(r.blocking.items(), key=lambda kv: -kv[1]))
        tr.failed_routes = sorted(routes.values(), key=lambda r: -r.best_fraction)
        targets.append(tr)

    # ---- numbers
    all_exps = [e for t in targets for e in t.experiments]
    n_used = sum(1 for e in all_exps if e.status != "cancelled")
    succeeded = sum(1 for t in targets if t.route is not None)
    attempted = sum(1 for t in targets if t.status not in ("rejected", "infeasible"))
    wall = sum(x.wall_s or 0.0 for x in sess)
    ends = [x.lab_end_s for x in sess if x.lab_end_s is not None]
    reported_days = [e.reported_day for e in all_exps if e.reported_day is not None]
    spans = [max(reported_days, default=0.0)] + ([(max(ends) - start) / 86400.0] if ends else [])
    virtual_days = max(spans)
    lab: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    used_ids = [e.id for e in all_exps if e.status != "cancelled"]
    if with_lab and used_ids and lab_cfg_data:
        lab, runs = _lab_numbers(store, lab_cfg_data, used_ids, start)
    summary = Summary(
        targets=len(targets),
        attempted=attempted,
        succeeded=succeeded,
        success_rate=round(succeeded / len(targets), 4) if targets else None,
        success_rate_attempted=round(succeeded / attempted, 4) if attempted else None,
        experiments=n_used,
        reported=sum(1 for e in all_exps if e.status == "reported"),
        failed=sum(1 for e in all_exps if e.status == "failed"),
        cancelled=sum(1 for e in all_exps if e.status == "cancelled"),
        in_lab=sum(1 for e in all_exps if e.status == "in_lab"),
        experiments_per_success=round(n_used / succeeded, 3) if succeeded else None,
        furnace_utilisation=lab.get("furnace_utilisation"),
        furnace_occupancy=lab.get("furnace_occupancy"),
        furnace_runs=int(lab.get("furnace_runs") or 0),
        mean_batch=lab.get("mean_batch"),
        furnaces=int(lab.get("furnaces") or 0),
        virtual_days=round(virtual_days, 4),
        makespan_h=lab.get("makespan_h"),
        wall_s=round(wall, 3),
        sessions=len(sess),
    )
    timeline = sorted(
        (
            {
                "day": e.reported_day,
                "target": t.formula,
                "experiment": e.id,
                "fraction": e.target_fraction,
                "success": bool(e.success),
            }
            for t in targets
            for e in t.experiments
            if e.reported_day is not None
        ),
        key=lambda r: r["day"],
    )
    return CampaignReport(
        campaign_id=campaign_id,
        name=cfg.name,
        status=row.status,
        planner=cfg.planner,
        seed=cfg.seed,
        chemistry=cfg.chemistry,
        xrd=cfg.lab.xrd,
        threshold=threshold,
        budget_per_target=cfg.budget_per_target,
        days_allowed=cfg.days,
        priors=meta.get("priors"),
        summary=summary,
        targets=targets,
        timeline=timeline,
        furnace_runs=runs,
        lab=lab,
    )


def _lab_numbers(store, cfg_data: dict, ids: list[str], start: float) -> tuple[dict, list[dict]]:
    from sqlalchemy import select

    from labos.lab.config import LabConfig
    from labos.lab.metrics import lab_metrics
    from labos.lab.records import FurnaceRunRow, TaskRow

    cfg = LabConfig.model_validate(cfg_data)
    metrics = lab_metrics(store, cfg, ids)
    with store.factory() as s:
        run_ids = set()
        for i in range(0, len(ids), 500):
            run_ids |= {
                r
                for (r,) in s.execute(
                    select(TaskRow.run_id).where(
                        TaskRow.experiment_id.in_(ids[i : i + 500]), TaskRow.kind == "heat"
                    )
                )
                if r
            }
        runs = [
            {
                "run": r.id,
                "furnace": r.furnace,
                "start_day": round((r.heat_start_s - start) / 86400, 5),
                "end_day": round(((r.heat_end_s or r.heat_start_s + r.duration_min * 60) - start) / 86400, 5),
                "crucibles": len(r.members),
                "max_c": max(seg["target_c"] for seg in r.profile["segments"]),
                "status": r.status,
            }
            for r in s.scalars(select(FurnaceRunRow).where(FurnaceRunRow.id.in_(list(run_ids))))
            if r.heat_start_s is not None
        ]
    runs.sort(key=lambda r: (r["furnace"], r["start_day"]))
    return metrics.model_dump(), runs


# ---------------------------------------------------------------------------------------------- HTML


def _figures(rep: CampaignReport) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go

    figs = []
    tl = rep.timeline
    if tl:
        made, days, ys = set(), [], []
        n = 0
        exp_days, exp_counts = [], []
        for i, r in enumerate(tl, start=1):
            exp_days.append(r["day"])
            exp_counts.append(i)
            if r["success"] and r["target"] not in made:
                made.add(r["target"])
                n += 1
                days.append(r["day"])
                ys.append(n)
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(x=[0, *days], y=[0, *ys], mode="lines+markers", line_shape="hv", name="targets made")
        )
        fig.add_trace(
            go.Scatter(
                x=exp_days,
                y=exp_counts,
                mode="lines",
                name="experiments analysed",
                yaxis="y2",
                line={"dash": "dot"},
            )
        )
        fig.update_layout(
            title="Progress over virtual time",
            xaxis_title="day",
            yaxis_title="targets made",
            yaxis2={"title": "experiments", "overlaying": "y", "side": "right"},
            height=360,
            margin={"t": 50, "b": 40},
        )
        figs.append(("progress", fig))
    names = [t.formula for t in rep.targets]
    if any(t.experiments for t in rep.targets):
        xs, ys, cs, texts = [], [], [], []
        for t in rep.targets:
            k = 0
            for e in t.experiments:
                if e.target_fraction is None:
                    continue
                k += 1
                xs.append(k)
                ys.append(t.formula)
                cs.append(e.target_fraction)
                texts.append(
                    f"{e.id}<br>{' + '.join(e.precursors)} at {e.temperature_c:.0f} °C"
                    f"<br>target {e.target_fraction:.0%}"
                )
        fig = go.Figure(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                text=texts,
                hoverinfo="text",
                marker={
                    "color": cs,
                    "cmin": 0,
                    "cmax": 1,
                    "colorscale": "Viridis",
                    "size": 12,
                    "colorbar": {"title": "target wt"},
                    "line": {"width": 1, "color": "#333"},
                },
            )
        )
        fig.update_layout(
            title="Target fraction of each experiment (XRD analysis)",
            xaxis_title="experiment no.",
            yaxis={"categoryorder": "array", "categoryarray": names[::-1]},
            height=max(300, 22 * len(names) + 120),
            margin={"t": 50, "b": 40},
        )
        figs.append(("yields", fig))
    if rep.furnace_runs:
        fig = go.Figure()
        for r in rep.furnace_runs:
            fig.add_trace(
                go.Bar(
                    x=[r["end_day"] - r["start_day"]],
                    y=[r["furnace"]],
                    base=[r["start_day"]],
                    orientation="h",
                    marker={"color": r["max_c"], "colorscale": "YlOrRd", "cmin": 300, "cmax": 1200},
                    hovertext=f"{r['run']}: {r['crucibles']} crucible(s), {r['max_c']:.0f} °C",
                    hoverinfo="text",
                    showlegend=False,
                )
            )
        fig.update_layout(
            title="Furnace runs",
            xaxis_title="day",
            barmode="overlay",
            height=120 + 30 * len({r["furnace"] for r in rep.furnace_runs}),
            margin={"t": 50, "b": 40},
        )
        figs.append(("furnaces", fig))
    return figs


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0%}"


def _e(v: Any) -> str:
    return html.escape(str(v))


def render_html(rep: CampaignReport) -> str:
    """One self-contained page (plotly's JavaScript inlined, no network needed to open it)."""
    from plotly.offline import get_plotlyjs

    s = rep.summary
    figs = "".join(
        f'<div class="fig">{fig.to_html(full_html=False, include_plotlyjs=False, div_id=name)}</div>'
        for name, fig in _figures(rep)
    )
    rows = []
    for t in rep.targets:
        route = ""
        if t.route:
            r = t.route
            route = (
                f"<b>{_e(' + '.join(r.precursors))}</b> at {r.temperature_c:.0f} °C, {r.dwell_min / 60:.1f} h"
                f"{' + regrind/reheat' if r.regrind_reheat else ''} → {_pct(r.target_fraction)}"
                f"<details><summary>why the planner chose it</summary><p>{_e(r.why)}</p></details>"
            )
        failed = "".join(
            f"<li>{_e(' + '.join(f.precursors))} ({', '.join(f'{x:.0f}' for x in f.temperatures_c)} °C): best "
            f"{_pct(f.best_fraction)}; blocked by "
            f"{_e(', '.join(f'{k} {v:.0%}' for k, v in f.blocking.items()) or 'no new phase (no reaction)')}"
            f"{'; unreacted ' + _e(', '.join(f'{k} {v:.0%}' for k, v in f.unreacted.items())) if f.unreacted else ''}"
            "</li>"
            for f in t.failed_routes
        )
        rows.append(
            f"<tr class='{_e(t.status)}'><td><b>{_e(t.formula)}</b></td><td>{_e(t.status)}</td>"
            f"<td>{t.experiments_used}</td><td>{_pct(t.best_fraction)}</td><td>{route}</td>"
            f"<td>{'<ul>' + failed + '</ul>' if failed else ''}<small>{_e(t.reason)}</small></td></tr>"
        )
    exp_rows = "".join(
        f"<tr><td>{_e(e.id)}</td><td>{_e(t.formula)}</td><td>{_e(e.status)}</td>"
        f"<td>{_e(' + '.join(f'{p} {e.masses_mg.get(p, 0):.0f} mg' for p in e.precursors))}</td>"
        f"<td>{e.temperature_c:.0f} °C / {e.dwell_min / 60:.1f} h</td><td>{_pct(e.target_fraction)}</td>"
        f"<td>{_e(', '.join(f'{k} {v:.0%}' for k, v in sorted(e.phases.items(), key=lambda kv: -kv[1])))}</td>"
        f"<td>{'' if e.reported_day is None else f'{e.reported_day:.2f}'}</td></tr>"
        for t in rep.targets
        for e in t.experiments
    )

    def num(v, fmt="{:.2f}"):
        return "–" if v is None else fmt.format(v)

    cards = [
        ("targets made", f"{s.succeeded} / {s.targets}"),
        ("success rate", _pct(s.success_rate)),
        ("experiments", str(s.experiments)),
        ("experiments per success", num(s.experiments_per_success, "{:.1f}")),
        ("furnace utilisation", _pct(s.furnace_utilisation)),
        ("virtual time", f"{s.virtual_days:.1f} d"),
        ("wall time", f"{s.wall_s:.0f} s"),
    ]
    card_html = "".join(
        f"<div class='card'><div class='v'>{_e(v)}</div><div class='k'>{_e(k)}</div></div>" for k, v in cards
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Campaign {_e(rep.name)} ({_e(rep.campaign_id)})</title>
<script type="text/javascript">{get_plotlyjs()}</script>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222}} h1{{margin-bottom:4px}}
.meta{{color:#555}} .cards{{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}}
.card{{border:1px solid #ddd;border-radius:8px;padding:10px 16px;min-width:120px}}
.card .v{{font-size:1.4em;font-weight:600}} .card .k{{color:#666;font-size:.85em}}
table{{border-collapse:collapse;width:100%;margin:12px 0}} td,th{{border-bottom:1px solid #eee;padding:6px;
vertical-align:top;text-align:left;font-size:.9em}} tr.succeeded td:first-child{{border-left:4px solid #2a9d3f}}
tr.exhausted td:first-child,tr.rejected td:first-child,tr.infeasible td:first-child{{border-left:4px solid #c0392b}}
ul{{margin:0;padding-left:18px}} details p{{max-width:70ch}} .fig{{margin:12px 0}}
</style></head><body>
<h1>Campaign {_e(rep.name)}</h1>
<div class="meta">{_e(rep.campaign_id)} · status {_e(rep.status)} · planner {_e(rep.planner)} · seed {rep.seed} ·
chemistry {_e(rep.chemistry)} · XRD {_e(rep.xrd)} · success = target &gt; {rep.threshold:.0%} ·
budget {rep.budget_per_target}/target · {rep.days_allowed:g} days allowed · literature priors: {_e(rep.priors or "–")}</div>
<div class="cards">{card_html}</div>
{figs}
<h2>Targets</h2>
<table><tr><th>target</th><th>status</th><th>exps</th><th>best</th><th>route that worked</th>
<th>failed routes (blocking intermediates)</th></tr>{"".join(rows)}</table>
<h2>Experiments</h2>
<table><tr><th>id</th><th>target</th><th>status</th><th>doses</th><th>heat</th><th>target wt</th><th>phases (XRD)</th>
<th>day</th></tr>{exp_rows}</table>
<script type="application/json" id="report-data">{html.escape(json.dumps(rep.summary.model_dump()))}</script>
</body></html>
"""
