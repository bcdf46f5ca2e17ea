"""The pairwise-reaction store: retro-analysis, prediction, and persistence in the database."""

from __future__ import annotations

from labos.planners.pairwise import PairwiseStore, analyse, pair_key, predict
from labos.planners.store import load_store, save_store

from labos.db import connect, session_scope


def test_analysis_records_inert_pairs_and_reactions():
    store = PairwiseStore()
    result = analyse(
        store, ["Li2CO3", "MnO2"], 700, {"Li2MnO3": 0.4, "Mn2O3": 0.35, "Li2CO3": 0.25}, evidence="e1"
    )
    # Mn2O3 comes from MnO2 alone (a decomposition); Li2MnO3 needs both Li and Mn: the pair
    reactions = {pair: prods for pair, prods, _ in result.reactions}
    assert reactions[("MnO2",)] and "Mn2O3" in reactions[("MnO2",)]
    assert "Li2MnO3" in reactions[pair_key("Li2CO3", "MnO2")]
    assert store.status(pair_key("Li2MnO3", "Mn2O3"), 700) == "inert"
    assert store.status(pair_key("Li2MnO3", "Mn2O3"), 800) == "unknown"
    assert store.get("Li2CO3", "MnO2").evidence == ["e1"]
    # the onset interval narrows with more results
    analyse(store, ["Li2CO3", "MnO2"], 600, {"Li2CO3": 0.3, "MnO2": 0.7}, evidence="e0")
    rec = store.get("Li2CO3", "MnO2")
    assert rec.t_inert_max_c == 600 and rec.t_react_min_c == 700


def test_prediction_applies_known_reactions_in_onset_order():
    store = PairwiseStore()
    store.record_reaction(("MnO2",), {"Mn2O3": 1.0}, 550)
    store.record_reaction(pair_key("Li2CO3", "Mn2O3"), {"LiMn2O4": 1.0}, 700)
    low = predict(store, {"Li2CO3": 0.5, "MnO2": 2.0}, 600)
    assert low.phase_set == {"Li2CO3", "Mn2O3"}
    high = predict(store, {"Li2CO3": 0.5, "MnO2": 2.0}, 750)
    assert "LiMn2O4" in high.phase_set and high.phases["LiMn2O4"] > 0.9
    assert "CO2" in high.gases  # released by the balanced pair reaction
    assert store.still_valid(high)
    store.record_inert(pair_key("LiMn2O4", "Mn2O3"), 800)
    assert not store.still_valid(high)


def test_extrapolation_below_the_lowest_seen_temperature():
    store = PairwiseStore()
    store.record_reaction(pair_key("BaO", "TiO2"), {"BaTiO3": 1.0}, 900)
    assert store.reaction(pair_key("BaO", "TiO2"), 800) is None
    assert store.reaction(pair_key("BaO", "TiO2"), 800, extrapolate_c=150) is not None
    store.record_inert(pair_key("BaO", "TiO2"), 800)
    assert store.reaction(pair_key("BaO", "TiO2"), 800, extrapolate_c=150) is None


def test_store_persists_and_merges(db_url):
    factory = connect(db_url)
    a = PairwiseStore()
    a.record_reaction(pair_key("Li2CO3", "MnO2"), {"Li2MnO3": 1.0}, 700, evidence="e1")
    a.record_inert(pair_key("Li2CO3", "MnO2"), 500)
    with session_scope(factory) as s:
        assert save_store(s, a) == 1
    b = PairwiseStore()
    b.record_reaction(pair_key("Li2CO3", "MnO2"), {"Li2MnO3": 1.0}, 650, evidence="e7")
    b.record_inert(pair_key("Li2CO3", "MnO2"), 600)
    with session_scope(factory) as s:
        save_store(s, b)
    with session_scope(factory) as s:
        again = load_store(s)
        other = load_store(s, atmosphere="Ar")
    rec = again.get("Li2CO3", "MnO2")
    assert (rec.t_inert_max_c, rec.t_react_min_c) == (600, 650)
    assert set(rec.evidence) == {"e1", "e7"} and "Li2MnO3" in rec.products
    assert len(other) == 0
    assert [r.key for r in again.producers("Li2MnO3")] == [rec.key]


def test_planner_starts_from_a_stored_campaign(fake_thermo, inventory, db_url):
    from labos.planners import Planner

    store = PairwiseStore()
    store.record_reaction(pair_key("Li2O", "MnO2"), {"Li2MnO3": 0.5, "Mn3O4": 0.5}, 600)
    with session_scope(connect(db_url)) as s:
        save_store(s, store)
    with session_scope(connect(db_url)) as s:
        loaded = load_store(s)
    planner = Planner("LiMn2O4", inventory, fake_thermo, store=loaded, temperatures_c=[800])
    view = planner.view(planner.cell_for(["Li2O", "MnO2"], 800))
    # stored knowledge is used: Li2O is used up, leftover MnO2 may still react with Li2MnO3
    assert {"Li2MnO3", "Mn3O4", "MnO2"} == set(view.pred.phase_set) and not view.dead
    for pair in (("Li2MnO3", "Mn3O4"), ("Li2MnO3", "MnO2"), ("Mn3O4", "MnO2")):
        planner.store.record_inert(pair_key(*pair), 1000)
    view = planner.view(planner.cell_for(["Li2O", "MnO2"], 800))
    assert view.dead and view.prior <= 0.05  # every pair left is known to be inert: a dead end


def test_partial_decomposition_and_observed_fractions_persist(db_url):
    store = PairwiseStore()
    # Ba(OH)2 mostly reacted with TiO2; the little BaO beside BaTiO3 came from a competing decomposition
    analyse(store, ["Ba(OH)2", "TiO2"], 700, {"BaTiO3": 0.6, "Ba2TiO4": 0.3, "BaO": 0.05, "TiO2": 0.05})
    dec = store.get("Ba(OH)2")
    assert dec is not None and dec.partial and "BaO" in dec.products
    pair = store.get("Ba(OH)2", "TiO2")
    assert pair.max_fraction["BaTiO3"] == 0.6 and not pair.partial
    # a partial decomposition leaves some of the phase for its other reactions
    pred = predict(store, {"Ba(HO)2": 1.0}, 700)
    assert pred.phases.get("Ba(HO)2", 0) > 0.2 and "BaO" in pred.phase_set
    factory = connect(db_url)
    with session_scope(factory) as s:
        save_store(s, store)
    with session_scope(factory) as s:
        again = load_store(s)
    assert again.get("Ba(OH)2").partial and again.get("Ba(OH)2", "TiO2").max_fraction["BaTiO3"] == 0.6
