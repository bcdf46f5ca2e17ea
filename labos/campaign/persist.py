"""The campaign's rows: the campaign and its targets (core tables), decisions and run sessions.

Every write is its own short transaction on the lab's store, so a process killed at any point leaves
a state a new process can continue from: a decision is written *before* its experiment is handed
to the lab (submitting is idempotent), and outcomes live in the lab's own tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.campaign.config import CampaignConfig
from labos.campaign.records import CampaignDecisionRow, CampaignSessionRow
from labos.db.records import CampaignRow, ExperimentRow, OutcomeRow, TargetRow
from labos.domain import Outcome, new_id, parse_formula
from labos.errors import LabosError


class CampaignNotFound(LabosError):
    """No campaign with this id in the database."""


def create_campaign(s: Session, cfg: CampaignConfig, campaign_id: str | None = None) -> CampaignRow:
    row = CampaignRow(
        id=campaign_id or new_id("cmp"),
        name=cfg.name,
        status="running",
        config={"campaign": cfg.model_dump(mode="json")},
    )
    s.add(row)
    for f in cfg.targets:
        s.add(TargetRow(campaign_id=row.id, formula=f, source="campaign", status="pending", data={}))
    s.flush()
    return row


def load_campaign(s: Session, campaign_id: str) -> CampaignRow:
    row = s.get(CampaignRow, campaign_id)
    if row is None:
        raise CampaignNotFound(f"no campaign {campaign_id!r} in this database (see `labos campaign list`)")
    return row


def config_of(row: CampaignRow) -> CampaignConfig:
    """The stored configuration; a campaign submitted from the console (targets and a budget) gets defaults."""
    stored = dict(row.config or {})
    data = dict(stored.get("campaign") or {})
    if not data:  # submitted elsewhere: targets from its rows, known settings from its config
        formulas = [t.formula for t in row.targets]
        if not formulas:
            raise LabosError(f"campaign {row.id} has no targets to work on")
        data = {k: v for k, v in stored.items() if k in CampaignConfig.model_fields and v is not None}
        data.update(name=row.name, targets=formulas)
    return CampaignConfig.model_validate(data)


def target_rows(s: Session, campaign_id: str) -> dict[str, TargetRow]:
    rows = s.scalars(select(TargetRow).where(TargetRow.campaign_id == campaign_id).order_by(TargetRow.id))
    return {parse_formula(r.formula): r for r in rows}


def update_target(s: Session, campaign_id: str, formula: str, status: str, **data: Any) -> None:
    row = target_rows(s, campaign_id).get(parse_formula(formula))
    if row is None:
        row = TargetRow(campaign_id=campaign_id, formula=formula, source="campaign", data={})
        s.add(row)
    row.status = status
    row.data = {**(row.data or {}), **data}
    if "e_above_hull" in data and data["e_above_hull"] is not None:
        row.e_above_hull = max(0.0, float(data["e_above_hull"]))


def decisions(s: Session, campaign_id: str) -> list[CampaignDecisionRow]:
    return list(
        s.scalars(
            select(CampaignDecisionRow)
            .where(CampaignDecisionRow.campaign_id == campaign_id)
            .order_by(CampaignDecisionRow.seq)
        )
    )


def last_outcomes(s: Session, experiment_ids: Iterable[str]) -> dict[str, Outcome]:
    """The latest outcome of each experiment that has one."""
    ids = list(experiment_ids)
    out: dict[str, Outcome] = {}
    for i in range(0, len(ids), 500):
        rows = s.scalars(
            select(OutcomeRow).where(OutcomeRow.experiment_id.in_(ids[i : i + 500])).order_by(OutcomeRow.id)
        )
        for r in rows:
            out[r.experiment_id] = Outcome.model_validate(r.data)
    return out


def experiment_status(s: Session, experiment_ids: Iterable[str]) -> dict[str, str]:
    ids = list(experiment_ids)
    out: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        for eid, st in s.execute(
            select(ExperimentRow.id, ExperimentRow.status).where(ExperimentRow.id.in_(ids[i : i + 500]))
        ):
            out[eid] = st
    return out


def start_session(s: Session, campaign_id: str, lab_s: float, detail: dict[str, Any]) -> int:
    row = CampaignSessionRow(campaign_id=campaign_id, lab_start_s=lab_s, status="running", detail=detail)
    s.add(row)
    s.flush()
    return row.id


def end_session(s: Session, session_id: int, wall_s: float, lab_s: float, status: str, **detail: Any) -> None:
    row = s.get(CampaignSessionRow, session_id)
    if row is None:
        return
    row.wall_s = wall_s
    row.lab_end_s = lab_s
    row.status = status
    row.detail = {**(row.detail or {}), **detail}


def sessions(s: Session, campaign_id: str) -> list[CampaignSessionRow]:
    return list(
        s.scalars(
            select(CampaignSessionRow)
            .where(CampaignSessionRow.campaign_id == campaign_id)
            .order_by(CampaignSessionRow.id)
        )
    )


def list_campaign_rows(s: Session) -> list[CampaignRow]:
    return list(s.scalars(select(CampaignRow).order_by(CampaignRow.created_at.desc())))
