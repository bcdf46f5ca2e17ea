"""``labos xrd analyze`` / ``labos xrd simulate`` end to end."""

from __future__ import annotations

import json

import pytest
from labos.models.xrd.io import write_xrdml
from labos.simulator.xrd import synthesize
from typer.testing import CliRunner

from labos.cli.main import app


@pytest.fixture
def refs(tmp_path, structures):
    from pymatgen.io.cif import CifWriter

    folder = tmp_path / "refs"
    folder.mkdir()
    for name in ("ZnO", "TiO2", "MgO", "Al2O3"):
        CifWriter(structures[name]).write_file(folder / f"{name}.cif")
    (folder / "broken.cif").write_text("data_broken\n")
    return folder


def test_analyze_json(tmp_path, refs, library):
    f = write_xrdml(synthesize({"ZnO": 0.3, "TiO2": 0.7}, seed=1, library=library), tmp_path / "s1.xrdml")
    res = CliRunner().invoke(
        app,
        [
            "xrd",
            "analyze",
            str(f),
            "--refs",
            str(refs),
            "--elements",
            "Zn,Ti,O",
            "--target",
            "TiO2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output.strip().splitlines()[-1])
    assert doc["file"] == str(f)
    assert {p["formula"] for p in doc["phases"]} == {"ZnO", "TiO2"}
    for key in ("name", "formula", "spacegroup", "weight_fraction", "uncertainty"):
        assert key in doc["phases"][0]
    assert doc["target_fraction"] == pytest.approx(0.7, abs=0.03)
    assert doc["success"] is True and doc["rwp"] > 0 and doc["seconds"] > 0


def test_analyze_bad_file_and_simulate(tmp_path, refs):
    empty = tmp_path / "empty.xrdml"
    empty.write_text("")
    res = CliRunner().invoke(app, ["xrd", "analyze", str(empty), "--refs", str(refs), "--json"])
    assert res.exit_code == 2 and "empty" in res.output
    out = tmp_path / "sim.xy"
    res = CliRunner().invoke(app, ["xrd", "simulate", "ZnO=0.5", "MgO=0.5", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) > 1000
    res = CliRunner().invoke(app, ["xrd", "simulate", "ZnO=half", "--out", str(out)])
    assert res.exit_code == 2 and "not a number" in res.output
