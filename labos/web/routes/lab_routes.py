"""The lab OS through the console: state and pause/resume/stop, devices, positions, inventory,
interventions. Reading needs viewer; control and answers need operator and are audited."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from labos.web import labgate
from labos.web.accounts import Principal
from labos.web.deps import DbSession, audit_action, operator, state, viewer
from labos.web.labgate import DeviceOut, LabStatus, LotOut, PositionOut
from labos.web.schemas import In

router = APIRouter(prefix="/api", tags=["lab"])
InterventionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class ControlRequest(In):
    lab: str | None = Field(default=None, max_length=64, description="lab id (default: the only lab)")
    reason: str | None = Field(default=None, max_length=500)


class AnswerRequest(In):
    answer: str = Field(min_length=1, max_length=64, description="one of the intervention's options")
    values: dict[str, str | float | int | bool | None] = Field(
        default_factory=dict, description="extra facts the answer needs, e.g. {'lot': 'L7', 'mg': 25000}"
    )
    note: str | None = Field(default=None, max_length=500)


class InterventionOut(BaseModel):
    id: str
    kind: str
    subject: str | None
    task_id: str | None
    message: str
    options: list[str]
    data: dict[str, Any]
    status: str
    level: int
    created_at: Any
    escalate_at_s: float | None = None
    answer: str | None
    answer_data: dict[str, Any]
    answered_by: str | None
    answered_at: Any


@router.get(
    "/lab", response_model=LabStatus, summary="The lab's state (running / paused / stopped), clock, workers"
)
def lab(session: DbSession, lab: str | None = Query(None, max_length=64), _: Principal = Depends(viewer)):
    return labgate.lab_status(session, lab)


@router.post("/lab/{action}", response_model=LabStatus, summary="Pause, resume or stop the lab (operator)")
def lab_control(
    action: Literal["pause", "resume", "stop"],
    request: Request,
    session: DbSession,
    body: ControlRequest | None = None,
    who: Principal = Depends(operator),
):
    body = body or ControlRequest()
    status = labgate.control(session, action, user=who.username, lab_id=body.lab)
    state(request).notify_lab()
    audit_action(session, request, who, f"lab.{action}", subject=status.id, reason=body.reason)
    return status


@router.get("/devices", response_model=list[DeviceOut], summary="Devices: state, fault, booking, utilisation")
def devices(session: DbSession, _: Principal = Depends(viewer)):
    return labgate.devices(session)


@router.get("/positions", response_model=list[PositionOut], summary="Sample positions and what is in them")
def positions(session: DbSession, _: Principal = Depends(viewer)):
    return labgate.positions(session)


@router.get("/inventory", response_model=list[LotOut], summary="Precursor lots and stock")
def inventory(session: DbSession, _: Principal = Depends(viewer)):
    return labgate.inventory(session)


class RefillRequest(In):
    formula: str = Field(min_length=1, max_length=120)
    lot: str = Field(min_length=1, max_length=120)
    mg: float = Field(gt=0, le=10_000_000, description="mass added, mg")


@router.post("/inventory/refill", response_model=list[LotOut], summary="Record a precursor refill (operator)")
def refill(body: RefillRequest, request: Request, session: DbSession, who: Principal = Depends(operator)):
    lots = labgate.refill(session, body.formula, body.lot, body.mg, user=who.username)
    audit_action(session, request, who, "inventory.refill", subject=body.formula, lot=body.lot, mg=body.mg)
    session.commit()
    state(request).notify_lab()
    return lots


@router.get("/interventions", response_model=list[InterventionOut], summary="Operator interventions")
def interventions(
    session: DbSession,
    status: Literal["open", "answered", "all"] = "open",
    limit: int = Query(200, ge=1, le=1000),
    _: Principal = Depends(viewer),
):
    return [v.model_dump() for v in labgate.interventions(session, status, limit)]


@router.get("/interventions/{intervention_id}", response_model=InterventionOut, summary="One intervention")
def intervention(intervention_id: InterventionId, session: DbSession, _: Principal = Depends(viewer)):
    return labgate.intervention(session, intervention_id).model_dump()


@router.post(
    "/interventions/{intervention_id}/answer",
    response_model=InterventionOut,
    summary="Answer an intervention (operator)",
)
def answer(
    intervention_id: InterventionId,
    body: AnswerRequest,
    request: Request,
    session: DbSession,
    who: Principal = Depends(operator),
):
    values = {k: v for k, v in body.values.items() if v is not None}
    result = labgate.answer(session, intervention_id, body.answer, user=who.username, values=values)
    audit_action(
        session,
        request,
        who,
        "intervention.answer",
        subject=intervention_id,
        answer=body.answer,
        values=values or None,
        note=body.note,
    )
    session.commit()  # the lab acts on the answer once it is committed
    state(request).notify_lab()
    return result.model_dump()
