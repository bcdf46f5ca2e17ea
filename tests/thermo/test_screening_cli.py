"""Target intake and screening, the CLI commands and `labos data fetch`."""

from __future__ import annotations

import json

import pytest
from labos.models.thermo import ThermoDB, read_targets, screen
from labos.models.thermo.sources import SourceError
from typer.testing import CliRunner

from labos.cli.main import app
from labos.errors import DataMissingError, FormulaError

runner = CliRunner()


def flat(res) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(res.output.split())


def test_screen_rejects_with_reasons():
    db = ThermoDB.default()
    inventory = ["BaCO3", "TiO2", "Li2CO3", "Fe2O3"]
    results = {
        r.formula: r
        for r in screen(["BaTiO3", "Li2O", "FeO", "UO2", "ZrO2", "Ba7Ti3O11"], inventory, db=db, air_db=db)
    }
    assert results["BaTiO3"].accepted and results["BaTiO3"].reasons == []
    assert not results["Li2O"].accepted
    assert any("CO2" in r for r in results["Li2O"].reasons)  # Li2O + CO2 -> Li2CO3
    fe = results["FeO"]
    assert fe.e_above_hull > 0.01 and any("O2" in r for r in fe.reasons)
    assert any("excluded" in r for r in results["UO2"].reasons)
    assert results["ZrO2"].missing_elements == ["Zr"]
    assert any("no formation energy" in r for r in results["Ba7Ti3O11"].reasons)
    assert all(r.accepted == (not r.reasons) for r in results.values())


def test_screen_threshold_and_hazard_list():
    db = ThermoDB.default()
    (r,) = screen(["FeO"], None, db=db, air_db=db, max_ehull=0.1, check_air=False)
    assert r.accepted  # 0.04 eV/atom above hull is under 0.1
    (r,) = screen(["PbO"], None, db=db, air_db=db, hazardous=["Pb"])
    assert not r.accepted and "Pb" in r.reasons[0]


def test_screen_uses_the_composition_model_when_asked():
    from labos.models.thermo.composition_model import CompositionModel, ModelConfig

    db = ThermoDB.default()
    entries = [e for e in db.entries if len(e.elements) > 1][:400]
    model = CompositionModel.train(
        [e.formula for e in entries],
        [e.formation_enthalpy_per_atom for e in entries],
        ModelConfig(epochs=5, n_models=2),
    )
    est = ThermoDB.from_sources(["exp"]).with_estimates(model)
    (r,) = screen(["Ba7Ti3O11"], None, db=est, air_db=est, check_air=False)
    assert r.is_estimate and r.e_above_hull is not None


def test_read_targets_formats(tmp_path, shared_data):
    text = tmp_path / "targets.txt"
    text.write_text("# candidates\nBaTiO3\n\nLiMn2O4  # spinel\n")
    assert [c.formula for c in read_targets(text)] == ["BaTiO3", "LiMn2O4"]
    text.write_text("BaTiO3\nBa2Xy\n")
    with pytest.raises(FormulaError, match=r"targets.txt:2"):
        read_targets(text)
    csv = tmp_path / "stable_materials_summary.csv"
    csv.write_text("Composition,MaterialId,NSites,Formation Energy Per Atom\nBa2Ti2O6,g-1,10,-3.4\n")
    (c,) = read_targets(csv)
    assert (c.formula, c.formation_energy_per_atom, c.source_id) == ("BaTiO3", -3.4, "g-1")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,energy\nBaTiO3,1\n")
    with pytest.raises(SourceError, match="missing column"):
        read_targets(bad)
    with pytest.raises(DataMissingError):
        read_targets(tmp_path / "nope.txt")
    cifs = read_targets(shared_data("xrd/autoanalyzer_example/references"))
    assert len(cifs) > 20 and all(c.volume_per_atom for c in cifs)


