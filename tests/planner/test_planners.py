"""The ask/tell API of every planner: determinism, batches, explanations, learning, bad input."""

from __future__ import annotations

import pytest
from labos.planners import (
    PLANNERS,
    Planner,
    PlannerError,
    PlannerExhaustedError,
    UnknownPhaseError,
    get_planner,
)
from labos.planners.base import NO_PRIORS_FLAG, NO_THERMO_FLAG
from labos.planners.chemistry import canonical
from labos.planners.errors import InfeasibleTargetError

from labos.domain import DoseStep, HeatStep, Outcome, PhaseResult, XRDStep

from .conftest import synthetic_products


def _outcome(exp_id: str, phases: dict[str, float]) -> Outcome:
    return Outcome(
        experiment_id=exp_id,
        phases=[PhaseResult(phase_id=p, formula=p, weight_fraction=w) for p, w in phases.items()],
        target_formula="LiMn2O4",
        source="simulator",
    )


def _run(planner, n: int) -> list[tuple[tuple[str, ...], float, float, int]]:
    out = []
    for i in range(n):
        p = planner.ask()
        li = next(x for x in p.precursors if "Li" in x)
        mn = next(x for x in p.precursors if "Li" not in x)
        planner.tell(p, _outcome(f"e{i}", synthetic_products(li, mn, p.temperature_c)))
        heats = [s for s in p.recipe.steps if isinstance(s, HeatStep)]
        dwell = max(seg.dwell_min for h in heats for seg in h.segments)
        # a cell is the set, temperature, dwell and whether it is reground and reheated
        out.append((tuple(sorted(p.precursors)), p.temperature_c, dwell, len(heats)))
    return out


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_every_planner_asks_tells_and_is_deterministic(name, fake_thermo, inventory):
    kw = dict(seed=3, temperatures_c=[600, 700, 800, 900])
    a = _run(get_planner(name, "LiMn2O4", inventory, fake_thermo, None, **kw), 6)
    b = _run(get_planner(name, "LiMn2O4", inventory, fake_thermo, None, **kw), 6)
    assert a == b
    assert len(set(a)) == len(a)  # never proposes a cell twice


def test_proposal_has_a_complete_recipe_and_explanation(fake_thermo, inventory):
    planner = Planner("LiMn2O4", inventory, fake_thermo, seed=0, batch_mg=1200)
    p = planner.ask()
    doses = [s for s in p.recipe.steps if isinstance(s, DoseStep)]
    heat = [s for s in p.recipe.steps if isinstance(s, HeatStep)]
    assert {d.precursor for d in doses} == set(p.precursors)
    assert heat and heat[0].max_temperature_c == p.temperature_c
    assert isinstance(p.recipe.steps[-1], XRDStep)
    assert "ΔG" in p.explanation and NO_PRIORS_FLAG in p.explanation
    assert 0 <= p.expected_yield <= 1 and p.success_probability is not None


def test_batch_is_diverse_and_exhausts_cleanly(fake_thermo, inventory):
    planner = get_planner(
        "labos", "LiMn2O4", ["Li2CO3", "MnO2"], fake_thermo, seed=1, temperatures_c=[700, 800, 900]
    )
    batch = planner.ask_batch(3)
    assert len({(tuple(p.precursors), p.temperature_c) for p in batch}) == 3
    with pytest.raises(PlannerExhaustedError):
        planner.ask()
    with pytest.raises(PlannerError):
        planner.ask_batch(0)


def test_learning_avoids_a_dead_end(fake_thermo, inventory):
    """After Li2O + MnO2 ends in Li2MnO3 + Mn3O4, sets with predicted dead ends drop in rank."""
    planner = Planner("LiMn2O4", inventory, fake_thermo, seed=0, temperatures_c=[800, 900])
    planner.observe(["Li2O", "MnO2"], 900, _outcome("x1", {"Li2MnO3": 0.45, "Mn3O4": 0.55}))
    rec = planner.store.get("Li2O", "MnO2")
    assert rec is not None and canonical("Li2MnO3") in rec.products and rec.t_react_min_c == 900
    assert planner.store.status(("Li2MnO3", "Mn3O4"), 900) == "inert"
    cell = planner.cell_for(["Li2O", "MnO2"], 800)
    view = planner.view(cell)
    assert view.dead  # predicted Li2MnO3 + Mn3O4, which already failed at 900 °C
    nxt = planner.ask()
    assert "Li2O" not in nxt.precursors or nxt.temperature_c != 800


