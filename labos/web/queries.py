"""Read side of the console over the core tables: summaries, details, lineage, timelines, plots.

The web API and the CLI both call these functions, so a number means the same thing everywhere.
Rows are read as stored (recipes as JSON dicts) so that one odd row cannot break a whole page.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from labos.db.records import (
    CampaignRow,
    EventRow,
    ExperimentRow,
    OutcomeRow,
    SampleEventRow,
    SampleRow,
    TargetRow,
)
from labos.domain import Outcome
from labos.web.errors import NotFound
from labos.web.schemas import (
    CampaignDetail,
    CampaignSummary,
    EventOut,
    ExperimentDetail,
    ExperimentSummary,
    Lineage,
    OutcomeOut,
    SampleDetail,
    SampleEventOut,
    SampleSummary,
    TargetOut,
)

# Which outcome speaks for an experiment: the measured one first; the simulator's truth last.
SOURCE_PREFERENCE = {"xrd": 0, "operator": 1, "replay": 2, "simulator": 3}
RUNNING_STATES = {"running", "queued", "waiting_operator"}


@lru_cache(maxsize=4096)
def reduced(formula: str) -> str:
    """Reduced formula for matching targets to experiments; the raw text when it cannot be parsed."""
    from labos.domain import parse_formula

    try:
        return parse_formula(formula)
    except Exception:
        return formula.strip()


# --------------------------------------------------------------------------------------- helpers


def lab_ready(session: Session) -> bool:
    """The lab OS is installed and its tables are in this database (its records enrich the views)."""
    from labos.web.labgate import lab_available

    return lab_available(session.get_bind().engine)


def _recipe_facts(recipe: dict[str, Any]) -> tuple[list[str], float | None, float | None]:
    steps = recipe.get("steps", []) if isinstance(recipe, dict) else []
    precursors = [s.get("precursor", "?") for s in steps if isinstance(s, dict) and s.get("kind") == "dose"]
    temps, dwell = [], 0.0
    for s in steps:
        if isinstance(s, dict) and s.get("kind") == "heat":
            for seg in s.get("segments", []):
                temps.append(float(seg.get("target_c", 0)))
                dwell += float(seg.get("dwell_min", 0))
    return precursors, (max(temps) if temps else None), (dwell if temps else None)


def preferred_outcomes(session: Session, experiment_ids: Iterable[str]) -> dict[str, OutcomeRow]:
    """The outcome that speaks for each experiment (measured before simulated, newest within a source)."""
    ids = list(experiment_ids)
    best: dict[str, OutcomeRow] = {}
    for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
        rows = session.scalars(
            select(OutcomeRow).where(OutcomeRow.experiment_id.in_(chunk)).order_by(OutcomeRow.id)
        )
        for row in rows:
            cur = best.get(row.experiment_id)
            rank = SOURCE_PREFERENCE.get(row.source, 9)
            if cur is None or rank <= SOURCE_PREFERENCE.get(cur.source, 9):
                best[row.experiment_id] = row
    return best


def _exp_summary(row: ExperimentRow, outcome: OutcomeRow | None) -> ExperimentSummary:
    precursors, tmax, dwell = _recipe_facts(row.recipe)
    return ExperimentSummary(
        id=row.id,
        campaign_id=row.campaign_id,
        target_formula=row.target_formula,
        status=row.status,
        planner=row.planner,
        created_at=row.created_at,
        updated_at=row.updated_at,
        precursors=precursors,
        max_temperature_c=tmax,
        dwell_min=dwell,
        target_fraction=outcome.target_fraction if outcome else None,
        success=outcome.success if outcome else None,
    )


def outcome_out(row: OutcomeRow) -> OutcomeOut:
    return OutcomeOut(
        id=row.id,
        source=row.source,
        created_at=row.created_at,
        xrd_file=row.xrd_file,
        success=row.success,
        target_fraction=row.target_fraction,
        outcome=Outcome.model_validate(row.data),
    )


def _get(session: Session, model, key: str, what: str):
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"no {what} {key!r}")
    return row


# -------------------------------------------------------------------------------------- campaigns


def _summaries(
    session: Session, campaigns: list[CampaignRow]
) -> tuple[list[CampaignSummary], dict[str, list[ExperimentSummary]]]:
    ids = [c.id for c in campaigns]
    exps = (
        list(
            session.scalars(
                select(ExperimentRow)
                .where(ExperimentRow.campaign_id.in_(ids))
                .order_by(ExperimentRow.created_at)
            )
        )
        if ids
        else []
    )
    outcomes = preferred_outcomes(session, (e.id for e in exps))
    per: dict[str, list[ExperimentSummary]] = defaultdict(list)
    for e in exps:
        per[e.campaign_id or ""].append(_exp_summary(e, outcomes.get(e.id)))
    targets: dict[str, list[TargetRow]] = defaultdict(list)
    if ids:
        for t in session.scalars(
            select(TargetRow).where(TargetRow.campaign_id.in_(ids)).order_by(TargetRow.id)
        ):
            targets[t.campaign_id or ""].append(t)
    out = []
    for c in campaigns:
        es = per[c.id]
        succeeded = {reduced(e.target_formula) for e in es if e.success}
        succeeded |= {reduced(t.formula) for t in targets[c.id] if t.status in ("succeeded", "success")}
        n_targets = len(targets[c.id]) or len({reduced(e.target_formula) for e in es})
        out.append(
            CampaignSummary(
                id=c.id,
                name=c.name,
                status=c.status,
                created_at=c.created_at,
                updated_at=c.updated_at,
                n_targets=n_targets,
                n_succeeded=len(succeeded),
                n_experiments=len(es),
                n_running=sum(e.status in RUNNING_STATES for e in es),
                n_completed=sum(e.status == "completed" for e in es),
                n_failed=sum(e.status == "failed" for e in es),
                success_rate=(len(succeeded) / n_targets) if n_targets else None,
                experiments_per_success=(len(es) / len(succeeded)) if succeeded else None,
            )
        )
    return out, per


def list_campaigns(session: Session) -> list[CampaignSummary]:
    rows = list(session.scalars(select(CampaignRow).order_by(CampaignRow.created_at.desc())))
    return _summaries(session, rows)[0]


def campaign_detail(session: Session, campaign_id: str) -> CampaignDetail:
    row = _get(session, CampaignRow, campaign_id, "campaign")
    [summary], per = _summaries(session, [row])
    exps = per[row.id]
    by_target: dict[str, list[ExperimentSummary]] = defaultdict(list)
    for e in exps:
        by_target[reduced(e.target_formula)].append(e)
    targets = []
    trows = list(
        session.scalars(select(TargetRow).where(TargetRow.campaign_id == row.id).order_by(TargetRow.id))
    )
    if not trows:  # campaigns written without target rows still show their targets
        trows = [
            TargetRow(id=-(i + 1), formula=f, status="unknown", source="experiments")
            for i, f in enumerate(dict.fromkeys(e.target_formula for e in exps))
        ]
    for t in trows:
        mine = by_target.get(reduced(t.formula), [])
        measured = [e for e in mine if e.target_fraction is not None]
        best = max(measured, key=lambda e: e.target_fraction or 0.0, default=None)
        targets.append(
            TargetOut(
                id=t.id,
                formula=t.formula,
                status=t.status,
                source=t.source,
                source_id=t.source_id,
                e_above_hull=t.e_above_hull,
                n_experiments=len(mine),
                best_fraction=best.target_fraction if best else None,
                best_experiment_id=best.id if best else None,
                succeeded=any(e.success for e in mine) or t.status in ("succeeded", "success"),
            )
        )
    return CampaignDetail(
        **summary.model_dump(), config=row.config or {}, targets=targets, experiments=list(reversed(exps))
    )


# ------------------------------------------------------------------------------------ experiments


def list_experiments(
    session: Session,
    *,
    campaign_id: str | None = None,
    status: str | None = None,
    target: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[ExperimentSummary]]:
    stmt = select(ExperimentRow)
    if campaign_id:
        stmt = stmt.where(ExperimentRow.campaign_id == campaign_id)
    if status:
        stmt = stmt.where(ExperimentRow.status == status)
    if target:
        stmt = stmt.where(ExperimentRow.target_formula == target)
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = list(
        session.scalars(
            stmt.order_by(ExperimentRow.created_at.desc(), ExperimentRow.id).limit(limit).offset(offset)
        )
    )
    outcomes = preferred_outcomes(session, (r.id for r in rows))
    return total, [_exp_summary(r, outcomes.get(r.id)) for r in rows]


def experiment_detail(session: Session, experiment_id: str) -> ExperimentDetail:
    row = _get(session, ExperimentRow, experiment_id, "experiment")
    orows = list(
        session.scalars(select(OutcomeRow).where(OutcomeRow.experiment_id == row.id).order_by(OutcomeRow.id))
    )
    best = preferred_outcomes(session, [row.id]).get(row.id)
    summary = _exp_summary(row, best)
    return ExperimentDetail(
        **summary.model_dump(),
        target=row.target,
        recipe=row.recipe,
        explanation=row.explanation,
        samples=[_sample_summary(s, row.target_formula) for s in row.samples],
        outcomes=[outcome_out(o) for o in orows],
    )


def experiment_events(session: Session, experiment_id: str, limit: int = 2000) -> list[EventRow]:
    """Events about an experiment: its own, its samples', and any whose data names it."""
    row = _get(session, ExperimentRow, experiment_id, "experiment")
    subjects = [row.id, *(s.id for s in row.samples)]
    stmt = (
        select(EventRow)
        .where(
            or_(
                EventRow.subject.in_(subjects),
                EventRow.data["experiment_id"].as_string() == row.id,
                EventRow.data["experiment"].as_string() == row.id,
            )
        )
        .order_by(EventRow.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


# ---------------------------------------------------------------------------------------- samples


def _sample_summary(row: SampleRow, target_formula: str | None = None) -> SampleSummary:
    hist = row.history
    return SampleSummary(
        id=row.id,
        experiment_id=row.experiment_id,
        target_formula=target_formula or (row.experiment.target_formula if row.experiment else None),
        container=row.container,
        position=row.position,
        created_at=row.created_at,
        last_moved_at=hist[-1].at if hist else None,
        n_moves=len(hist),
    )


def list_samples(
    session: Session,
    *,
    position: str | None = None,
    experiment_id: str | None = None,
    campaign_id: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[SampleSummary]]:
    stmt = select(SampleRow)
    if position:
        stmt = stmt.where(SampleRow.position.startswith(position, autoescape=True))
    if experiment_id:
        stmt = stmt.where(SampleRow.experiment_id == experiment_id)
    if campaign_id:
        stmt = stmt.join(ExperimentRow, SampleRow.experiment_id == ExperimentRow.id).where(
            ExperimentRow.campaign_id == campaign_id
        )
    total = int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    rows = list(
        session.scalars(stmt.order_by(SampleRow.created_at.desc(), SampleRow.id).limit(limit).offset(offset))
    )
    ids = [r.id for r in rows]
    stats: dict[str, tuple[int, datetime | None]] = {}
    if ids:
        q = (
            select(SampleEventRow.sample_id, func.count(SampleEventRow.id), func.max(SampleEventRow.at))
            .where(SampleEventRow.sample_id.in_(ids))
            .group_by(SampleEventRow.sample_id)
        )
        stats = {sid: (n, at) for sid, n, at in session.execute(q)}
    exp_ids = {r.experiment_id for r in rows if r.experiment_id}
    targets: dict[str, str] = {}
    if exp_ids:
        rows_ = session.execute(
            select(ExperimentRow.id, ExperimentRow.target_formula).where(ExperimentRow.id.in_(exp_ids))
        )
        targets = {eid: formula for eid, formula in rows_}
    items = [
        SampleSummary(
            id=r.id,
            experiment_id=r.experiment_id,
            target_formula=targets.get(r.experiment_id or ""),
            container=r.container,
            position=r.position,
            created_at=r.created_at,
            last_moved_at=stats.get(r.id, (0, None))[1],
            n_moves=stats.get(r.id, (0, None))[0],
        )
        for r in rows
    ]
    return total, items


def _lab_records(session: Session, sample_id: str) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Provenance the lab OS keeps for a sample (doses with lots, stages, XRD files), when it is there."""
    if not lab_ready(session):
        return [], [], []
    from labos.lab.samples import sample_view

    view = sample_view(session, sample_id)
    return [p.model_dump() for p in view.provenance], list(view.parents), list(view.children)


def _heat_runs(session: Session, experiment_id: str) -> list[dict[str, Any]]:
    """Furnace runs the experiment's heat tasks joined (furnace, run id, lab-clock start/end)."""
    if not lab_ready(session):
        return []
    from labos.lab.records import FurnaceRunRow, TaskRow

    out = []
    tasks = session.scalars(
        select(TaskRow)
        .where(TaskRow.experiment_id == experiment_id, TaskRow.run_id.is_not(None))
        .order_by(TaskRow.id)
    )
    for t in tasks:
        run = session.get(FurnaceRunRow, t.run_id)
        if run is not None and t.kind == "heat":
            out.append(
                {
                    "run": run.id,
                    "furnace": run.furnace,
                    "status": run.status,
                    "heat_start_s": run.heat_start_s,
                    "heat_end_s": run.heat_end_s,
                    "members": len(run.members or []),
                }
            )
    return out


def sample_detail(session: Session, sample_id: str) -> SampleDetail:
    row = _get(session, SampleRow, sample_id, "sample")
    exp = row.experiment
    summary = _sample_summary(row)
    provenance, parents, children = _lab_records(session, sample_id)
    dosed = {}
    for p in provenance:
        if p["kind"] == "dose":
            d = p["data"]
            key = reduced(str(d.get("precursor", "")))
            prev = dosed.get(key, {"weighed_mg": 0.0, "lots": []})
            prev["weighed_mg"] += float(d.get("dosed_mg") or 0.0)
            prev["lots"] += list(d.get("lots") or [])
            dosed[key] = prev
    doses: list[dict[str, Any]] = []
    heat: list[dict[str, Any]] = []
    outcomes: list[OutcomeOut] = []
    exp_summary = None
    related: list[str] = []
    xrd_files = [str(p["data"]["file"]) for p in provenance if p["kind"] == "xrd" and p["data"].get("file")]
    if exp is not None:
        runs = _heat_runs(session, exp.id)
        for s in exp.recipe.get("steps", []):
            if s.get("kind") == "dose":
                got = dosed.get(reduced(str(s.get("precursor", ""))), {})
                doses.append(
                    {
                        "precursor": s.get("precursor"),
                        "planned_mg": s.get("mass_mg"),
                        "weighed_mg": round(got["weighed_mg"], 4) if got else None,
                        "lots": got.get("lots") or None,
                    }
                )
            elif s.get("kind") == "heat":
                run = runs[len(heat)] if len(heat) < len(runs) else {}
                heat.append({**s, "run": run.get("run"), "furnace": run.get("furnace")})
        orows = list(
            session.scalars(
                select(OutcomeRow).where(OutcomeRow.experiment_id == exp.id).order_by(OutcomeRow.id)
            )
        )
        outcomes = [outcome_out(o) for o in orows]
        exp_summary = _exp_summary(exp, preferred_outcomes(session, [exp.id]).get(exp.id))
        related = [s.id for s in exp.samples if s.id != row.id]
        xrd_files += [o.xrd_file for o in outcomes if o.xrd_file and o.xrd_file not in xrd_files]
    return SampleDetail(
        **summary.model_dump(),
        data=row.data or {},
        history=[SampleEventOut.model_validate(h) for h in row.history],
        lineage=Lineage(
            experiment=exp_summary,
            explanation=exp.explanation if exp else None,
            doses=doses,
            heat=heat,
            xrd_files=xrd_files,
            outcomes=outcomes,
            related_samples=related,
            provenance=provenance,
            parents=parents,
            children=children,
        ),
    )


# ----------------------------------------------------------------------------------------- events


def latest_event_id(session: Session) -> int:
    return int(session.scalar(select(func.max(EventRow.id))) or 0)


def list_events(
    session: Session,
    *,
    after: int | None = None,
    before: int | None = None,
    kind: str | None = None,
    subject: str | None = None,
    limit: int = 100,
) -> list[EventOut]:
    """Events in id order after ``after``; newest first when only ``before``/nothing is given."""
    stmt = select(EventRow)
    if kind:
        stmt = stmt.where(EventRow.kind.startswith(kind, autoescape=True))
    if subject:
        stmt = stmt.where(EventRow.subject == subject)
    if after is not None:
        stmt = stmt.where(EventRow.id > after).order_by(EventRow.id)
    else:
        if before is not None:
            stmt = stmt.where(EventRow.id < before)
        stmt = stmt.order_by(EventRow.id.desc())
    return [EventOut.model_validate(r) for r in session.scalars(stmt.limit(limit))]


def list_campaigns_by_id(session: Session, campaign_id: str) -> CampaignSummary:
    row = _get(session, CampaignRow, campaign_id, "campaign")
    return _summaries(session, [row])[0][0]
