"""Data behind the experiment plots: task timeline, furnace profile against setpoint, XRD fit.

Each function returns plain arrays (schemas in ``labos.web.schemas``); the pages draw them with the
locally served plotly.js and ``labos export`` draws the same data to files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.db.records import EventRow, ExperimentRow, OutcomeRow
from labos.domain import Outcome
from labos.errors import NotImplementedYet
from labos.models.xrd.fitfile import load_fit
from labos.web import queries
from labos.web.errors import NotFound
from labos.web.schemas import FurnaceProfile, PhaseCurve, Series, TimelineItem, XRDPlot

ROOM_C = 25.0
FURNACE_READING_KINDS = ("furnace.reading", "furnace.temperature")
_START = ("started", "start", "begin", "running")
_END = {
    "finished": "done",
    "completed": "done",
    "done": "done",
    "succeeded": "done",
    "failed": "failed",
    "error": "failed",
}


# ------------------------------------------------------------------------------------- timeline


def _task_key(ev: EventRow) -> str | None:
    data = ev.data or {}
    for key in ("task_id", "task", "step"):
        if data.get(key) is not None:
            return str(data[key])
    return None


def _lab_tasks(session: Session, experiment_id: str) -> list[TimelineItem]:
    """The experiment's task graph as the lab OS keeps it (lab clock start/end, device booked)."""
    if not queries.lab_ready(session):
        return []
    from labos.lab.records import FurnaceRunRow, ResourceRow, TaskRow

    tasks = list(session.scalars(select(TaskRow).where(TaskRow.experiment_id == experiment_id)))
    if not tasks:
        return []
    devices = set(session.scalars(select(ResourceRow.name).where(ResourceRow.kind == "device")))
    items = []
    for t in tasks:
        device = next((h for h in (t.holds or []) if h in devices), None)
        if device is None and t.run_id:
            run = session.get(FurnaceRunRow, t.run_id)
            device = run.furnace if run else None
        detail = {"attempts": t.attempts, "worker": t.worker, "run": t.run_id, "error": t.error}
        items.append(
            TimelineItem(
                task=t.node,
                kind=t.kind,
                status=t.status,
                start_min=t.started_s / 60 if t.started_s is not None else None,
                end_min=t.finished_s / 60 if t.finished_s is not None else None,
                device=device,
                detail={k: v for k, v in detail.items() if v not in (None, 0, "")},
            )
        )
    order = {"done": 0, "failed": 0, "cancelled": 0, "running": 1, "resume": 1, "waiting_operator": 1}
    items.sort(key=lambda i: (i.start_min is None, i.start_min or 0.0, order.get(i.status, 2), i.task))
    return items


def timeline(session: Session, experiment_id: str) -> list[TimelineItem]:
    """Tasks as intervals (the lab OS's task rows, else '<x>.started'/'<x>.finished' event pairs) and
    other events (sample moves, outcomes, interventions) as points, in time order."""
    items = _lab_tasks(session, experiment_id)
    have_tasks = bool(items)
    open_: dict[str, TimelineItem] = {}
    for ev in queries.experiment_events(session, experiment_id):
        if ev.kind in FURNACE_READING_KINDS:
            continue
        stem, _, verb = ev.kind.rpartition(".")
        data = ev.data or {}
        lab_min = float(data["lab_t"]) / 60 if isinstance(data.get("lab_t"), int | float) else None
        if stem == "task" and have_tasks:
            continue  # the task rows already say this
        key = _task_key(ev) or (ev.subject if stem == "task" else None)
        name = str(data.get("task") or data.get("node") or data.get("name") or key or stem or ev.kind)
        device = data.get("device") or data.get("resource") or data.get("furnace")
        if key is not None and verb in _START:
            item = TimelineItem(
                task=name,
                kind=data.get("task_kind") or data.get("kind"),
                status="running",
                start=ev.at,
                start_min=lab_min,
                device=device,
                detail=data,
            )
            open_[key] = item
            items.append(item)
        elif key is not None and verb in _END and key in open_:
            item = open_.pop(key)
            item.end, item.end_min, item.status = ev.at, lab_min, _END[verb]
            item.detail = {**item.detail, **data}
        else:
            items.append(
                TimelineItem(
                    task=ev.kind, status="event", start=ev.at, start_min=lab_min, device=device, detail=data
                )
            )
    if have_tasks:
        items.sort(key=lambda i: (i.start_min is None, i.start_min or 0.0))
    return items