def test_partial_yield_raises_neighbours_and_a_dead_end_lowers_them(fake_thermo, inventory):
    planner = Planner("LiMn2O4", inventory, fake_thermo, seed=0, temperatures_c=[700, 800, 900])
    hot = planner.cell_for(["LiOH", "MnO2"], 900)
    other = planner.cell_for(["LiNO3", "MnO"], 900)
    (hot0, other0), _, _ = planner.posterior([hot, other])
    planner.observe(["LiOH", "MnO2"], 700, _outcome("x1", {"LiMn2O4": 0.35, "Li2MnO3": 0.25, "Mn2O3": 0.4}))
    (hot1, _), _, _ = planner.posterior([hot, other])
    assert hot1 > hot0 + 0.05  # a partial yield at 700 °C makes the same set at 900 °C more promising
    planner.observe(["LiNO3", "MnO"], 700, _outcome("x2", {"Li2MnO3": 0.45, "Mn3O4": 0.55}))
    (_, other2), _, _ = planner.posterior([hot, other])
    assert other2 < other0 - 0.1  # no target at all: the hotter cell of that set drops


def test_recipe_tuning_after_partial_yield(fake_thermo):
    planner = Planner("LiMn2O4", ["Li2CO3", "MnO2"], fake_thermo, seed=0, temperatures_c=[700])
    planner.observe(["Li2CO3", "MnO2"], 700, _outcome("x1", {"LiMn2O4": 0.3, "Mn2O3": 0.7}))
    p = planner.ask()  # the grid is exhausted: the tuner proposes a new recipe for the set
    assert "Bayesian optimisation" in p.explanation
    assert (p.temperature_c, p.dwell_min) != (700, planner.default_dwell_min) or len(p.recipe.heats) == 2


def test_unknown_phase_is_a_clear_error(fake_thermo, inventory):
    planner = Planner("LiMn2O4", inventory, fake_thermo)
    p = planner.ask()
    with pytest.raises(UnknownPhaseError, match="amorphous"):
        planner.tell(p, _outcome("e1", {"amorphous": 0.5}))


def test_bad_targets_and_names(fake_thermo, inventory):
    with pytest.raises(InfeasibleTargetError, match="Ti"):
        Planner("Li2TiO3", inventory, fake_thermo)
    with pytest.raises(PlannerError, match="unknown planner"):
        get_planner("genetic", "LiMn2O4", inventory, fake_thermo)
    with pytest.raises(PlannerError, match="furnace"):
        Planner("LiMn2O4", inventory, fake_thermo, temperatures_c=[1500])


def test_without_thermodynamics_the_planner_says_so(inventory):
    p = Planner("LiMn2O4", inventory, None).ask()
    assert NO_THERMO_FLAG in p.flags


def test_unknown_phase_energy_is_estimated_and_flagged(fake_thermo):
    planner = Planner("LiMn2O4", ["Li2CO3", "MnO2"], fake_thermo, temperatures_c=[800])
    planner.observe(["Li2CO3", "MnO2"], 800, _outcome("x1", {"LiMn2O4": 0.4, "Li4Mn5O12": 0.6}))
    assert planner.thermo.is_estimated("Li4Mn5O12")
    g = planner.thermo.g_per_atom("Li4Mn5O12", 1073.15)
    assert g < 0  # the hull of known Li–Mn–O phases, not zero


def test_ask_tell_is_fast_enough(fake_thermo, inventory):
    """ask/tell is milliseconds once energies are cached (loose bound: this is not a benchmark)."""
    import time

    planner = Planner("LiMn2O4", inventory, fake_thermo, seed=0)
    _run(planner, 3)
    t = time.perf_counter()
    _run(planner, 5)
    assert (time.perf_counter() - t) / 5 < 1.0


def test_pairwise_competition_lowers_a_set(fake_thermo, inventory):
    planner = get_planner("thermo", "LiMn2O4", inventory, fake_thermo, temperatures_c=[800])
    bad = planner.cell_for(["Li2O", "MnO2"], 800)
    good = planner.cell_for(["Li2CO3", "MnO2"], 800)
    assert planner.selectivity(bad.candidate) > 0 >= planner.selectivity(good.candidate)
    assert planner._score(bad)[0] == pytest.approx(
        planner.reaction_energy(bad) + planner.selectivity(bad.candidate)
    )
    labos = Planner("LiMn2O4", inventory, fake_thermo, temperatures_c=[800])
    assert "prefers a side reaction" in labos._decision(bad, 0.1, 0.1, labos.view(bad)).why
