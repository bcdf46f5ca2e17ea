"""Literature priors on a small subset of the text-mined dataset (the full set is for the benchmark)."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pytest
from labos.models.literature import ConditionModel, ElementMedianBaseline, PrecursorRecommender
from labos.models.literature.dataset import iter_reactions, load_records, material_amounts, parse_reaction
from labos.models.literature.years import doi_year

DATASET = "literature/solid-state_dataset_2019-12-03.json.xz"


@pytest.fixture(scope="module")
def subset():
    from tests.conftest import shared_file

    return load_records(shared_file(DATASET), limit=600)


@pytest.mark.parametrize(
    "doi,year",
    [
        ("10.1016/j.jssc.2009.04.013", 2009),
        ("10.1016/S0022-3093(00)00007-7", 2000),
        ("10.1007/s10854-017-8299-y", 2017),
        ("10.1039/c7tc03031b", 2017),
        ("10.1021/acs.chemmater.6b01756", 2016),
        ("10.1021/cm049831k", 2004),
        ("10.1149/2.0781714jes", 2017),
        ("10.1103/PhysRevB.95.174121", 2017),
        ("10.1111/j.1551-2916.2009.03073.x", 2009),
        ("10.1002/aenm.201100149", 2011),
        ("10.1038/s41598-017-16711-9", 2017),
        ("10.1149/1.3183880", None),
    ],
)
def test_doi_years(doi, year):
    assert doi_year(doi) == year


def test_amount_expressions_and_dopants():
    target = {
        "composition": [
            {"formula": "x", "elements": {"La": "1-x", "Sr": "x", "Mn": "1", "O": "3"}, "amount": "1"}
        ],
        "amounts_vars": {"x": {"values": [0.2]}},
        "elements_vars": {},
        "additives": ["Eu2+"],
    }
    assert material_amounts(target) == pytest.approx({"La": 0.8, "Sr": 0.2, "Mn": 1.0, "O": 3.0})
    rx = {
        "doi": "10.1016/j.x.2010.01.001",
        "target": target,
        "precursors": [
            {"composition": [{"elements": {"La": "2", "O": "3"}, "amount": "1"}]},
            {"composition": [{"elements": {"Sr": "1", "C": "1", "O": "3"}, "amount": "1"}]},
            {"composition": [{"elements": {"Mn": "1", "O": "2"}, "amount": "1"}]},
            {"composition": [{"elements": {"O": "2"}, "amount": "1"}]},
        ],
        "operations": [
            {
                "type": "HeatingOperation",
                "conditions": {
                    "heating_temperature": [{"values": [900, 1200]}],
                    "heating_time": [{"values": [12]}],
                },
            }
        ],
    }
    rec = parse_reaction(rx)
    assert rec is not None and rec.year == 2010
    assert "Eu" in rec.elements and rec.elements["Eu"] < 0.01  # the dopant is an ingredient
    assert rec.precursors == ("La2O3", "MnO2", "SrCO3")  # O2 is not a powder
    assert rec.temperature_c == 1200 and rec.dwell_h == 12
    assert rec.dopants == {"Eu"} and rec.target == "Sr0.2La0.8Mn1O3:Eu"  # doped: a target of its own


def test_dopant_parsing_and_variable_targets():
    from labos.models.literature.dataset import dopant_elements, split_target, target_fractions

    from labos.errors import FormulaError

    notes = ["Eu3+x", "xCe3+", "0.02Dy2+", "Tb0.01", "Smx", "0.1%Gd3+", "MnO2", "Bx", "x", "3+"]
    assert dopant_elements(notes) == {"Eu", "Ce", "Dy", "Tb", "Sm", "Gd", "Mn", "B"}
    assert split_target("SrAl2O4:Eu2+, Dy3+") == ("SrAl2O4", frozenset({"Eu", "Dy"}))
    fr = target_fractions("SrAl2O4:Eu,Dy")
    assert fr["Eu"] == pytest.approx(0.01 * 7 / 7.14) and sum(fr.values()) == pytest.approx(1.0)
    assert target_fractions("SrAl2O4") == pytest.approx({"Sr": 1 / 7, "Al": 2 / 7, "O": 4 / 7})
    for bad in ("SrAl2O4:Xq", "SrAl2O4:", "SrAl2O4:Eu,,"):
        with pytest.raises(FormulaError, match="dopant"):
            split_target(bad)
    # a variable reported first at x = 0 is read where every element is present
    ca_w = {
        "composition": [{"elements": {"Ca": "1", "W": "1-x", "Mo": "x", "O": "4"}, "amount": "1"}],
        "amounts_vars": {"x": {"values": [0, 0.1, 1.0]}},
    }
    assert material_amounts(ca_w) == pytest.approx({"Ca": 1, "W": 0.9, "Mo": 0.1, "O": 4})
    # an element placeholder is read as the element(s) the precursors supply
    m = {"composition": [{"elements": {"Ba": "0.9", "M": "0.1", "Ti": "1", "O": "3"}, "amount": "1"}]}
    m["elements_vars"] = {"M": ["K", "La", "Zn"]}
    assert "Zn" in material_amounts(m, frozenset({"Ba", "Zn", "Ti", "O"}))
    assert "K" in material_amounts(m)


def test_hydrate_after_a_full_stop_is_water_of_crystallisation():
    from labos.models.literature.dataset import reduced_formula

    # as the dataset has it: "FeC2O4.2H2O" split into FeC2O4.2 + H2O
    oxalate = {
        "composition": [{"formula": "FeC2O4.2H2O", "elements": {"Fe": "1", "C": "2", "O": "5.2", "H": "2"}}]
    }
    assert reduced_formula(material_amounts(oxalate)) == reduced_formula({"Fe": 1, "C": 2, "O": 6, "H": 4})
    nitrate = {"composition": [{"formula": "Mg(NO3)2.6H2O", "elements": {"Mg": "1", "N": "2.6", "O": "8.8"}}]}
    assert material_amounts(nitrate) == pytest.approx({"Mg": 1, "N": 2, "O": 12, "H": 12})
    # a decimal subscript without water is left as written
    peroxide = {"composition": [{"formula": "Na2O1.14", "elements": {"Na": "2", "O": "1.14"}}]}
    assert material_amounts(peroxide) == pytest.approx({"Na": 2, "O": 1.14})


def test_subset_reads_quickly(subset):
    assert len(subset) > 400
    assert all(r.precursors and r.elements for r in subset)
    assert sum(r.temperature_c is not None for r in subset) > 300


def test_recommender_on_subset(subset):
    model = PrecursorRecommender("learned", epochs=3).fit(subset)
    recs = model.recommend("BaTiO3", k=5)
    assert recs and all("Ba" in "".join(r.precursors) and "Ti" in "".join(r.precursors) for r in recs)
    assert recs == sorted(recs, key=lambda r: -r.score)
    only = model.recommend("BaTiO3", k=5, inventory=["BaO", "TiO2", "BaCO3"])
    assert only and all(set(r.precursors) <= {"BaO", "TiO2", "BaCO3"} for r in only)
    raw = PrecursorRecommender("raw").fit(subset)
    known = subset[0]
    assert known.precursors in [r.precursors for r in raw.recommend(known.target, k=5)]


def test_condition_model_beats_nothing_silly(subset):
    model = ConditionModel().fit(subset)
    pred = model.predict({"Ba": 0.2, "Ti": 0.2, "O": 0.6}, ["BaCO3", "TiO2"])
    assert 500 < pred.temperature_c < 1600 and 0 < pred.dwell_h < 100
    base = ElementMedianBaseline().fit(subset)
    assert 500 < base.predict(["Ba", "Ti"]) < 1600


def test_priors_are_cached_by_checksum(tmp_path, monkeypatch):
    """Training happens once per dataset version; the cache is keyed by the file's checksum."""
    import labos.models.literature.priors as priors_mod

    from labos.config import reset_settings
    from tests.conftest import shared_file

    monkeypatch.setenv("LABOS_CACHE_DIR", str(tmp_path / "cache"))
    reset_settings()
    small = tmp_path / "small.json.xz"
    reactions = list(iter_reactions(shared_file(DATASET), limit=250))
    with lzma.open(small, "wt") as fh:
        json.dump({"reactions": reactions}, fh)
    monkeypatch.setattr(priors_mod.PrecursorRecommender, "__init__", _fast_init)
    stale = priors_mod.cache_path(priors_mod.checksum(small)).with_name("priors-v0-" + "0" * 16 + ".pkl")
    older = priors_mod.cache_path(priors_mod.checksum(small))
    older = older.with_name(older.name.replace(f"-v{priors_mod.MODEL_VERSION}-", "-v1-"))
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"another dataset's priors")
    older.write_bytes(b"an earlier model version")
    first = priors_mod.get_priors(small)
    cached = list((tmp_path / "cache" / "literature").glob("priors-*.pkl"))
    assert sorted(cached) == sorted([priors_mod.cache_path(priors_mod.checksum(small)), stale])
    priors_mod._LOADED.clear()
    again = priors_mod.get_priors(small)
    assert again.info == first.info  # loaded from the pickle, not retrained
    assert again.predict_conditions("BaTiO3", ["BaCO3", "TiO2"]).temperature_c == pytest.approx(
        first.predict_conditions("BaTiO3", ["BaCO3", "TiO2"]).temperature_c
    )


