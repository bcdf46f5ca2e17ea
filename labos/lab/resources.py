"""Devices and sample slots as bookable resources.

A task asks for a set of :class:`Need` s (a device of a role, a named device, a free slot in a
position group, possibly on the device chosen for another need) and gets all of them in one
transaction or none: no task ever holds one resource while waiting for another, so resource
acquisition cannot deadlock. On PostgreSQL the free rows are read with ``FOR UPDATE SKIP
LOCKED``, so two workers never book the same row, and the booking itself is a conditional
``UPDATE ... WHERE holder IS NULL``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select, union_all, update
from sqlalchemy.orm import Session

from labos.lab.config import LabConfig
from labos.lab.records import ResourceRow


@dataclass(frozen=True)
class Need:
    """One resource a task needs.

    Exactly one of ``name`` (a specific device or slot), ``role`` (any device of that role) or
    ``group`` (any free slot in that position group) is set. ``on`` ties a slot to the device
    chosen for another need (``on="doser"``: a slot of the chosen doser). ``tag`` names the need
    for the task (default: role, group or name)."""

    name: str | None = None
    role: str | None = None
    group: str | None = None
    on: str | None = None
    tag: str | None = None

    @property
    def key(self) -> str:
        return self.tag or self.role or self.group or self.name or "?"


def sync_resources(session: Session, cfg: LabConfig) -> None:
    """Create rows for configured devices and slots (existing rows and their bookings are kept)."""
    have = {r.name: r for r in session.scalars(select(ResourceRow))}
    for d in cfg.devices:
        if d.name not in have:
            session.add(ResourceRow(name=d.name, kind="device", role=d.role, device=None, detail={}))
    for g in cfg.all_groups():
        for slot in g.slot_names():
            if slot not in have:
                session.add(ResourceRow(name=slot, kind="slot", role=g.group, device=g.device, detail={}))


@dataclass(frozen=True)
class Free:
    name: str
    kind: str
    role: str
    device: str | None


class FreePool:
    """The free resources read in one dispatch, handed out in memory before one commit."""

    def __init__(self, rows: list[Free]):
        self.by_name = {r.name: r for r in rows}
        self.devices_by_role: dict[str, list[str]] = defaultdict(list)
        self.slots_by_group: dict[str, list[str]] = defaultdict(list)
        for r in sorted(rows, key=lambda r: _slot_order(r.name)):
            if r.kind == "device":
                self.devices_by_role[r.role].append(r.name)
            else:
                self.slots_by_group[r.role].append(r.name)

    def free_slots(self, group: str) -> int:
        return len(self.slots_by_group.get(group, ()))

    def take(self, needs: list[Need], *, prefer: dict[str, str] | None = None) -> dict[str, str] | None:
        """Pick one free resource per need (all or nothing); removes them from the pool."""
        chosen: dict[str, str] = {}
        used: set[str] = set()
        for need in sorted(needs, key=lambda n: n.group is not None):  # devices before slots
            pick = None
            if need.name:
                if need.name in self.by_name and need.name not in used:
                    pick = need.name
            elif need.role:
                cands = self.devices_by_role.get(need.role, ())
                pref = (prefer or {}).get(need.key)
                if pref in cands and pref not in used:
                    pick = pref
                else:
                    pick = next((c for c in cands if c not in used), None)
            elif need.group:
                owner = chosen.get(need.on) if need.on else None
                for c in self.slots_by_group.get(need.group, ()):
                    if c in used:
                        continue
                    if need.on and self.by_name[c].device != owner:
                        continue
                    pick = c
                    break
            if pick is None:
                return None
            chosen[need.key] = pick
            used.add(pick)
        for name in used:
            row = self.by_name.pop(name)
            if row.kind == "device":
                self.devices_by_role[row.role].remove(name)
            else:
                self.slots_by_group[row.role].remove(name)
        return chosen


def _slot_order(name: str):
    head, _, tail = name.rpartition("/")
    return (head, int(tail)) if tail.isdigit() else (name, 0)


SLOTS_PER_SET = 8  # free slots read per slot set (a group on one device): enough for one dispatch


def free_rows(session: Session, store, cfg: LabConfig | None = None) -> list[Free]:
    """Free devices and a few free slots of every slot set, in one query.

    Nothing is locked here: :func:`book` locks (SKIP LOCKED on PostgreSQL) and re-checks each
    resource it grants, so one booked meanwhile by another worker is simply not granted."""
    dev = select(ResourceRow.name, ResourceRow.kind, ResourceRow.role, ResourceRow.device).where(
        ResourceRow.kind == "device", ResourceRow.holder.is_(None), ResourceRow.state == "ok"
    )
    if cfg is None:
        return [Free(*r) for r in session.execute(dev)] + [Free(*r) for r in session.execute(_slot_window())]
    return [Free(*r) for r in session.execute(_slot_query(cfg, dev))]


_SLOT_QUERIES: dict[int, Any] = {}


def _slot_query(cfg: LabConfig, devices):
    """Free devices UNION ALL one short indexed query per slot set (cached per configuration)."""
    key = id(cfg)
    stmt = _SLOT_QUERIES.get(key)
    if stmt is None:
        parts = [select(devices.subquery())]
        for g in cfg.all_groups():
            q = (
                select(ResourceRow.name, ResourceRow.kind, ResourceRow.role, ResourceRow.device)
                .where(
                    ResourceRow.role == g.group,
                    ResourceRow.occupant.is_(None),
                    ResourceRow.holder.is_(None),
                    ResourceRow.kind == "slot",
                    ResourceRow.state == "ok",
                    ResourceRow.device == g.device if g.device else ResourceRow.device.is_(None),
                )
                .limit(SLOTS_PER_SET)
                .subquery()
            )
            parts.append(select(q))
        stmt = union_all(*parts) if len(parts) > 1 else devices
        _SLOT_QUERIES[key] = stmt
    return stmt


def _slot_window():
    rn = (
        func.row_number()
        .over(partition_by=(ResourceRow.role, ResourceRow.device), order_by=ResourceRow.name)
        .label("rn")
    )
    inner = (
        select(ResourceRow.name, ResourceRow.kind, ResourceRow.role, ResourceRow.device, rn)
        .where(
            ResourceRow.kind == "slot",
            ResourceRow.holder.is_(None),
            ResourceRow.occupant.is_(None),
            ResourceRow.state == "ok",
        )
        .subquery()
    )
    return select(inner.c.name, inner.c.kind, inner.c.role, inner.c.device).where(inner.c.rn <= SLOTS_PER_SET)


def book(session: Session, holder: str, names: list[str], now_s: float) -> bool:
    """Book ``names`` for ``holder`` in one statement; False (and nothing booked) if any of them
    was taken meanwhile (only rows still free are updated, and the count must match)."""
    if not names:
        return True
    names = sorted(set(names))
    free = (ResourceRow.name.in_(names), ResourceRow.holder.is_(None), ResourceRow.occupant.is_(None))
    if session.bind.dialect.name == "postgresql":  # never wait for a row another worker is booking
        got = session.scalars(select(ResourceRow.name).where(*free).with_for_update(skip_locked=True)).all()
        if len(got) != len(names):
            return False
    res = session.execute(
        update(ResourceRow)
        .where(*free)
        .values(holder=holder, held_since_s=now_s, grants=ResourceRow.grants + 1)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount == len(names):
        return True
    if res.rowcount:
        session.execute(
            update(ResourceRow)
            .where(ResourceRow.name.in_(names), ResourceRow.holder == holder)
            .values(holder=None, held_since_s=None, grants=ResourceRow.grants - 1)
            .execution_options(synchronize_session=False)
        )
    return False


def release(session: Session, holder: str, names: list[str] | None, now_s: float) -> None:
    """Free what ``holder`` booked (all of it when ``names`` is None), adding to busy time."""
    stmt = update(ResourceRow).where(ResourceRow.holder == holder)
    if names is not None:
        stmt = stmt.where(ResourceRow.name.in_(names))
    session.execute(
        stmt.values(
            busy_s=ResourceRow.busy_s + func.coalesce(now_s - ResourceRow.held_since_s, 0.0),
            holder=None,
            held_since_s=None,
        ).execution_options(synchronize_session=False)
    )


def set_device_state(session: Session, name: str, state: str, detail: dict | None = None) -> None:
    row = session.get(ResourceRow, name)
    if row is not None:
        row.state = state
        row.detail = detail or {}


class ResourceView(BaseModel):
    name: str
    kind: str
    role: str
    device: str | None
    holder: str | None
    occupant: str | None
    state: str
    detail: dict
    busy_s: float
    grants: int


def list_resources(session: Session, kind: str | None = None) -> list[ResourceView]:
    stmt = select(ResourceRow)
    if kind:
        stmt = stmt.where(ResourceRow.kind == kind)
    rows = sorted(session.scalars(stmt), key=lambda r: _slot_order(r.name))
    return [
        ResourceView(
            name=r.name,
            kind=r.kind,
            role=r.role,
            device=r.device,
            holder=r.holder,
            occupant=r.occupant,
            state=r.state,
            detail=r.detail or {},
            busy_s=r.busy_s or 0.0,
            grants=r.grants or 0,
        )
        for r in rows
    ]
