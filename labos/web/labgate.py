"""The console's gateway to the lab OS (``labos.lab``): lab state and control, devices, positions,
inventory, interventions.

The lab may run in another process; everything here goes through the database the lab OS keeps
(its own functions where it offers them, so an answer changes the lab state exactly as the lab OS
defines). Where a part of the lab OS is not there, the call raises NotImplementedYet (HTTP 501).
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from labos.errors import LabosError, NotImplementedYet
from labos.web.errors import Conflict, NotFound

CONTROL_ACTIONS = {"pause": "paused", "resume": "running", "stop": "stopped"}


LAB_TABLES = ("lab_state", "lab_resources", "lab_interventions", "lab_inventory")


def _module(name: str, what: str):
    try:
        return importlib.import_module(f"labos.lab.{name}")
    except ImportError as exc:
        raise NotImplementedYet(f"{what} not implemented: labos.lab.{name} is missing ({exc})") from None


def lab_available(engine) -> bool:
    """labos.lab is importable and its tables exist in the database behind ``engine``."""
    try:
        importlib.import_module("labos.lab.records")
    except ImportError:
        return False
    return _tables_ready(engine)


def _lab(session: Session, name: str, what: str):
    """The lab OS module ``name``, once its tables exist in this database (else NotImplementedYet)."""
    if not _tables_ready(session.get_bind().engine):
        raise NotImplementedYet(
            f"{what} not implemented: the lab OS tables ({', '.join(LAB_TABLES)}) are not in this database yet"
        )
    return _module(name, what)


_READY: dict[int, bool] = {}


def _tables_ready(engine) -> bool:
    key = id(engine)
    if not _READY.get(key):
        from sqlalchemy import inspect

        names = set(inspect(engine).get_table_names())
        _READY[key] = all(t in names for t in LAB_TABLES)
    return _READY[key]


# ------------------------------------------------------------------------------------- lab state


class LabStatus(BaseModel):
    id: str
    name: str | None
    desired: str
    clock_s: float
    updated_by: str | None
    updated_at: Any
    devices: int
    devices_fault: int
    devices_busy: int
    workers: list[dict[str, Any]]


def _state_row(session: Session, lab_id: str | None, *, create: bool = False):
    rec = _lab(session, "records", "lab state")
    if lab_id:
        row = session.get(rec.LabStateRow, lab_id)
    else:
        rows = list(session.scalars(select(rec.LabStateRow).order_by(rec.LabStateRow.id)))
        row = rows[0] if len(rows) == 1 else next((r for r in rows if r.id == "lab"), None)
    if row is None and create:
        row = rec.LabStateRow(id=lab_id or "lab", desired="running", clock_s=0.0, config={})
        session.add(row)
        session.flush()
    return row


def lab_status(session: Session, lab_id: str | None = None) -> LabStatus:
    rec = _lab(session, "records", "lab state")
    row = _state_row(session, lab_id)
    devices = list(session.scalars(select(rec.ResourceRow).where(rec.ResourceRow.kind == "device")))
    workers = [
        {"id": w.id, "pid": w.pid, "host": w.host, "status": w.status, "heartbeat_at": w.heartbeat_at}
        for w in session.scalars(select(rec.WorkerRow).order_by(rec.WorkerRow.started_at.desc()).limit(20))
    ]
    return LabStatus(
        id=row.id if row else (lab_id or "lab"),
        name=(row.config or {}).get("name") if row else None,
        desired=row.desired if row else "not started",
        clock_s=row.clock_s if row else 0.0,
        updated_by=row.updated_by if row else None,
        updated_at=row.updated_at if row else None,
        devices=len(devices),
        devices_fault=sum(d.state != "ok" for d in devices),
        devices_busy=sum(d.holder is not None for d in devices),
        workers=workers,
    )


def control(session: Session, action: str, *, user: str, lab_id: str | None = None) -> LabStatus:
    """Ask the lab to pause, resume or stop through the lab OS's API (``labos.lab.api.LabAPI``),
    which sets ``lab_state.desired`` and announces it; the lab's workers act on it (a pause lets
    running steps finish and starts nothing new)."""
    if action not in CONTROL_ACTIONS:
        raise LabosError(f"unknown lab action {action!r}: use pause, resume or stop")
    api_mod = _lab(session, "api", "lab control")
    store_mod = _module("store", "lab control")
    row = _state_row(session, lab_id)
    if row is not None and row.desired == "stopped" and action == "pause":
        raise Conflict("the lab is stopped; resume it first")
    target = row.id if row is not None else (lab_id or "lab")
    # The lab OS writes in its own transaction: end ours first so SQLite's single writer is free
    # and our next read sees the change.
    session.commit()
    api = api_mod.LabAPI(store_mod.Store(_factory(session), lab_id=target))
    getattr(api, action)(user)
    session.expire_all()  # rows loaded before the change are stale (sessions do not expire on commit)
    return lab_status(session, target)


def _factory(session: Session):
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(session.get_bind(), expire_on_commit=False)


# ------------------------------------------------------------------------------ devices, positions


class DeviceOut(BaseModel):
    name: str
    role: str
    state: str
    holder: str | None
    busy_s: float
    grants: int
    utilisation: float | None
    slots: int
    occupied: int
    fault: str | None
    note: str | None
    detail: dict[str, Any]


class PositionOut(BaseModel):
    name: str
    group: str
    device: str | None
    occupant: str | None
    holder: str | None
    state: str


def devices(session: Session) -> list[DeviceOut]:
    res = _lab(session, "resources", "device list")
    rec = _lab(session, "records", "device list")
    rows = res.list_resources(session)
    clock = max((r.clock_s for r in session.scalars(select(rec.LabStateRow))), default=0.0)
    # busy_s counts finished bookings; a device booked now has also been busy since held_since_s
    held = dict(
        session.execute(
            select(rec.ResourceRow.name, rec.ResourceRow.held_since_s).where(
                rec.ResourceRow.kind == "device", rec.ResourceRow.holder.is_not(None)
            )
        ).all()
    )
    slots: dict[str, list] = {}
    for r in rows:
        if r.kind == "slot" and r.device:
            slots.setdefault(r.device, []).append(r)
    out = []
    for r in rows:
        if r.kind != "device":
            continue
        mine = slots.get(r.name, [])
        detail = r.detail or {}
        since = held.get(r.name)
        busy = r.busy_s + (max(0.0, clock - since) if since is not None else 0.0)
        fault = str(detail.get("error") or detail.get("fault") or "") or None
        note = ", ".join(f"{k}: {v}" for k, v in detail.items() if k not in ("error", "fault"))[:200]
        out.append(
            DeviceOut(
                name=r.name,
                role=r.role,
                state=r.state,
                holder=r.holder,
                busy_s=busy,
                grants=r.grants,
                utilisation=min(1.0, busy / clock) if clock > 0 else None,
                slots=len(mine),
                occupied=sum(s.occupant is not None for s in mine),
                fault=fault if r.state != "ok" else None,
                note=note or None,
                detail=detail,
            )
        )
    return out


def positions(session: Session) -> list[PositionOut]:
    res = _lab(session, "resources", "position list")
    return [
        PositionOut(
            name=r.name, group=r.role, device=r.device, occupant=r.occupant, holder=r.holder, state=r.state
        )
        for r in res.list_resources(session, kind="slot")
    ]


# -------------------------------------------------------------------------------------- inventory


class LotOut(BaseModel):
    formula: str
    lot: str
    stock_mg: float
    initial_mg: float
    low_mg: float
    location: str | None
    low: bool


def inventory(session: Session) -> list[LotOut]:
    inv = _lab(session, "inventory", "inventory")
    lots = inv.list_lots(session)
    totals: dict[str, float] = {}
    for lot in lots:
        totals[lot.formula] = totals.get(lot.formula, 0.0) + lot.stock_mg
    return [
        LotOut(**lot.model_dump(), low=totals[lot.formula] < lot.low_mg or lot.stock_mg <= 0) for lot in lots
    ]


# ---------------------------------------------------------------------------------- interventions


def interventions(session: Session, status: str = "open", limit: int = 200) -> list[Any]:
    iv = _lab(session, "interventions", "interventions")
    rec = _lab(session, "records", "interventions")
    stmt = select(rec.InterventionRow)
    if status != "all":
        stmt = stmt.where(rec.InterventionRow.status == status)
    order = rec.InterventionRow.created_at.desc() if status != "open" else rec.InterventionRow.created_at
    rows = session.scalars(stmt.order_by(order).limit(limit))
    return [iv.view(r) for r in rows]


def intervention(session: Session, intervention_id: str) -> Any:
    iv = _lab(session, "interventions", "interventions")
    rec = _lab(session, "records", "interventions")
    row = session.get(rec.InterventionRow, intervention_id)
    if row is None:
        raise NotFound(f"no intervention {intervention_id!r}")
    return iv.view(row)


def answer(
    session: Session, intervention_id: str, option: str, *, user: str, values: dict[str, Any] | None = None
) -> Any:
    """Answer through the lab OS, which applies the answer to the lab state in this transaction."""
    iv = _lab(session, "interventions", "answering interventions")
    rec = _lab(session, "records", "interventions")
    row = session.get(rec.InterventionRow, intervention_id)
    if row is None:
        raise NotFound(f"no intervention {intervention_id!r}")
    if row.status != "open":
        raise Conflict(
            f"intervention {intervention_id} is already {row.status}"
            + (f" ({row.answer!r} by {row.answered_by})" if row.answered_by else "")
        )
    clock = session.scalar(select(func.max(rec.LabStateRow.clock_s))) or 0.0
    answered = iv.answer_intervention(
        session, intervention_id, option, user, values=values or {}, lab_t=float(clock)
    )
    session.flush()
    return iv.view(answered)


def refill(session: Session, formula: str, lot: str, mg: float, *, user: str) -> list[LotOut]:
    """Record new stock of a precursor (a new lot, or more of an existing one), in the caller's
    transaction (so it commits together with its audit entry)."""
    inv = _lab(session, "inventory", "inventory refill")
    rec = _lab(session, "records", "inventory refill")
    clock = session.scalar(select(func.max(rec.LabStateRow.clock_s))) or 0.0
    inv.refill(session, formula, lot, mg, user=user, lab_t=float(clock))
    session.flush()
    return inventory(session)