def _fast_init(self, embedding="learned", epochs=2, seed=0, hidden=32, dim=16, rerank=True):
    self.embedding, self.epochs, self.seed, self.hidden, self.dim = embedding, 2, seed, 32, 16
    self.rerank = rerank
    self.weights, self.labels = [], []


def test_without_the_dataset_priors_are_absent(tmp_path, monkeypatch):
    from labos.models.literature import load_priors

    from labos.config import reset_settings

    monkeypatch.setenv("LABOS_DATA_DIR", str(tmp_path))
    reset_settings()
    priors, why = load_priors()
    assert priors is None and "labos data fetch" in why


def test_two_stage_recommender_pool_and_reranker(subset):
    """The pool adds per-element alternatives; the trained re-ranker orders it; sets cover the target."""
    from labos.models.literature.features import nonvolatile
    from labos.models.literature.rerank import FEATURES

    model = PrecursorRecommender("learned", epochs=3).fit(subset)
    assert model.reranker is not None and model.reranker.model is not None
    pool = model._pool({"Ba": 0.2, "Ti": 0.2, "O": 0.6}, None)
    assert any(c.sources == 0 for c in pool.sets.values())  # alternatives no neighbour used verbatim
    sets, feats = model._featurize(pool)
    assert feats.shape == (len(sets), len(FEATURES)) and np.isfinite(feats).all()
    for target in ("BaTiO3", "LiCoO2", "Sr2MgSi2O7"):
        recs = model.recommend(target, k=5)
        need = frozenset(
            {"BaTiO3": {"Ba", "Ti"}, "LiCoO2": {"Li", "Co"}, "Sr2MgSi2O7": {"Sr", "Mg", "Si"}}[target]
        )
        assert recs and len({r.precursors for r in recs}) == len(recs)
        assert all(frozenset().union(*(nonvolatile(p) for p in r.precursors)) == need for r in recs)
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    doped = model.recommend("Sr2MgSi2O7:Eu2+", k=5)  # the dopant needs its own precursor
    assert doped and all(any("Eu" in nonvolatile(p) for p in r.precursors) for r in doped)
    assert not any("Eu" in nonvolatile(p) for r in model.recommend("Sr2MgSi2O7", k=5) for p in r.precursors)
    vote_only = PrecursorRecommender("learned", epochs=3, rerank=False).fit(subset)
    assert vote_only.reranker is None and vote_only.recommend("BaTiO3", k=3)


