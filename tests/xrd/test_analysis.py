"""Phase identification and quantification: simulated mixtures, a real weighed mixture, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from labos.models.xrd import AnalysisResult, CIFError, PhaseLibrary, XRDAnalysisError, analyze, read_pattern
from labos.simulator.xrd import Instrument, SimPhase, synthesize

from labos.domain import XRDPattern


def test_recovers_a_simulated_three_phase_mixture(library):
    truth = {"ZnO": 0.5, "TiO2": 0.35, "Al2O3": 0.15}
    spec = {
        "ZnO": SimPhase(fraction=0.5, size_nm=90, lattice_strain=0.002),
        "TiO2": SimPhase(fraction=0.35, size_nm=150),
        "Al2O3": SimPhase(fraction=0.15, size_nm=200, lattice_strain=-0.003),
    }
    pattern = synthesize(spec, Instrument(zero_shift=0.04, displacement_mm=0.1), seed=7, library=library)
    result = analyze(pattern, library, elements="Zn,Ti,Al,Mg,O")
    assert {p.formula for p in result.phases} == set(truth)
    for p in result.phases:
        assert p.weight_fraction == pytest.approx(truth[p.formula], abs=0.02)
        assert 0 < p.uncertainty < 0.05
    assert result.explained and result.confidence > 0.8
    assert result.rwp < 0.1
    outcome = result.to_outcome("exp-1", "ZnO")
    assert outcome.target_fraction == pytest.approx(0.5, abs=0.02)
    assert outcome.source == "xrd" and 0 <= outcome.confidence <= 1
    low = result.to_outcome("exp-1", "Al2O3")
    assert not low.success and low.confidence > 0.9


def test_two_phase_mixture_with_a_minor_phase(library):
    pattern = synthesize({"Li2CO3": 0.93, "Li2TiO3": 0.07}, seed=2, library=library)
    result = analyze(pattern, library, elements=["Li", "Ti", "C", "O"])
    found = {p.formula: p.weight_fraction for p in result.phases}
    assert set(found) == {"Li2CO3", "Li2TiO3"}
    assert found["Li2TiO3"] == pytest.approx(0.07, abs=0.02)


def test_candidates_that_cannot_explain_the_pattern(library):
    pattern = synthesize({"MgAl2O4": 1.0}, seed=1, library=library)
    result = analyze(pattern, library, elements="Zn,Ti,O")  # neither ZnO nor TiO2 is there
    assert not result.explained
    assert result.confidence < 0.5
    assert result.to_outcome("e", "ZnO").confidence < 0.5


def test_pattern_without_peaks(library):
    rng = np.random.default_rng(0)
    x = np.arange(10, 100, 0.02)
    y = rng.poisson(500 + 200 * np.exp(-x / 20)).astype(float)
    result = analyze(XRDPattern(two_theta=x.tolist(), counts=y.tolist()), library)
    assert result.phases == [] and not result.explained and result.confidence <= 0.1
    assert "no diffraction peaks" in result.notes[0]


def test_bad_input(library, tmp_path):
    pattern = synthesize({"ZnO": 1.0}, seed=0, library=library)
    with pytest.raises(XRDAnalysisError, match="no candidate phases made only of"):
        analyze(pattern, library, elements="Nb,O")
    with pytest.raises(XRDAnalysisError, match="XRDPattern"):
        analyze([1, 2, 3], library)
    short = XRDPattern(two_theta=list(np.linspace(2, 5, 40)), counts=[1.0] * 40)
    with pytest.raises(XRDAnalysisError, match="fewer than 50 points"):
        analyze(short, library)
    bad = tmp_path / "cifs"
    bad.mkdir()
    (bad / "junk.cif").write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n")
    with pytest.raises(CIFError, match="junk.cif"):
        PhaseLibrary.from_cif_dir(bad)
    (bad / "empty.cif").write_text("")
    with pytest.raises(CIFError, match="none of its 2 CIF files"):
        PhaseLibrary.from_cif_dir(bad)


def test_real_weighed_mixture(shared_data):
    lib = PhaseLibrary.from_cif_dir(shared_data("xrd/cifs"))
    pattern = read_pattern(shared_data("xrd/precursor_mixtures/TiO2_0p4009-ZnO_0p6010--2min.xrdml"))
    result = analyze(pattern, lib, elements="Ti,Zn,O")
    found = {p.formula: p.weight_fraction for p in result.phases}
    assert set(found) == {"TiO2", "ZnO"}
    assert found["TiO2"] == pytest.approx(0.4009, abs=0.03)
    assert result.explained


def test_plots_and_json(library, tmp_path):
    pattern = synthesize({"ZnO": 0.7, "MgO": 0.3}, seed=5, library=library)
    result = analyze(pattern, library, elements="Zn,Mg,O")
    assert isinstance(result, AnalysisResult)
    for suffix in (".png", ".svg"):
        out = result.plot(tmp_path / f"fit{suffix}")
        assert out.stat().st_size > 1000
    doc = result.to_dict(target="ZnO")
    json.dumps(doc)
    assert doc["target_fraction"] == pytest.approx(0.7, abs=0.03) and doc["success"] is True
    assert {p["formula"] for p in doc["phases"]} == {"ZnO", "MgO"}