def test_cli_reaction_json_and_errors():
    res = runner.invoke(app, ["thermo", "reaction", "BaCO3 + TiO2 -> BaTiO3 + CO2", "--T", "1100", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["temperature_k"] == pytest.approx(1373.15)
    assert out["dG_per_atom_eV"] < 0 and out["dG_per_formula_unit_eV"] == pytest.approx(
        8 * out["dG_per_atom_eV"]
    )
    res = runner.invoke(app, ["thermo", "reaction", "BaCO3 + TiO2 -> BaTiO3", "--T", "25"])
    assert res.exit_code == 0 and "eV/atom" in res.stdout
    for bad, msg in [
        (["BaO -> BaTiO3"], "cannot be balanced"),
        (["Qq2O -> O2"], "not a chemical element"),
        (["BaCO3 + TiO2 -> BaTiO3", "--T", "-300"], "absolute zero"),
        (["BaCO3 TiO2"], "form"),
    ]:
        res = runner.invoke(app, ["thermo", "reaction", *bad])
        assert res.exit_code == 2, res.output
        assert msg in flat(res)


def test_cli_other_thermo_commands():
    res = runner.invoke(app, ["thermo", "ehull", "FeO", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["e_above_hull"] > 0
    res = runner.invoke(app, ["thermo", "pairs", "BaCO3", "TiO2", "--T", "900", "--json"])
    assert json.loads(res.stdout)[0]["energy_per_atom"] < 0
    res = runner.invoke(app, ["thermo", "phases", "Ba-C-O", "--T", "1200", "--json"])
    assert "BaO" in json.loads(res.stdout)
    res = runner.invoke(app, ["thermo", "melting", "Bi2O3", "--json"])
    assert json.loads(res.stdout)["temperature_c"] == pytest.approx(825)
    res = runner.invoke(app, ["thermo", "gibbs", "CO2", "--T", "800", "--json"])
    assert json.loads(res.stdout)["phase"] == "gas"


def test_cli_targets_screen(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("BaTiO3\nLi2O\n")
    res = runner.invoke(
        app, ["targets", "screen", str(f), "--json", "--source", "exp", "--inventory", "BaCO3,TiO2,Li2CO3"]
    )
    assert res.exit_code == 0, res.output
    out = {r["formula"]: r for r in json.loads(res.stdout)}
    assert out["BaTiO3"]["accepted"] and not out["Li2O"]["accepted"]
    res = runner.invoke(app, ["targets", "screen", str(tmp_path / "missing.csv")])
    assert res.exit_code == 2 and "does not exist" in flat(res)


def test_data_fetch_from_local_copy_checks_sha(tmp_path, monkeypatch, shared_data):
    from labos.config import reset_settings

    shared_data("literature/binary_oxide_melting_points.csv")
    monkeypatch.setenv("LABOS_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    src = shared_data("literature").parent
    res = runner.invoke(app, ["data", "fetch", "oxide-melting-points", "--from", str(src), "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "data/literature/binary_oxide_melting_points.csv").exists()
    # a corrupted copy is refused
    bad = tmp_path / "bad"
    (bad / "literature").mkdir(parents=True)
    (bad / "literature/binary_oxide_melting_points.csv").write_text("composition,melting_point\n")
    res = runner.invoke(app, ["data", "fetch", "oxide-melting-points", "--from", str(bad), "--force"])
    assert res.exit_code == 2 and "checksum" in flat(res)
    res = runner.invoke(app, ["data", "list", "--json"])
    status = {d["name"]: d["status"] for d in json.loads(res.stdout)}
    assert status["oxide-melting-points"] == "ok" and status["mp-summary"] == "missing"


def test_data_fetch_offline_names_the_url(tmp_path, monkeypatch):
    from labos.cli import data
    from labos.config import reset_settings

    monkeypatch.setenv("LABOS_DATA_DIR", str(tmp_path / "data"))
    reset_settings()
    ds = data.DATASETS["mp-summary"]
    url = "http://127.0.0.1:9/mp_materials_summary.csv"  # nothing listens on the discard port
    monkeypatch.setitem(data.DATASETS, "mp-summary", data.Dataset(ds.path, url, ds.sha256, ds.size, "", ""))
    res = runner.invoke(app, ["data", "fetch", "mp-summary"])
    assert res.exit_code == 2
    assert "127.0.0.1:9" in flat(res) and "offline" in flat(res)
