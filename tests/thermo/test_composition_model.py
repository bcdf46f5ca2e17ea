"""The composition-only model: trains fast on a small set, caches by data checksum, predicts with σ."""

from __future__ import annotations

import numpy as np
import pytest
from labos.models.thermo import ThermoDB
from labos.models.thermo.composition_model import CompositionModel, ModelConfig, evaluate, featurize

CFG = ModelConfig(epochs=15, n_models=2, hidden=64)


@pytest.fixture(scope="module")
def data():
    entries = [e for e in ThermoDB.default().entries if len(e.elements) > 1]
    rng = np.random.default_rng(0)
    pick = rng.choice(len(entries), 800, replace=False)
    return [entries[i].formula for i in pick], np.array(
        [entries[i].formation_enthalpy_per_atom for i in pick]
    )


def test_features_are_fractions_plus_statistics():
    x = featurize(["BaTiO3", "O2"])
    assert x.shape[0] == 2
    assert x[0, :94].sum() == pytest.approx(1.0)
    assert x[0, 55] == pytest.approx(0.2)  # Ba is Z = 56


def test_learns_better_than_the_mean_with_honest_uncertainty(data):
    formulas, y = data
    res = evaluate(formulas, y, CFG, seed=1)
    for split in ("random", "chemical_system"):
        assert res[split]["ratio_to_baseline"] < 0.8
        assert res[split]["fraction_within_2sigma"] > 0.6


def test_cached_by_data_checksum(data):
    formulas, y = data
    a = CompositionModel.cached(formulas[:300], y[:300], CFG)
    b = CompositionModel.cached(formulas[:300], y[:300], CFG)  # loaded from the cache file
    assert a.data_key == b.data_key
    assert np.allclose(a.predict(["BaTiO3"])[0], b.predict(["BaTiO3"])[0])
    c = CompositionModel.cached(formulas[:300], y[:300] + 0.01, CFG)
    assert c.data_key != a.data_key


def test_estimates_are_flagged_in_the_database(data):
    formulas, y = data
    model = CompositionModel.train(formulas, y, CFG)
    db = ThermoDB.from_sources(["exp"]).with_estimates(model)
    e = db.entry("Ba7Ti3O11")
    assert e.is_estimate and e.source == "model" and e.uncertainty_per_atom > 0
    assert -5 < e.formation_enthalpy_per_atom < 0
    assert not db.entry("BaTiO3").is_estimate
