"""Tables of the campaign loop: one row per planner decision (written before the experiment is
submitted, so a restart knows what was asked and never asks twice) and one row per run session
(wall and lab time of each process that worked on the campaign)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from labos.db.base import Base, utcnow


class CampaignDecisionRow(Base):
    """What the planner proposed for one experiment and what became of it.

    ``status``: proposed (written, not yet handed to the lab) → submitted → reported | failed |
    cancelled. ``proposal`` is the planner's :class:`labos.planners.Proposal` as JSON."""

    __tablename__ = "campaign_decisions"
    experiment_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    target: Mapped[str] = mapped_column(String(120))
    seq: Mapped[int] = mapped_column(Integer)
    planner: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON)
    target_fraction: Mapped[float | None] = mapped_column(Float)
    success: Mapped[bool | None] = mapped_column()
    proposed_s: Mapped[float] = mapped_column(Float, default=0.0)
    reported_s: Mapped[float | None] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (Index("ix_campaign_decisions_campaign_seq", "campaign_id", "seq"),)


class CampaignSessionRow(Base):
    """One process run of a campaign (a resumed campaign has several)."""

    __tablename__ = "campaign_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    lab_start_s: Mapped[float] = mapped_column(Float, default=0.0)
    lab_end_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(24), default="running")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