def test_recommender_bad_target(subset):
    from labos.errors import FormulaError

    model = PrecursorRecommender("raw", rerank=False).fit(subset[:100])
    with pytest.raises(FormulaError):
        model.recommend("Xq2O3")
    with pytest.raises(FormulaError, match="dopant"):
        model.recommend("SrAl2O4:Qz")


def test_completion_keeps_the_route_of_the_kept_precursors(monkeypatch):
    """A nitrate set is completed with a nitrate, although the oxide is the more common Mg precursor."""
    import labos.models.literature.recommender as rec_mod
    from labos.models.literature.dataset import SynthesisRecord

    def rec(i: int, target: str, elements: dict[str, float], precursors: tuple[str, ...]) -> SynthesisRecord:
        return SynthesisRecord(
            f"10.0/x{i}", 2010, target, elements, tuple(sorted(precursors)), None, None, None
        )

    records = []
    for i in range(8):
        records.append(rec(i, f"SrMg{i}", {"Sr": 0.3, "Mg": 0.2, "O": 0.5}, ("SrCO3", "MgO")))
    for i in range(8, 12):
        records.append(rec(i, f"SrMgN{i}", {"Sr": 0.2, "Mg": 0.3, "O": 0.5}, ("Sr(NO3)2", "Mg(NO3)2")))
    for i in range(12, 16):
        records.append(rec(i, f"SrY{i}", {"Sr": 0.2, "Y": 0.3, "O": 0.5}, ("Sr(NO3)2", "Y(NO3)3")))
    for i in range(16, 22):
        records.append(rec(i, f"SrYO{i}", {"Sr": 0.3, "Y": 0.2, "O": 0.5}, ("SrCO3", "Y2O3")))
    model = PrecursorRecommender("raw", rerank=False).fit(records)
    probs = model.label_probabilities(np.zeros(1))
    need = frozenset({"Sr", "Y", "Mg"})
    kept = ("Sr(NO3)2", "Y(NO3)3")
    assert "Mg(NO3)2" in model._complete(kept, need, probs, None)
    monkeypatch.setattr(rec_mod, "COMPLETION_PMI", 0.0)  # target likelihood alone: the common oxide
    assert "MgO" in model._complete(kept, need, probs, None)