# -------------------------------------------------------------------------------------- furnace


def setpoint_series(heat_steps: list[dict[str, Any]], start_c: float = ROOM_C) -> Series:
    """The programmed temperature against time: ramps, dwells, then cooling back to room temperature.
    Several heat steps (regrind and reheat) follow each other."""
    t, temp = 0.0, start_c
    ts, temps = [0.0], [start_c]
    for step in heat_steps:
        for seg in step.get("segments", []):
            target, ramp = float(seg["target_c"]), float(seg["ramp_c_per_min"])
            t += abs(target - temp) / ramp
            ts.append(t)
            temps.append(target)
            if float(seg.get("dwell_min", 0)) > 0:
                t += float(seg["dwell_min"])
                ts.append(t)
                temps.append(target)
            temp = target
        cool = float(step.get("cool_c_per_min", 5.0))
        t += max(temp - start_c, 0.0) / cool
        ts.append(t)
        temps.append(start_c)
        temp = start_c
    return Series(t_min=[round(x, 3) for x in ts], temperature_c=temps)


def _readings(session: Session, experiment_id: str, runs: list[dict[str, Any]]) -> list[tuple[float, float]]:
    """(minutes since the programme started, °C) from furnace reading events of this experiment or of
    its furnace runs, and from readings a run kept in its data."""
    run_ids = [r["run"] for r in runs]
    start_s = next((r["heat_start_s"] for r in runs if r.get("heat_start_s") is not None), None)
    stmt = select(EventRow).where(EventRow.kind.in_(FURNACE_READING_KINDS))
    conds = [EventRow.data["experiment_id"].as_string() == experiment_id, EventRow.subject == experiment_id]
    if run_ids:
        conds += [EventRow.subject.in_(run_ids), EventRow.data["run"].as_string().in_(run_ids)]
    from sqlalchemy import or_

    events = list(session.scalars(stmt.where(or_(*conds)).order_by(EventRow.id)))
    points: list[tuple[float, float]] = []
    t0 = events[0].at if events else None
    for e in events:
        d = e.data or {}
        if d.get("temperature_c") is None:
            continue
        if d.get("t_min") is not None:
            t = float(d["t_min"])
        elif d.get("lab_t") is not None and start_s is not None:
            t = (float(d["lab_t"]) - start_s) / 60
        else:
            t = (e.at - t0).total_seconds() / 60
        points.append((t, float(d["temperature_c"])))
    if not points and runs:
        from labos.lab.records import FurnaceRunRow

        for r in runs:
            run = session.get(FurnaceRunRow, r["run"])
            for pair in (run.data or {}).get("readings", []) if run else []:
                t_s, temp = float(pair[0]), float(pair[1])
                points.append(((t_s - (run.heat_start_s or 0.0)) / 60, temp))
    points.sort()
    return points


def furnace_profile(session: Session, experiment_id: str) -> FurnaceProfile:
    row = session.get(ExperimentRow, experiment_id)
    if row is None:
        raise NotFound(f"no experiment {experiment_id!r}")
    heats = [s for s in row.recipe.get("steps", []) if isinstance(s, dict) and s.get("kind") == "heat"]
    setpoint = setpoint_series(heats) if heats else Series(t_min=[], temperature_c=[])
    runs = queries._heat_runs(session, experiment_id)
    points = _readings(session, experiment_id, runs)
    measured = Series(t_min=[p[0] for p in points], temperature_c=[p[1] for p in points]) if points else None
    furnace = runs[0]["furnace"] if runs else None
    if furnace is None and points:
        last = session.scalar(
            select(EventRow)
            .where(EventRow.kind.in_(FURNACE_READING_KINDS), EventRow.subject == experiment_id)
            .limit(1)
        )
        furnace = (last.data or {}).get("furnace") if last else None
    return FurnaceProfile(
        setpoint=setpoint,
        measured=measured,
        furnace=furnace,
        atmosphere=str(heats[0].get("atmosphere")) if heats else None,
    )


