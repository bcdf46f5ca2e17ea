"""Closed-loop autonomous campaigns: targets in, XRD-confirmed materials out.

    from labos.campaign import run_campaign
    report = run_campaign(["SrTiO3", "MgAl2O4"], None, budget_per_target=6, days=10)
    report.write_html("campaign.html")

* :func:`run_campaign` / :class:`CampaignRunner` — screen, plan, feed the furnaces, analyse, learn,
  stop, report; resuming a campaign id continues it (:mod:`labos.campaign.runner`).
* :class:`CampaignConfig` — what a campaign is asked to do (stored with it).
* :func:`build_report` / :class:`CampaignReport` — per-target outcome and the campaign's numbers,
  as JSON and self-contained HTML (:mod:`labos.campaign.report`).
* :mod:`labos.campaign.bench` — the A-Lab-scale benchmark (``labos bench campaign``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# name -> module; loaded on first use so that importing the tables (labos.campaign.records) stays light.
_EXPORTS = {
    "CampaignConfig": "labos.campaign.config",
    "LabSpec": "labos.campaign.config",
    "CampaignRunner": "labos.campaign.runner",
    "Progress": "labos.campaign.runner",
    "run_campaign": "labos.campaign.runner",
    "CampaignReport": "labos.campaign.report",
    "build_report": "labos.campaign.report",
    "CampaignNotFound": "labos.campaign.persist",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from labos.campaign.config import CampaignConfig, LabSpec  # noqa: F401
    from labos.campaign.persist import CampaignNotFound  # noqa: F401
    from labos.campaign.report import CampaignReport, build_report  # noqa: F401
    from labos.campaign.runner import CampaignRunner, Progress, run_campaign  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'labos.campaign' has no attribute {name!r}")
    return getattr(import_module(module), name)
