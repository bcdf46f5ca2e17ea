"""Replay export (the planner's replay format), benchmark targets and the ``labos sim`` CLI."""

from __future__ import annotations

import json

import pytest
from labos.simulator.demo_chemistry import demo_inventory
from labos.simulator.replay import ReplayExportError, export_replay, summarize
from labos.simulator.targets import TargetSelectionError, benchmark_inventory, benchmark_targets
from labos.simulator.world import World
from typer.testing import CliRunner

from labos.domain import parse_formula

TEMPS = (700.0, 1000.0)


@pytest.fixture(scope="module")
def demo() -> World:
    return World.demo(seed=11)


def check_replay_contract(data: dict) -> None:
    """Exactly the keys and types of the replay format in the planner issue."""
    assert set(data) == {"target", "atmosphere", "hold_time_h", "success", "experiments"}
    assert isinstance(data["target"], str) and parse_formula(data["target"])
    assert data["atmosphere"] == "air"
    assert isinstance(data["hold_time_h"], int | float)
    assert set(data["success"]) == {"target_fraction_at_least"}
    assert data["experiments"]
    for exp in data["experiments"]:
        assert set(exp) == {"precursors", "temperature_c", "products"}
        assert all(isinstance(p, str) for p in exp["precursors"])
        assert isinstance(exp["temperature_c"], int | float)
        assert exp["products"] and all(0 < v <= 1 for v in exp["products"].values())
        assert abs(sum(exp["products"].values()) - 1) < 0.01
        for name in exp["products"]:
            parse_formula(name)


def test_replay_export_follows_the_contract(demo):
    data = export_replay(demo, "MgTiO3", demo_inventory(), temperatures_c=TEMPS)
    check_replay_contract(data)
    sets = {tuple(e["precursors"]) for e in data["experiments"]}
    assert {("MgO", "TiO2"), ("MgCO3", "TiO2"), ("Mg(OH)2", "TiO2")} <= sets
    assert len(data["experiments"]) == len(sets) * len(TEMPS)
    # the grid is the world's truth: the same cell synthesised directly agrees
    again = export_replay(demo, "MgTiO3", demo_inventory(), temperatures_c=TEMPS)
    assert again == data
    s = summarize(data)
    assert s["cells"] == len(data["experiments"])


def test_replay_with_explicit_sets_and_bad_input(demo):
    data = export_replay(demo, "SrTiO3", precursor_sets=[["SrCO3", "TiO2"]], temperatures_c=(900,))
    assert [e["precursors"] for e in data["experiments"]] == [["SrCO3", "TiO2"]]
    with pytest.raises(ReplayExportError, match="temperatures"):
        export_replay(demo, "SrTiO3", demo_inventory(), temperatures_c=(1500,))
    with pytest.raises(ReplayExportError, match="inventory"):
        export_replay(demo, "SrTiO3")
    with pytest.raises(ReplayExportError, match="cannot be balanced"):
        export_replay(demo, "SrTiO3", precursor_sets=[["MgO", "TiO2"]])


def test_benchmark_targets_are_deterministic_and_covered():
    inv = benchmark_inventory()
    a = benchmark_targets(8, seed=3)
    assert a == benchmark_targets(8, seed=3)
    assert a != benchmark_targets(8, seed=4)
    assert len(set(a)) == 8
    supplied = set().union(*(set(_cations(p.formula)) for p in inv))
    for t in a:
        assert 2 <= len(_cations(t)) <= 3
        assert _cations(t) <= supplied
    with pytest.raises(TargetSelectionError, match="positive"):
        benchmark_targets(0)
    with pytest.raises(TargetSelectionError, match="eligible"):
        benchmark_targets(100_000)


def _cations(formula: str) -> set[str]:
    from pymatgen.core import Composition

    return {str(e) for e in Composition(formula).elements} - {"O", "C", "H", "N"}


def test_cli_replay_dataset_and_synthesize(tmp_path):
    from labos.cli.main import app

    out = tmp_path / "srtio3.json"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "sim",
            "replay-dataset",
            "--seed",
            "2",
            "--target",
            "SrTiO3",
            "--out",
            str(out),
            "--temperatures",
            "800,1100",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["chemistry"] == "demo" and summary["cells"] == 2
    check_replay_contract(json.loads(out.read_text()))

    res = runner.invoke(
        app,
        [
            "sim",
            "synthesize",
            "--chemistry",
            "demo",
            "-p",
            "CaCO3=573",
            "-p",
            "TiO2=427",
            "-T",
            "1100",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    truth = json.loads(res.stdout.strip().splitlines()[-1])
    assert "CaTiO3" in truth["phases"]

    res = runner.invoke(app, ["sim", "synthesize", "--chemistry", "demo", "-p", "CaCO3=-1", "-T", "900"])
    assert res.exit_code != 0
    assert "positive" in res.output
