import pytest
from pydantic import ValidationError

from labos.domain import (
    DoseStep,
    HeatSegment,
    HeatStep,
    Outcome,
    PhaseResult,
    Precursor,
    PrecursorSet,
    Recipe,
    Target,
    XRDPattern,
    XRDStep,
    parse_formula,
)
from labos.errors import FormulaError


def test_formula_reduction():
    assert parse_formula("Ba2Ti2O6") == "BaTiO3"
    assert parse_formula("Ca3(PO4)2") == "Ca3(PO4)2"


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("", "empty"),
        ("XzO2", "'Xz' is not a chemical element"),
        ("Ca3(PO4", "unbalanced brackets"),
        ("Ba$TiO3", "characters"),
    ],
)
def test_bad_formula_names_the_problem(formula, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(formula)
    with pytest.raises(ValidationError, match=message):
        Target(formula=formula)


def test_negative_mass_is_rejected():
    with pytest.raises(ValidationError, match="positive number of mg"):
        DoseStep(precursor="TiO2", mass_mg=-5)


def test_heat_above_rating_is_rejected():
    with pytest.raises(ValidationError, match="above the furnace rating of 1200"):
        HeatStep(segments=[HeatSegment(ramp_c_per_min=5, target_c=1500, dwell_min=60)])
    step = {"segments": [{"ramp_c_per_min": 5, "target_c": 1500, "dwell_min": 60}]}
    HeatStep.model_validate(step, context={"furnace_max_c": 1600})
    with pytest.raises(ValidationError, match="rating of 1000"):
        HeatStep.model_validate(step, context={"furnace_max_c": 1000})


def test_recipe_roundtrip_and_duration():
    recipe = Recipe(
        steps=[
            DoseStep(precursor="BaCO3", mass_mg=1000),
            DoseStep(precursor="TiO2", mass_mg=405),
            {"kind": "mix", "method": "shaker", "duration_min": 10},
            HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=1025, dwell_min=240)]),
            XRDStep(),
        ]
    )
    again = Recipe.model_validate_json(recipe.model_dump_json())
    assert again == recipe
    assert again.precursors == ["BaCO3", "TiO2"]
    assert again.heat.duration_min() == pytest.approx(100 + 240 + 200)


def test_unknown_step_kind():
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        Recipe(steps=[{"kind": "explode"}])


def test_precursor_and_sets():
    with pytest.raises(ValidationError, match="purity"):
        Precursor(formula="TiO2", purity=1.5)
    with pytest.raises(ValidationError, match="same compound twice"):
        PrecursorSet(precursors=["TiO2", "Ti2O4"])
    assert PrecursorSet(precursors=["TiO2", "BaCO3"]).key == ("BaCO3", "TiO2")


def test_pattern_validation():
    with pytest.raises(ValidationError, match="strictly increasing"):
        XRDPattern(two_theta=[1, 2, 3, 3, 4, 5, 6, 7, 8, 9], counts=[1] * 10)
    with pytest.raises(ValidationError, match="counts has 9"):
        XRDPattern(two_theta=list(range(10)), counts=[1] * 9)
    with pytest.raises(ValidationError, match="2θ range is empty"):
        XRDStep(two_theta_start=80, two_theta_end=10)


def test_outcome_fractions():
    phases = [
        PhaseResult(phase_id="a", formula="BaTiO3", weight_fraction=0.7),
        PhaseResult(phase_id="b", formula="TiO2", weight_fraction=0.3),
    ]
    out = Outcome(experiment_id="e", phases=phases, target_fraction=0.7, success=True)
    assert out.fraction_of("Ba2Ti2O6") == pytest.approx(0.7)
    with pytest.raises(ValidationError, match="sum to 1.400"):
        Outcome(
            experiment_id="e", phases=phases + [PhaseResult(phase_id="c", formula="BaO", weight_fraction=0.4)]
        )
