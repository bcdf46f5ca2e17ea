"""Campaigns, experiments, samples, events (pages and a live stream) and exports: read for viewers,
submitting a campaign for operators."""

from __future__ import annotations

import csv
import io
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from labos.web import control, plots, queries
from labos.web.accounts import Principal
from labos.web.deps import DbSession, audit_action, operator, state, viewer
from labos.web.errors import NotFound
from labos.web.schemas import (
    CampaignDetail,
    CampaignSubmit,
    CampaignSummary,
    EventOut,
    ExperimentDetail,
    FurnaceProfile,
    Page,
    SampleDetail,
    TimelineItem,
    XRDPlot,
)
from labos.web.sse import event_stream

router = APIRouter(prefix="/api")
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]


# ------------------------------------------------------------------------------------ campaigns


@router.get(
    "/campaigns",
    response_model=list[CampaignSummary],
    tags=["campaigns"],
    summary="All campaigns with progress",
)
def campaigns(session: DbSession, _: Principal = Depends(viewer)):
    return queries.list_campaigns(session)


@router.post(
    "/campaigns",
    response_model=CampaignSummary,
    status_code=201,
    tags=["campaigns"],
    summary="Submit a campaign (operator)",
)
def submit_campaign(
    body: CampaignSubmit, request: Request, session: DbSession, who: Principal = Depends(operator)
):
    summary = control.submit_campaign(session, body, submitted_by=who.username)
    audit_action(
        session, request, who, "campaign.submit", subject=summary.id, name=body.name, targets=body.targets
    )
    return summary


@router.get(
    "/campaigns/{campaign_id}", response_model=CampaignDetail, tags=["campaigns"], summary="One campaign"
)
def campaign(campaign_id: PathId, session: DbSession, _: Principal = Depends(viewer)):
    return queries.campaign_detail(session, campaign_id)


@router.get(
    "/campaigns/{campaign_id}/report",
    tags=["campaigns"],
    summary="The campaign runner's report: routes that worked and why, failed routes, utilisation",
    response_description="labos.campaign.report.CampaignReport as JSON",
)
def campaign_report(campaign_id: PathId, request: Request, _: Principal = Depends(viewer)):
    """Per target the outcome, best yield, experiments used, the route that worked and the planner's
    reason, the failed routes with the intermediates that blocked them; overall numbers."""
    return control.campaign_report(campaign_id, state(request).db_url)


# ---------------------------------------------------------------------------------- experiments


@router.get("/experiments", response_model=Page, tags=["experiments"], summary="Experiments, newest first")
def experiments(
    session: DbSession,
    campaign: str | None = Query(None, max_length=64),
    status: str | None = Query(None, max_length=32, pattern=r"^[a-z_]+$"),
    target: str | None = Query(None, max_length=120),
    limit: Limit = 100,
    offset: Offset = 0,
    _: Principal = Depends(viewer),
):
    total, items = queries.list_experiments(
        session, campaign_id=campaign, status=status, target=target, limit=limit, offset=offset
    )
    return Page(total=total, items=items)


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentDetail,
    tags=["experiments"],
    summary="One experiment",
)
def experiment(experiment_id: PathId, session: DbSession, _: Principal = Depends(viewer)):
    """Recipe, the planner's explanation, samples and every outcome of one experiment."""
    return queries.experiment_detail(session, experiment_id)


@router.get(
    "/experiments/{experiment_id}/timeline",
    response_model=list[TimelineItem],
    tags=["experiments"],
    summary="Task timeline of an experiment",
)
def experiment_timeline(experiment_id: PathId, session: DbSession, _: Principal = Depends(viewer)):
    """Tasks as intervals and other events as points, from the lab's event log."""
    return plots.timeline(session, experiment_id)


@router.get(
    "/experiments/{experiment_id}/furnace",
    response_model=FurnaceProfile,
    tags=["experiments"],
    summary="Furnace temperature against setpoint",
)
def experiment_furnace(experiment_id: PathId, session: DbSession, _: Principal = Depends(viewer)):
    """Programmed setpoint from the recipe against the furnace temperature the lab recorded."""
    return plots.furnace_profile(session, experiment_id)


