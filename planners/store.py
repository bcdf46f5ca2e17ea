"""The pairwise-reaction store in the database, so later campaigns start from what earlier ones learned.

One row per (atmosphere, reactant pair): products, the temperature interval of the onset, and the
experiments that showed it. Saving merges with what is already there (highest inert temperature,
lowest reaction temperature), so two campaigns writing the same pair never lose knowledge.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labos.planners.pairwise import PairRecord, PairwiseStore
from sqlalchemy import JSON, Boolean, Float, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from labos.db.base import Base, utcnow


class PairwiseReactionRow(Base):
    __tablename__ = "planner_pairwise_reactions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    atmosphere: Mapped[str] = mapped_column(String(32))
    reactants: Mapped[str] = mapped_column(String(255), index=True)  # "A+B", canonical formulas, sorted
    products: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    t_inert_max_c: Mapped[float | None] = mapped_column(Float)
    t_react_min_c: Mapped[float | None] = mapped_column(Float)
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    partial: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[list[str]] = mapped_column(JSON, default=list)
    max_fraction: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(32), default="observed")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("atmosphere", "reactants", name="uq_planner_pairwise_reactions_pair"),)

    def to_record(self) -> PairRecord:
        return PairRecord.from_dict(
            {
                "reactants": self.reactants.split("+"),
                "atmosphere": self.atmosphere,
                "products": self.products,
                "t_inert_max_c": self.t_inert_max_c,
                "t_react_min_c": self.t_react_min_c,
                "ambiguous": self.ambiguous,
                "partial": self.partial,
                "evidence": self.evidence,
                "source": self.source,
                "max_fraction": self.max_fraction or {},
            }
        )


def load_store(session: Session, atmosphere: str = "air") -> PairwiseStore:
    """Everything learned so far in this atmosphere."""
    rows = session.scalars(select(PairwiseReactionRow).where(PairwiseReactionRow.atmosphere == atmosphere))
    return PairwiseStore(atmosphere, [r.to_record() for r in rows])


def save_store(session: Session, store: PairwiseStore) -> int:
    """Merge the store into the database (in the caller's transaction); returns rows written."""
    existing = {
        r.reactants: r
        for r in session.scalars(
            select(PairwiseReactionRow).where(PairwiseReactionRow.atmosphere == store.atmosphere)
        )
    }
    merged = PairwiseStore(store.atmosphere, [r.to_record() for r in existing.values()])
    merged.merge(store)
    written = 0
    for rec in merged:
        row = existing.get(rec.key)
        if row is None:
            row = PairwiseReactionRow(atmosphere=store.atmosphere, reactants=rec.key)
            session.add(row)
        values = {
            "products": dict(rec.products),
            "t_inert_max_c": rec.t_inert_max_c,
            "t_react_min_c": rec.t_react_min_c,
            "ambiguous": rec.ambiguous,
            "partial": rec.partial,
            "evidence": list(rec.evidence)[-200:],
            "source": rec.source,
            "max_fraction": dict(rec.max_fraction),
        }
        changed = any(getattr(row, k) != v for k, v in values.items())
        if changed:
            for k, v in values.items():
                setattr(row, k, v)
            written += 1
    session.flush()
    return written
