"""Precursor inventory: lots with stock levels; doses draw from the oldest lot first (FIFO) and
record which lot they used, so every sample knows the lots its powder came from."""

from __future__ import annotations

from functools import lru_cache

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.domain import parse_formula
from labos.errors import LabosError
from labos.lab.config import InventoryLot
from labos.lab.events import emit
from labos.lab.records import InventoryLotRow


class InventoryError(LabosError):
    """A precursor the lab does not stock, or a bad refill."""


@lru_cache(maxsize=4096)
def _key(formula: str) -> str:
    return parse_formula(formula)


class LotView(BaseModel):
    formula: str
    lot: str
    stock_mg: float
    initial_mg: float
    low_mg: float
    location: str | None


def sync_inventory(session: Session, lots: list[InventoryLot]) -> None:
    """Add configured lots the database does not know yet (stock already in the DB is kept)."""
    have = {(r.formula, r.lot) for r in session.scalars(select(InventoryLotRow))}
    for lot in lots:
        key = (_key(lot.formula), lot.lot)
        if key not in have:
            session.add(
                InventoryLotRow(
                    formula=key[0],
                    lot=lot.lot,
                    stock_mg=lot.stock_mg,
                    initial_mg=lot.stock_mg,
                    low_mg=lot.low_mg,
                    location=lot.location,
                )
            )


def stocked_formulas(session: Session) -> set[str]:
    return set(session.scalars(select(InventoryLotRow.formula).distinct()))


def stock_mg(session: Session, formula: str) -> float:
    rows = session.scalars(select(InventoryLotRow).where(InventoryLotRow.formula == _key(formula)))
    return sum(r.stock_mg for r in rows)


def consume(
    session: Session, formula: str, mg: float, *, sample_id: str | None = None, lab_t: float = 0.0
) -> list[dict]:
    """Draw ``mg`` of ``formula`` from the oldest lots; returns [{lot, mg}] (may overdraw the last
    lot slightly: a weighed dose is a fact, the stock record follows it)."""
    rows = list(
        session.scalars(
            select(InventoryLotRow)
            .where(InventoryLotRow.formula == _key(formula))
            .order_by(InventoryLotRow.received_at, InventoryLotRow.id)
        )
    )
    if not rows:
        raise InventoryError(f"precursor {formula} is not in the inventory")
    used, left = [], mg
    for r in rows:
        if left <= 0:
            break
        take = min(r.stock_mg, left)
        if take > 0:
            r.stock_mg -= take
            left -= take
            used.append({"lot": r.lot, "mg": round(take, 4)})
    if left > 1e-9:  # overdraw on the newest lot
        rows[-1].stock_mg -= left
        used.append({"lot": rows[-1].lot, "mg": round(left, 4)})
    total = sum(r.stock_mg for r in rows)
    emit(
        session,
        "inventory.consumed",
        _key(formula),
        lab_t=lab_t,
        mg=round(mg, 4),
        lots=used,
        sample=sample_id,
    )
    if total < min(r.low_mg for r in rows):
        emit(session, "inventory.low", _key(formula), lab_t=lab_t, stock_mg=round(total, 3))
    return used


def refill(
    session: Session, formula: str, lot: str, mg: float, *, user: str | None = None, lab_t: float = 0.0
) -> None:
    if mg <= 0:
        raise InventoryError(f"refill of {formula} must add a positive mass, got {mg} mg")
    key = _key(formula)
    row = session.scalar(
        select(InventoryLotRow).where(InventoryLotRow.formula == key, InventoryLotRow.lot == lot)
    )
    if row is None:
        session.add(InventoryLotRow(formula=key, lot=lot, stock_mg=mg, initial_mg=mg))
    else:
        row.stock_mg += mg
        row.initial_mg += mg
    emit(session, "inventory.refilled", key, lab_t=lab_t, lot=lot, mg=mg, user=user)


def list_lots(session: Session) -> list[LotView]:
    rows = session.scalars(select(InventoryLotRow).order_by(InventoryLotRow.formula, InventoryLotRow.id))
    return [
        LotView(
            formula=r.formula,
            lot=r.lot,
            stock_mg=round(r.stock_mg, 4),
            initial_mg=r.initial_mg,
            low_mg=r.low_mg,
            location=r.location,
        )
        for r in rows
    ]
