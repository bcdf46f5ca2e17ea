"""``labos plan`` and ``labos bench replay`` from the command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from labos.cli.main import app

runner = CliRunner()


def test_plan_json_without_data(tmp_path, monkeypatch):
    monkeypatch.setenv("LABOS_DATA_DIR", str(tmp_path))  # no literature dataset: thermodynamics only
    from labos.config import reset_settings

    reset_settings()
    res = runner.invoke(
        app,
        ["plan", "LiMn2O4", "--inventory", "Li2CO3,MnO2,Mn2O3", "-n", "2", "--thermo", "exp", "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["candidate_sets"] == 2 and len(data["proposals"]) == 2
    p = data["proposals"][0]
    assert p["recipe"]["steps"][0]["kind"] == "dose" and p["explanation"]
    assert "unavailable" in data["priors"]
    assert any("thermodynamics alone" in f for f in p["flags"])


def test_plan_reports_missing_element(tmp_path):
    res = runner.invoke(
        app, ["plan", "LiMn2O4", "--inventory", "Li2CO3,TiO2", "--thermo", "none", "--no-priors"]
    )
    assert res.exit_code == 2
    assert "Mn" in res.output and "Traceback" not in res.output


def test_plan_inventory_file(tmp_path):
    inv = tmp_path / "shelf.json"
    inv.write_text(json.dumps([{"formula": "Li2CO3", "purity": 0.995}, "MnO2"]))
    res = runner.invoke(
        app,
        [
            "plan",
            "LiMn2O4",
            "-i",
            str(inv),
            "--thermo",
            "none",
            "--no-priors",
            "--planner",
            "thermo",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["proposals"][0]["precursors"] == ["Li2CO3", "MnO2"]
    missing = runner.invoke(app, ["plan", "LiMn2O4", "-i", str(tmp_path / "none.json"), "--thermo", "none"])
    assert missing.exit_code == 2 and "does not exist" in " ".join(missing.output.split())


def test_bench_replay_json(tmp_path, replay_dict):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(replay_dict))
    res = runner.invoke(
        app,
        [
            "bench",
            "replay",
            str(path),
            "--planner",
            "random,thermo",
            "--seeds",
            "2",
            "--thermo",
            "none",
            "--no-priors",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert set(data["planners"]) == {"random", "thermo"}
    assert data["random_expectation"]["first"] == (80 + 1) / (8 + 1)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"target": "LiMn2O4"}))
    res = runner.invoke(app, ["bench", "replay", str(bad), "--thermo", "none", "--no-priors"])
    assert res.exit_code == 2 and "experiments" in res.output
