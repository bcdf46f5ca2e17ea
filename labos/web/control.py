"""Write side of the console over the core tables: submitting a campaign for the campaign runner.

Lab control (pause/resume/stop, intervention answers) goes through ``labos.web.labgate``.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from labos.db.records import CampaignRow, TargetRow
from labos.db.repository import record_event
from labos.domain import new_id
from labos.web import queries
from labos.web.schemas import CampaignSubmit, CampaignSummary

SUBMITTED = "submitted"


def campaign_report(campaign_id: str, db_url: str) -> dict:
    """The report ``labos.campaign`` builds for campaigns it ran (501 where that package is absent)."""
    from pydantic import ValidationError

    from labos.errors import NotImplementedYet
    from labos.web.errors import NotFound

    try:
        from labos.campaign.persist import CampaignNotFound
        from labos.campaign.report import build_report
    except ImportError as exc:
        raise NotImplementedYet(
            f"campaign reports not implemented: labos.campaign is missing ({exc})"
        ) from None
    try:
        return build_report(campaign_id, db_url).model_dump(mode="json")
    except CampaignNotFound as exc:
        raise NotFound(str(exc)) from None
    except ValidationError:
        raise NotFound(f"campaign {campaign_id} has no report: it was not set up by labos.campaign") from None


def submit_campaign(session: Session, body: CampaignSubmit, *, submitted_by: str) -> CampaignSummary:
    """Queue a campaign: one campaign row with status 'submitted', one target row per formula, and a
    'campaign.submitted' event; ``labos campaign run --resume <id>`` runs it (labos.campaign reads
    the targets and budget from these rows)."""
    row = CampaignRow(
        id=new_id("cmp"),
        name=body.name,
        status=SUBMITTED,
        config={**body.config, "budget_per_target": body.budget_per_target, "submitted_by": submitted_by},
    )
    session.add(row)
    for formula in body.targets:
        session.add(TargetRow(campaign_id=row.id, formula=formula, source="operator", status="pending"))
    session.flush()
    record_event(session, "campaign.submitted", row.id, name=body.name, targets=body.targets, by=submitted_by)
    session.flush()
    return queries.list_campaigns_by_id(session, row.id)