# ------------------------------------------------------------------------------------------ XRD


def _outcome_row(session: Session, experiment_id: str, outcome_id: int | None) -> OutcomeRow:
    if session.get(ExperimentRow, experiment_id) is None:
        raise NotFound(f"no experiment {experiment_id!r}")
    stmt = select(OutcomeRow).where(OutcomeRow.experiment_id == experiment_id)
    if outcome_id is not None:
        stmt = stmt.where(OutcomeRow.id == outcome_id)
    rows = list(session.scalars(stmt.order_by(OutcomeRow.id)))
    with_file = [r for r in rows if r.xrd_file]
    if not with_file:
        raise NotFound(f"experiment {experiment_id!r} has no XRD measurement yet")
    with_file.sort(key=lambda r: (queries.SOURCE_PREFERENCE.get(r.source, 9), -r.id))
    return with_file[0]


def xrd_plot(session: Session, experiment_id: str, outcome_id: int | None = None) -> XRDPlot:
    """The fit saved by the analysis (its own, possibly binned, grid) or else the raw pattern alone."""
    row = _outcome_row(session, experiment_id, outcome_id)
    outcome = Outcome.model_validate(row.data)
    path = Path(row.xrd_file or "")
    fit = load_fit(path) if row.xrd_file else None
    if fit is None and not path.is_file():
        raise NotFound(f"XRD file {path} of experiment {experiment_id!r} is not on this machine")
    fit_phases = {p.get("name"): p for p in (fit or {}).get("phases", [])}
    phases = []
    for p in outcome.phases:
        extra = fit_phases.pop(p.phase_id, None) or fit_phases.pop(p.formula, None) or {}
        phases.append(
            PhaseCurve(
                name=p.phase_id,
                formula=p.formula,
                weight_fraction=p.weight_fraction,
                curve=extra.get("curve"),
                ticks=extra.get("ticks"),
            )
        )
    for name, extra in fit_phases.items():  # fitted but below the reporting limit of the outcome
        phases.append(
            PhaseCurve(
                name=name,
                formula=extra.get("formula"),
                weight_fraction=extra.get("weight_fraction"),
                curve=extra.get("curve"),
                ticks=extra.get("ticks"),
            )
        )
    if fit is not None:
        two_theta, observed = fit["x"], fit["observed"] or []
        calculated, background = fit.get("calculated"), fit.get("background")
        source = "analysis fit"
    else:
        try:
            from labos.models.xrd.io import read_pattern
        except ImportError:  # pragma: no cover - the xrd area ships it
            raise NotImplementedYet(
                "XRD plot not implemented: labos.models.xrd.io.read_pattern is missing"
            ) from None
        from labos.models.xrd.io import PatternFormatError

        try:
            pattern = read_pattern(path)
        except PatternFormatError as exc:
            raise NotFound(
                f"no diffraction pattern to draw: {path.name} is not a pattern file ({str(exc).split(': ')[-1]})"
            ) from None
        two_theta, observed, calculated, background = pattern.two_theta, pattern.counts, None, None
        source = "measured pattern (no fit saved)"
    difference = (
        [o - c for o, c in zip(observed, calculated, strict=True)]
        if calculated is not None and len(observed) == len(calculated)
        else None
    )
    return XRDPlot(
        experiment_id=experiment_id,
        xrd_file=str(path),
        two_theta=two_theta,
        observed=observed,
        calculated=calculated,
        background=background,
        difference=difference,
        phases=phases,
        rwp=outcome.rwp,
        target_formula=outcome.target_formula,
        target_fraction=outcome.target_fraction,
        success=outcome.success,
        source=source,
    )
