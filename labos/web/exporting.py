"""Exports for scripts and reports: flat experiment tables (CSV/JSON), raw XRD files, analysis plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.db.records import ExperimentRow
from labos.domain import Outcome
from labos.models.xrd.fitfile import fit_path
from labos.web import plots, queries
from labos.web.errors import NotFound


def experiment_rows(session: Session, campaign_id: str | None = None) -> list[dict[str, Any]]:
    """One flat row per experiment with its recipe facts and the outcome that speaks for it."""
    stmt = select(ExperimentRow).order_by(ExperimentRow.created_at, ExperimentRow.id)
    if campaign_id:
        stmt = stmt.where(ExperimentRow.campaign_id == campaign_id)
    exps = list(session.scalars(stmt))
    outcomes = queries.preferred_outcomes(session, (e.id for e in exps))
    rows = []
    for e in exps:
        steps = e.recipe.get("steps", [])
        doses = [s for s in steps if s.get("kind") == "dose"]
        heats = [s for s in steps if s.get("kind") == "heat"]
        segs = [seg for h in heats for seg in h.get("segments", [])]
        o = outcomes.get(e.id)
        out = Outcome.model_validate(o.data) if o else None
        rows.append(
            {
                "experiment_id": e.id,
                "campaign_id": e.campaign_id or "",
                "target": e.target_formula,
                "status": e.status,
                "planner": e.planner or "",
                "precursors": ";".join(str(d.get("precursor")) for d in doses),
                "masses_mg": ";".join(f"{float(d.get('mass_mg', 0)):.2f}" for d in doses),
                "max_temperature_c": max((float(s["target_c"]) for s in segs), default=""),
                "dwell_min": sum(float(s.get("dwell_min", 0)) for s in segs) if segs else "",
                "atmosphere": heats[0].get("atmosphere", "") if heats else "",
                "outcome_source": o.source if o else "",
                "target_fraction": o.target_fraction if o else "",
                "success": o.success if o else "",
                "rwp": out.rwp if out and out.rwp is not None else "",
                "phases": ";".join(f"{p.formula}:{p.weight_fraction:.3f}" for p in out.phases) if out else "",
                "xrd_file": (o.xrd_file or "") if o else "",
                "created_at": e.created_at.isoformat(),
            }
        )
    return rows


def copy_xrd_files(session: Session, dest: Path, campaign_id: str | None = None) -> list[Path]:
    """Copy every recorded raw XRD file (and its fit, when kept) into ``dest/<experiment>/``."""
    written = []
    for row in experiment_rows(session, campaign_id):
        src = Path(row["xrd_file"]) if row["xrd_file"] else None
        if src is None or not src.is_file():
            continue
        folder = dest / row["experiment_id"]
        folder.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy2(src, folder / src.name)))
        fit = fit_path(src)
        if fit.is_file():
            written.append(Path(shutil.copy2(fit, folder / fit.name)))
    return written


def plot_experiment(session: Session, experiment_id: str, dest: Path) -> list[Path]:
    """Draw the XRD fit and the furnace profile of one experiment as PNG files (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    furnace = plots.furnace_profile(session, experiment_id)
    if furnace.setpoint.t_min:
        fig, ax = plt.subplots(figsize=(7, 3.2), dpi=120)
        ax.plot(
            [t / 60 for t in furnace.setpoint.t_min], furnace.setpoint.temperature_c, "--", label="setpoint"
        )
        if furnace.measured:
            ax.plot(
                [t / 60 for t in furnace.measured.t_min], furnace.measured.temperature_c, label="measured"
            )
        ax.set_xlabel("time (h)")
        ax.set_ylabel("temperature (°C)")
        ax.set_title(f"{experiment_id}: furnace")
        ax.legend()
        fig.tight_layout()
        path = dest / f"{experiment_id}_furnace.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    try:
        xrd = plots.xrd_plot(session, experiment_id)
    except NotFound:
        return written
    fig, ax = plt.subplots(figsize=(8, 4), dpi=120)
    ax.plot(xrd.two_theta, xrd.observed, ".", ms=2, color="#1f2937", label="observed")
    if xrd.calculated:
        ax.plot(
            xrd.two_theta,
            xrd.calculated,
            color="#dc2626",
            lw=1,
            label=f"fit (Rwp {100 * (xrd.rwp or 0):.1f}%)",
        )
    if xrd.difference:
        offset = min(xrd.observed) - max(xrd.difference)
        ax.plot(
            xrd.two_theta, [d + offset for d in xrd.difference], color="#6b7280", lw=0.8, label="difference"
        )
    for p in xrd.phases:
        if p.curve:
            ax.plot(
                xrd.two_theta, p.curve, lw=0.8, label=f"{p.formula} {100 * (p.weight_fraction or 0):.0f} wt%"
            )
    ax.set_xlabel("2θ (°)")
    ax.set_ylabel("counts")
    ax.set_title(f"{experiment_id}: XRD")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = dest / f"{experiment_id}_xrd.png"
    fig.savefig(path)
    plt.close(fig)
    written.append(path)
    return written


def write_json(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))
    return path
