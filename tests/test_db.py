from sqlalchemy import inspect

from labos.db import connect, session_scope
from labos.db.repository import load_experiment, load_outcomes, record_event, save_experiment, save_outcome
from labos.domain import (
    DoseStep,
    Experiment,
    HeatSegment,
    HeatStep,
    Outcome,
    PhaseResult,
    Recipe,
    Sample,
    SampleEvent,
    Target,
)


def _experiment() -> Experiment:
    recipe = Recipe(
        steps=[
            DoseStep(precursor="Li2CO3", mass_mg=370),
            DoseStep(precursor="MnO2", mass_mg=1739),
            HeatStep(segments=[HeatSegment(ramp_c_per_min=5, target_c=700, dwell_min=480)]),
        ]
    )
    sample = Sample(position="dosing/1", history=[SampleEvent(position="dosing/1", cause="created")])
    return Experiment(
        target=Target(formula="LiMn2O4", source="mp", source_id="mp-25015"),
        recipe=recipe,
        samples=[sample],
        explanation="test",
    )


def test_round_trip(db_url):
    factory = connect(db_url)
    exp = _experiment()
    with session_scope(factory) as s:
        save_experiment(s, exp, planner="test")
        save_outcome(
            s,
            Outcome(
                experiment_id=exp.id,
                phases=[
                    PhaseResult(
                        phase_id="LiMn2O4_227", formula="LiMn2O4", spacegroup="Fd-3m", weight_fraction=0.8
                    )
                ],
                target_fraction=0.8,
                success=True,
            ),
        )
        record_event(s, "experiment.created", exp.id, planner="test")
    with session_scope(factory) as s:
        again = load_experiment(s, exp.id)
        outcomes = load_outcomes(s, exp.id)
    assert again.recipe == exp.recipe
    assert again.target == exp.target
    assert again.samples[0].history[0].cause == "created"
    assert outcomes[0].phases[0].spacegroup == "Fd-3m"
    assert outcomes[0].success


def test_migrations_match_metadata(db_url):
    """The schema Alembic builds is the schema the ORM declares (no table left out of a migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import labos.db.tables  # noqa: F401
    from labos.db.base import Base

    engine = connect(db_url).kw["bind"]
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert "experiments" in inspect(engine).get_table_names()
