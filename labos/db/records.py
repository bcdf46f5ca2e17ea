"""Core tables: campaigns, targets, experiments, samples with their move history, outcomes, events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from labos.db.base import Base, utcnow


class CampaignRow(Base):
    __tablename__ = "campaigns"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(32), default="created")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    targets: Mapped[list[TargetRow]] = relationship(back_populates="campaign", cascade="all, delete-orphan")


class TargetRow(Base):
    __tablename__ = "targets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    formula: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(64), default="user")
    source_id: Mapped[str | None] = mapped_column(String(120))
    e_above_hull: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(32), default="pending")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    campaign: Mapped[CampaignRow | None] = relationship(back_populates="targets")


class ExperimentRow(Base):
    __tablename__ = "experiments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    target_formula: Mapped[str] = mapped_column(String(120), index=True)
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    recipe: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32), default="proposed", index=True)
    explanation: Mapped[str] = mapped_column(Text, default="")
    planner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    samples: Mapped[list[SampleRow]] = relationship(back_populates="experiment")
    outcomes: Mapped[list[OutcomeRow]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan"
    )


class SampleRow(Base):
    __tablename__ = "samples"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    experiment_id: Mapped[str | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"), index=True
    )
    container: Mapped[str] = mapped_column(String(32), default="vial")
    position: Mapped[str] = mapped_column(String(120), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    experiment: Mapped[ExperimentRow | None] = relationship(back_populates="samples")
    history: Mapped[list[SampleEventRow]] = relationship(
        back_populates="sample", order_by="SampleEventRow.id", cascade="all, delete-orphan"
    )


class SampleEventRow(Base):
    """One move of one sample, written in the same transaction as the move itself."""

    __tablename__ = "sample_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    sample_id: Mapped[str] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    position: Mapped[str] = mapped_column(String(120))
    cause: Mapped[str] = mapped_column(String(200))
    sample: Mapped[SampleRow] = relationship(back_populates="history")


class OutcomeRow(Base):
    __tablename__ = "outcomes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    target_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    success: Mapped[bool] = mapped_column(Boolean, default=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    xrd_file: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    experiment: Mapped[ExperimentRow] = relationship(back_populates="outcomes")


class EventRow(Base):
    """Append-only log of every state change; the console and the campaign loop read it in id order."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(120))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    __table_args__ = (Index("ix_events_kind_id", "kind", "id"),)