@router.get(
    "/experiments/{experiment_id}/xrd",
    response_model=XRDPlot,
    tags=["experiments"],
    summary="XRD pattern, fit and phases",
)
def experiment_xrd(
    experiment_id: PathId,
    session: DbSession,
    outcome: int | None = Query(None, ge=1),
    _: Principal = Depends(viewer),
):
    """Observed pattern with the fitted phases, difference curve and weight fractions."""
    return plots.xrd_plot(session, experiment_id, outcome)


@router.get(
    "/experiments/{experiment_id}/xrd/raw",
    tags=["experiments"],
    response_class=FileResponse,
    summary="The raw diffraction file",
)
def experiment_xrd_raw(
    experiment_id: PathId,
    session: DbSession,
    outcome: int | None = Query(None, ge=1),
    _: Principal = Depends(viewer),
):
    """The raw diffraction file as the instrument wrote it (only files recorded in an outcome)."""
    row = plots._outcome_row(session, experiment_id, outcome)
    path = FilePath(row.xrd_file or "")
    if not path.is_file():
        raise NotFound(f"XRD file {path.name} is not on this machine")
    return FileResponse(path, filename=path.name, media_type="application/octet-stream")


# -------------------------------------------------------------------------------------- samples


@router.get("/samples", response_model=Page, tags=["samples"], summary="Samples and where they are")
def samples(
    session: DbSession,
    position: str | None = Query(None, max_length=120, description="position prefix, e.g. 'furnace_1/'"),
    experiment: str | None = Query(None, max_length=64),
    campaign: str | None = Query(None, max_length=64),
    limit: Limit = 200,
    offset: Offset = 0,
    _: Principal = Depends(viewer),
):
    total, items = queries.list_samples(
        session, position=position, experiment_id=experiment, campaign_id=campaign, limit=limit, offset=offset
    )
    return Page(total=total, items=items)


@router.get(
    "/samples/{sample_id}",
    response_model=SampleDetail,
    tags=["samples"],
    summary="One sample with history and lineage",
)
def sample(sample_id: PathId, session: DbSession, _: Principal = Depends(viewer)):
    """One sample: position, every move with its cause, and its lineage."""
    return queries.sample_detail(session, sample_id)


# --------------------------------------------------------------------------------------- events


@router.get("/events", response_model=list[EventOut], tags=["events"], summary="The event log")
def events(
    session: DbSession,
    after: int | None = Query(None, ge=0, description="events after this id, oldest first"),
    before: int | None = Query(None, ge=1, description="events before this id, newest first"),
    kind: str | None = Query(None, max_length=64, description="kind prefix, e.g. 'task.'"),
    subject: str | None = Query(None, max_length=120),
    limit: Limit = 100,
    _: Principal = Depends(viewer),
):
    return queries.list_events(session, after=after, before=before, kind=kind, subject=subject, limit=limit)


@router.get(
    "/events/stream",
    tags=["events"],
    summary="Live events (text/event-stream)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "one `data:` JSON EventOut per event"}
    },
)
async def stream(
    request: Request,
    after: int | None = Query(None, ge=0, description="resume after this id (default: from now)"),
    kind: str | None = Query(None, max_length=64),
    who: Principal = Depends(viewer),
):
    """Server-sent events: every new row of the event log as JSON, resumable with Last-Event-ID."""
    last = request.headers.get("last-event-id")
    if last and last.isdigit():
        after = int(last)
    return StreamingResponse(
        event_stream(request, state(request), who, after, kind),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


# --------------------------------------------------------------------------------------- export


@router.get(
    "/export/experiments.csv", tags=["experiments"], response_class=Response, summary="Experiments as CSV"
)
def export_csv(
    session: DbSession,
    campaign: str | None = Query(None, max_length=64),
    _: Principal = Depends(viewer),
):
    return Response(
        export_rows_csv(session, campaign),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="experiments.csv"'},
    )


def export_rows_csv(session: Session, campaign: str | None) -> str:
    from labos.web.exporting import experiment_rows

    rows = experiment_rows(session, campaign)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()
