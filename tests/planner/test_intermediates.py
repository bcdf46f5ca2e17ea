"""Thermodynamic predictions for untested pairs (ARROWS3): flagged, overridden by evidence, explained."""

from __future__ import annotations

import pytest
from labos.planners import Planner, UnknownPhaseError
from labos.planners.energies import ThermoView
from labos.planners.errors import PlannerError
from labos.planners.pairwise import PREDICTED, PairwiseStore, ThermoPairGuess, pair_key, predict

from labos.domain import Outcome, PhaseResult

PAIR = pair_key("Li2O", "MnO2")


def _outcome(exp_id: str, phases: dict[str, float]) -> Outcome:
    return Outcome(
        experiment_id=exp_id,
        phases=[PhaseResult(phase_id=p, formula=p, weight_fraction=w) for p, w in phases.items()],
        target_formula="LiMn2O4",
        source="simulator",
    )


@pytest.fixture
def guess(fake_thermo):
    return ThermoPairGuess(ThermoView(fake_thermo))


def test_untested_pair_gets_its_most_exergonic_interface_products(guess):
    store = PairwiseStore()
    pred = predict(store, {"Li2O": 1.0, "MnO2": 1.0}, 800, guess=guess, target="LiMn2O4")
    assert [r.reactants for r in pred.applied] == [PAIR]
    step = pred.applied[0]
    assert step.source == PREDICTED and step.predicted and pred.predicted == [step] and not pred.observed
    assert "Li2MnO3" in pred.phase_set and step.energy_per_atom == pytest.approx(-0.9)
    assert "predicted from thermodynamics" in step.describe()
    # without a guess (retro-analysis, or no thermo data) nothing is predicted for an untested pair
    assert not predict(store, {"Li2O": 1.0, "MnO2": 1.0}, 800).applied
    # a pair the thermo data says nothing about stays as it is
    assert not predict(store, {"Li2CO3": 1.0, "MnO2": 1.0}, 800, guess=guess).applied


def test_observed_inert_result_overrides_the_thermodynamic_prediction(guess):
    store = PairwiseStore()
    store.record_inert(PAIR, 800, evidence="EXP-7")
    at_800 = predict(store, {"Li2O": 1.0, "MnO2": 1.0}, 800, guess=guess)
    assert not at_800.applied and at_800.phase_set == {"Li2O", "MnO2"}
    assert at_800.inert_pairs == [PAIR] and not at_800.unknown_pairs
    assert not predict(store, {"Li2O": 1.0, "MnO2": 1.0}, 700, guess=guess).applied
    # above the highest temperature seen inert the pair is untested again: thermodynamics applies
    assert predict(store, {"Li2O": 1.0, "MnO2": 1.0}, 900, guess=guess).predicted


def test_observed_reaction_overrides_the_predicted_products(guess):
    store = PairwiseStore()
    store.record_reaction(PAIR, {"LiMn2O4": 1.0}, 700, evidence="EXP-3")
    pred = predict(store, {"Li2O": 1.0, "MnO2": 4.0}, 750, guess=guess, target="LiMn2O4")
    assert pred.observed and not pred.predicted and "LiMn2O4" in pred.phase_set
    assert "observed in EXP-3" in pred.applied[0].describe()
    assert pred.before_target is not None and set(pred.before_target[0]) == {"Li2O", "MnO2"}
    # seen reacting only at 900: below that the onset is unknown, but the products are known, so no guess
    store2 = PairwiseStore()
    store2.record_reaction(PAIR, {"LiMn2O4": 1.0}, 900)
    assert not predict(store2, {"Li2O": 1.0, "MnO2": 4.0}, 700, guess=guess).applied


def test_predictions_never_enter_the_store(guess):
    rec = guess(PAIR, 800)
    assert rec is not None and guess(PAIR, 820) is rec  # cached per pair and temperature bucket
    store = PairwiseStore()
    with pytest.raises(PlannerError, match="not evidence"):
        store._put(rec)


def test_planner_explains_predicted_then_observed_and_is_less_sure_of_predictions(fake_thermo):
    space = [(["Li2O", "MnO2"], 700.0), (["Li2O", "MnO2"], 800.0)]
    planner = Planner("LiMn2O4", None, fake_thermo, space=space)
    cell = planner.cell_for(["Li2O", "MnO2"], 800)
    before = planner.view(cell)
    assert before.pred.predicted
    p = planner.ask()
    assert "predicted from thermodynamics" in p.explanation
    planner.tell(p, _outcome("EXP-1", {"Li2MnO3": 0.5, "Mn2O3": 0.5}))
    after = planner.view(cell)
    assert after.pred.observed and not after.pred.predicted
    assert after.prior_sd < before.prior_sd  # an observed reaction carries less uncertainty
    nxt = planner.ask()
    assert "observed in EXP-1" in nxt.explanation


def test_outcome_naming_an_unknown_phase(fake_thermo):
    planner = Planner("LiMn2O4", ["Li2O", "MnO2"], fake_thermo, temperatures_c=[800])
    p = planner.ask()
    # not a formula at all: a clear error naming the phase
    with pytest.raises(UnknownPhaseError, match="glassy phase"):
        planner.tell(p, _outcome("EXP-2", {"glassy phase": 0.6, "Li2O": 0.4}))
    # a formula missing from the thermo data: documented fallback, an estimated energy, flagged
    planner.tell(p, _outcome("EXP-2", {"Li4Mn5O12": 0.6, "Li2O": 0.4}))
    assert planner.thermo.is_estimated("Li4Mn5O12")
    assert planner.store.get("Li2O", "MnO2").products  # learned, and now overrides the prediction
