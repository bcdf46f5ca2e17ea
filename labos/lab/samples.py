"""Sample tracking: every sample is in exactly one place; every move is one transaction with its cause.

A configured slot records its sample in ``lab_resources.occupant`` (unique), the sample records
the slot in ``samples.position``, and a ``sample_events`` row records the move and why; all three
change together or not at all. Places outside the configured racks (``removed``, ``lost``,
``archive``, ``operator``) hold any number of samples. What happened to the material (lots and
weighed masses, the furnace run, the XRD file, the analysis) is kept as provenance rows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from labos.db.records import SampleEventRow, SampleRow
from labos.errors import LabosError
from labos.lab.events import emit
from labos.lab.records import ProvenanceRow, ResourceRow

# Positions that are not slots: a sample there blocks nothing.
OFF_DECK = ("removed", "lost", "archive", "operator", "vial_supply")


class SampleError(LabosError):
    """A move that would put two samples in one slot, or a sample that does not exist."""


def is_slot(position: str) -> bool:
    return "/" in position


def create_sample(
    session: Session,
    sample_id: str,
    *,
    position: str,
    container: str = "vial",
    experiment_id: str | None = None,
    cause: str,
    lab_t: float = 0.0,
    parent_id: str | None = None,
) -> SampleRow:
    if session.get(SampleRow, sample_id) is not None:
        raise SampleError(f"sample {sample_id} already exists")
    if is_slot(position):
        _occupy(session, position, sample_id)
    row = SampleRow(
        id=sample_id,
        experiment_id=experiment_id,
        container=container,
        position=position,
        data={"status": "active"},
    )
    session.add(row)
    session.add(SampleEventRow(sample=row, position=position, cause=cause))
    if parent_id:
        session.add(
            ProvenanceRow(sample_id=sample_id, kind="derived_from", parent_id=parent_id, lab_t=lab_t, data={})
        )
    emit(
        session, "sample.created", sample_id, lab_t=lab_t, position=position, container=container, cause=cause
    )
    return row


def _occupy(session: Session, position: str, sample_id: str) -> None:
    slot = session.get(ResourceRow, position)
    if slot is None or slot.kind != "slot":
        raise SampleError(f"position {position} is not a slot of this lab")
    if slot.occupant not in (None, sample_id):
        raise SampleError(f"position {position} already holds sample {slot.occupant}")
    slot.occupant = sample_id


def move_sample(
    session: Session,
    sample_id: str,
    destination: str,
    *,
    cause: str,
    lab_t: float = 0.0,
    container: str | None = None,
) -> SampleRow:
    """Move a sample (and optionally change its container) in the caller's transaction."""
    row = session.get(SampleRow, sample_id)
    if row is None:
        raise SampleError(f"no sample {sample_id}")
    source = row.position
    if source != destination:
        if is_slot(source):  # free the old slot first: occupant is unique
            session.execute(
                update(ResourceRow)
                .where(ResourceRow.name == source, ResourceRow.occupant == sample_id)
                .values(occupant=None)
            )
        if is_slot(destination):
            _occupy(session, destination, sample_id)
        row.position = destination
    if container:
        row.container = container
    session.add(SampleEventRow(sample_id=sample_id, position=destination, cause=cause))
    emit(
        session,
        "sample.moved",
        sample_id,
        lab_t=lab_t,
        source=source,
        destination=destination,
        cause=cause,
        container=row.container,
    )
    return row


def set_sample_status(session: Session, sample_id: str, status: str) -> None:
    row = session.get(SampleRow, sample_id)
    if row is not None:
        row.data = {**(row.data or {}), "status": status}


def add_provenance(
    session: Session,
    sample_id: str,
    kind: str,
    *,
    task_id: str | None = None,
    lab_t: float = 0.0,
    **data: Any,
) -> None:
    session.add(ProvenanceRow(sample_id=sample_id, kind=kind, task_id=task_id, lab_t=lab_t, data=data))


class SampleMove(BaseModel):
    at: str
    position: str
    cause: str


class SampleRecord(BaseModel):
    kind: str
    task_id: str | None
    parent_id: str | None
    data: dict[str, Any]
    lab_t: float


class SampleView(BaseModel):
    id: str
    experiment_id: str | None
    container: str
    position: str
    status: str
    history: list[SampleMove] = []
    provenance: list[SampleRecord] = []
    parents: list[str] = []
    children: list[str] = []


def sample_view(session: Session, sample_id: str, *, detail: bool = True) -> SampleView:
    row = session.get(SampleRow, sample_id)
    if row is None:
        raise SampleError(f"no sample {sample_id}")
    view = SampleView(
        id=row.id,
        experiment_id=row.experiment_id,
        container=row.container,
        position=row.position,
        status=(row.data or {}).get("status", "active"),
    )
    if detail:
        view.history = [
            SampleMove(at=e.at.isoformat(), position=e.position, cause=e.cause) for e in row.history
        ]
        prov = session.scalars(
            select(ProvenanceRow).where(ProvenanceRow.sample_id == sample_id).order_by(ProvenanceRow.id)
        ).all()
        view.provenance = [
            SampleRecord(kind=p.kind, task_id=p.task_id, parent_id=p.parent_id, data=p.data, lab_t=p.lab_t)
            for p in prov
        ]
        view.parents = [p.parent_id for p in prov if p.parent_id]
        view.children = list(
            session.scalars(
                select(ProvenanceRow.sample_id).where(
                    ProvenanceRow.parent_id == sample_id, ProvenanceRow.kind == "derived_from"
                )
            )
        )
    return view


def lineage(session: Session, sample_id: str) -> list[SampleView]:
    """The sample and all its ancestors (oldest last), each with its provenance."""
    out, seen, todo = [], set(), [sample_id]
    while todo:
        sid = todo.pop()
        if sid in seen:
            continue
        seen.add(sid)
        v = sample_view(session, sid)
        out.append(v)
        todo.extend(v.parents)
    return out
