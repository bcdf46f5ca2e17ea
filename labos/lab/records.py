"""Tables of the lab OS: resources (devices and slots), tasks, the step journal, furnace runs,
operator interventions, the precursor inventory, sample provenance, workers and the lab state.

Samples themselves live in the core ``samples``/``sample_events`` tables; a slot row's
``occupant`` (unique) and the sample's ``position`` are always changed in one transaction, so a
sample is in exactly one place and a slot never holds two samples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from labos.db.base import Base, utcnow


class LabStateRow(Base):
    """One row per lab: what the operator asked for (running/paused/stopped) and the lab clock."""

    __tablename__ = "lab_state"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    desired: Mapped[str] = mapped_column(String(16), default="running")
    clock_s: Mapped[float] = mapped_column(Float, default=0.0)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_by: Mapped[str | None] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ResourceRow(Base):
    """A device or a sample slot. ``holder`` is the task (or furnace run) that has it booked;
    ``occupant`` is the sample sitting in a slot."""

    __tablename__ = "lab_resources"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # "device" | "slot"
    role: Mapped[str] = mapped_column(String(32))  # device role, or the slot's group
    device: Mapped[str | None] = mapped_column(String(120))  # device owning a slot
    holder: Mapped[str | None] = mapped_column(String(160), index=True)
    occupant: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok | fault | offline
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    held_since_s: Mapped[float | None] = mapped_column(Float)
    busy_s: Mapped[float] = mapped_column(Float, default=0.0)  # total booked time (lab clock)
    grants: Mapped[int] = mapped_column(Integer, default=0)
    __table_args__ = (
        Index("ix_lab_resources_kind_role", "kind", "role"),
        Index("ix_lab_resources_role_occupant", "role", "occupant"),
    )


class TaskRow(Base):
    """One node of an experiment's task graph."""

    __tablename__ = "lab_tasks"
    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    node: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(24), default="blocked")
    deps: Mapped[list[str]] = mapped_column(JSON, default=list)
    successors: Mapped[list[str]] = mapped_column(JSON, default=list)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    rank_min: Mapped[float] = mapped_column(Float, default=0.0)
    lead_min: Mapped[float | None] = mapped_column(Float)  # work left before the first XRD scan
    duration_min: Mapped[float] = mapped_column(Float, default=0.0)
    batch_key: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    sample_id: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(120))
    holds: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # need tag -> resource
    not_before_s: Mapped[float | None] = mapped_column(Float)
    ready_s: Mapped[float | None] = mapped_column(Float)
    started_s: Mapped[float | None] = mapped_column(Float)
    finished_s: Mapped[float | None] = mapped_column(Float)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("ix_lab_tasks_status_priority", "status", "priority"),)


class JournalRow(Base):
    """Write-ahead record of every hardware step: ``intent`` before, ``done``/``failed`` after.

    A step with an intent and nothing after it touched hardware with an unknown outcome."""

    __tablename__ = "lab_journal"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(160), index=True)  # task id or furnace-run id
    step: Mapped[str] = mapped_column(String(120))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    phase: Mapped[str] = mapped_column(String(16))  # intent | done | failed | abandoned
    effect: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lab_t: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("owner", "step", "attempt", "phase", name="uq_lab_journal_step"),)


class FurnaceRunRow(Base):
    """One furnace programme for a batch of crucibles sharing a heating profile."""

    __tablename__ = "lab_furnace_runs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    furnace: Mapped[str] = mapped_column(String(120), index=True)
    profile_key: Mapped[str] = mapped_column(String(64))
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(24), default="loading", index=True)
    members: Mapped[list[str]] = mapped_column(JSON, default=list)  # heat task ids
    capacity: Mapped[int] = mapped_column(Integer)
    duration_min: Mapped[float] = mapped_column(Float)
    created_s: Mapped[float] = mapped_column(Float)
    heat_start_s: Mapped[float | None] = mapped_column(Float)
    heat_end_s: Mapped[float | None] = mapped_column(Float)
    finished_s: Mapped[float | None] = mapped_column(Float)
    worker: Mapped[str | None] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InterventionRow(Base):
    """A typed request to the operator, with its options, escalation and who answered what."""

    __tablename__ = "lab_interventions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(48))
    subject: Mapped[str | None] = mapped_column(String(160))
    task_id: Mapped[str | None] = mapped_column(String(160), index=True)
    message: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    level: Mapped[int] = mapped_column(Integer, default=0)
    raised_s: Mapped[float] = mapped_column(Float, default=0.0)
    escalate_at_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answer: Mapped[str | None] = mapped_column(String(64))
    answer_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    answered_by: Mapped[str | None] = mapped_column(String(120))
    answered_at: Mapped[datetime | None] = mapped_column()


class InventoryLotRow(Base):
    __tablename__ = "lab_inventory"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    formula: Mapped[str] = mapped_column(String(120), index=True)
    lot: Mapped[str] = mapped_column(String(120))
    stock_mg: Mapped[float] = mapped_column(Float)
    initial_mg: Mapped[float] = mapped_column(Float)
    low_mg: Mapped[float] = mapped_column(Float, default=1000.0)
    location: Mapped[str | None] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("formula", "lot", name="uq_lab_inventory_formula_lot"),)


class ProvenanceRow(Base):
    """What happened to a sample's material: doses (lot, weighed mass), heat run, XRD file,
    analysis, derivation from a parent sample."""

    __tablename__ = "lab_provenance"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[str] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    task_id: Mapped[str | None] = mapped_column(String(160))
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lab_t: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerRow(Base):
    """A process executing tasks; a worker whose heartbeat is stale is presumed dead."""

    __tablename__ = "lab_workers"
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