def test_element_fraction_neighbours_lend_a_second_vote(monkeypatch):
    """Sets of the nearest targets by element fractions join the pool with their own vote feature."""
    import labos.models.literature.recommender as rec_mod
    from labos.models.literature.dataset import SynthesisRecord
    from labos.models.literature.rerank import FEATURES

    def rec(i: int, target: str, elements: dict[str, float], precursors: tuple[str, ...]) -> SynthesisRecord:
        return SynthesisRecord(
            f"10.0/y{i}", 2010, target, elements, tuple(sorted(precursors)), None, None, None
        )

    records = [rec(0, "SrTiO3", {"Sr": 0.2, "Ti": 0.2, "O": 0.6}, ("SrCO3", "TiO2"))] * 3
    records += [rec(1, "Sr2TiO4", {"Sr": 2 / 7, "Ti": 1 / 7, "O": 4 / 7}, ("Sr(NO3)2", "TiO2"))] * 3
    model = PrecursorRecommender("learned", epochs=1, rerank=False).fit(records)
    learned_nearest = model.targets.index("SrTiO3")
    monkeypatch.setattr(rec_mod, "N_NEIGHBOURS", 1)
    monkeypatch.setattr(model, "emb", np.eye(2))
    monkeypatch.setattr(model, "_embed", lambda x: np.eye(2)[[learned_nearest]])
    pool = model._pool({"Sr": 2 / 7, "Ti": 1 / 7, "O": 4 / 7}, None)  # Sr2TiO4's own fractions
    by_learned, by_fractions = pool.sets[("SrCO3", "TiO2")], pool.sets[("Sr(NO3)2", "TiO2")]
    assert by_learned.vote > 0 and by_learned.vote_raw == 0
    assert by_fractions.vote == 0 and by_fractions.vote_raw > 0 and by_fractions.min_substitutions == 0
    sets, feats = model._featurize(pool)
    assert feats[sets.index(("Sr(NO3)2", "TiO2")), FEATURES.index("rel_vote_raw")] == pytest.approx(1.0)
    assert feats[sets.index(("SrCO3", "TiO2")), FEATURES.index("log_set_targets")] == pytest.approx(np.log(2))


def test_fractional_compound_formulas_name_the_compound():
    from labos.models.literature.dataset import compound_formula

    assert compound_formula({"Co": 1, "O": 4 / 3}) == "Co3O4"  # "CoO4/3"
    assert compound_formula({"Fe": 11.4, "O": 17.1}) == "Fe2O3"  # "5.7Fe2O3"
    assert compound_formula({"Li": 2, "C": 1, "O": 3}) == "Li2CO3"
    assert compound_formula({"Mn": 1, "O": 1.839}) == "Mn1O1.839"  # no small integer formula: as written


def test_priors_benchmark_reports_the_spread_over_seeds(subset, monkeypatch):
    """``labos bench priors --seeds N``: seed 0 is the headline; per-seed, mean, min and max beside it."""
    import labos.models.literature.evaluate as ev

    years = sorted(r.year for r in subset if r.year is not None)
    split = years[len(years) * 2 // 3]
    monkeypatch.setattr(ev, "_records", lambda path: tuple(subset))
    monkeypatch.setattr(ev.PrecursorRecommender, "__init__", _fast_init)
    out = ev.evaluate(split_year=split, seeds=2)
    spread = out["recommender"]["learned_embedding_over_seeds"]
    assert spread["seeds"] == 2 and spread["per_seed"][0] == out["recommender"]["learned_embedding"]
    for key in ("top1", "top5"):
        values = [run[key] for run in spread["per_seed"]]
        assert spread["min"][key] == min(values) <= spread["mean"][key] <= max(values) == spread["max"][key]
    assert "learned_embedding_over_seeds" not in ev.evaluate(split_year=split)["recommender"]
    with pytest.raises(ValueError, match="seeds"):
        ev.evaluate(split_year=split, seeds=0)
    with pytest.raises(ValueError, match="empty"):
        ev.evaluate(split_year=years[-1])


def test_the_element_fraction_view_is_derived_not_pickled(subset):
    """The second view is as large as the embedding: a pickled model recomputes it and ranks the same."""
    import pickle

    model = PrecursorRecommender("learned", epochs=2).fit(subset)
    before = [r.precursors for r in model.recommend("BaTiO3", k=5)]
    assert "emb_raw" in model.__dict__
    loaded = pickle.loads(pickle.dumps(model))
    assert "emb_raw" not in loaded.__dict__
    assert [r.precursors for r in loaded.recommend("BaTiO3", k=5)] == before
