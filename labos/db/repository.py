"""Conversions between domain objects and rows; the only place that knows both shapes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.db.records import EventRow, ExperimentRow, OutcomeRow, SampleEventRow, SampleRow
from labos.domain import Experiment, Outcome, Recipe, Sample, SampleEvent, Target


def save_experiment(session: Session, exp: Experiment, planner: str | None = None) -> ExperimentRow:
    row = session.get(ExperimentRow, exp.id) or ExperimentRow(id=exp.id)
    row.campaign_id = exp.campaign_id
    row.target_formula = exp.target.formula
    row.target = exp.target.model_dump(mode="json")
    row.recipe = exp.recipe.model_dump(mode="json")
    row.status = exp.status.value
    row.explanation = exp.explanation
    row.planner = planner
    row.created_at = exp.created_at
    session.add(row)
    for s in exp.samples:
        save_sample(session, s, experiment_id=exp.id)
    return row


def save_sample(session: Session, sample: Sample, experiment_id: str | None = None) -> SampleRow:
    row = session.get(SampleRow, sample.id)
    if row is None:
        row = SampleRow(
            id=sample.id, container=sample.container, position=sample.position, experiment_id=experiment_id
        )
        session.add(row)
        for ev in sample.history:
            row.history.append(SampleEventRow(at=ev.at, position=ev.position, cause=ev.cause))
    return row


def load_sample(session: Session, sample_id: str) -> Sample:
    row = session.get(SampleRow, sample_id)
    if row is None:
        raise KeyError(f"no sample {sample_id!r}")
    return Sample(
        id=row.id,
        container=row.container,
        position=row.position,
        history=[SampleEvent(at=e.at, position=e.position, cause=e.cause) for e in row.history],
    )


def load_experiment(session: Session, exp_id: str) -> Experiment:
    row = session.get(ExperimentRow, exp_id)
    if row is None:
        raise KeyError(f"no experiment {exp_id!r}")
    return Experiment(
        id=row.id,
        target=Target.model_validate(row.target),
        recipe=Recipe.model_validate(row.recipe),
        samples=[load_sample(session, s.id) for s in row.samples],
        status=row.status,
        explanation=row.explanation,
        campaign_id=row.campaign_id,
        created_at=row.created_at,
    )


def save_outcome(session: Session, outcome: Outcome, xrd_file: str | None = None) -> OutcomeRow:
    row = OutcomeRow(
        experiment_id=outcome.experiment_id,
        source=outcome.source,
        target_fraction=outcome.target_fraction,
        success=outcome.success,
        data=outcome.model_dump(mode="json"),
        xrd_file=xrd_file,
    )
    session.add(row)
    return row


def load_outcomes(session: Session, exp_id: str) -> list[Outcome]:
    rows = session.scalars(
        select(OutcomeRow).where(OutcomeRow.experiment_id == exp_id).order_by(OutcomeRow.id)
    )
    return [Outcome.model_validate(r.data) for r in rows]


def record_event(session: Session, kind: str, subject: str | None = None, **data) -> EventRow:
    row = EventRow(kind=kind, subject=subject, data=data)
    session.add(row)
    return row
