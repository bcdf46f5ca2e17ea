"""The replay benchmark: the dataset format (a contract), the oracle, and planners on it."""

from __future__ import annotations

import json

import pytest
from labos.planners.errors import ReplayFormatError
from labos.planners.replay import ReplayOracle, benchmark, load_replay, random_expectation, run_one


def test_load_and_oracle(replay_dict, tmp_path):
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(replay_dict))
    ds = load_replay(path)
    oracle = ReplayOracle(ds)
    assert oracle.n_cells == 4 * 5 * 4
    assert len(oracle.success_keys) == 4 * 2  # LiOH/Li2CO3 x MnO2/Mn2O3 at 800 and 900 °C
    out = oracle.outcome(["MnO2", "LiOH"], 900, "r1")  # order of precursors does not matter
    assert out.success and out.target_fraction == pytest.approx(0.85)
    with pytest.raises(ReplayFormatError, match="not measured"):
        oracle.outcome(["MnO2", "LiOH"], 850, "r2")


def test_compositions_percent_and_duplicates():
    ds = load_replay(
        {
            "target": "LaH3O3",
            "experiments": [
                {
                    "precursors": ["La2O3", "H2O"],
                    "temperature_c": 100,
                    "products": {"La(OH)3": 60, "La2O3": 40},
                },
                {
                    "precursors": ["H2O", "La2O3"],
                    "temperature_c": 100,
                    "products": {"La(OH)3": 0.4, "La2O3": 0.5},
                },
            ],
        }
    )
    oracle = ReplayOracle(ds)
    assert oracle.n_cells == 1
    frac = oracle.target_fraction(next(iter(oracle.cells)))
    assert frac == pytest.approx((0.6 + 0.4 / 0.9) / 2)  # percent read, renormalised, then averaged
    assert any("percent" in n for n in oracle.notes) and any("2 times" in n for n in oracle.notes)


@pytest.mark.parametrize(
    "data,problem",
    [
        ({"experiments": []}, "target"),
        ({"target": "LiMn2O4", "experiments": []}, "experiments"),
        (
            {"target": "LiMn2O4", "experiments": [{"precursors": ["Li2CO3"], "temperature_c": 600}]},
            "products",
        ),
        (
            {
                "target": "LiMn2O4",
                "experiments": [{"precursors": ["Xx2O"], "temperature_c": 6, "products": {}}],
            },
            "Xx",
        ),
        (
            {
                "target": "LiMn2O4",
                "experiments": [{"precursors": ["MnO"], "temperature_c": 6, "products": {"MnO": -1}}],
            },
            ">= 0",
        ),
        (
            {
                "target": "LiMn2O4",
                "experiments": [{"precursors": ["MnO"], "temperature_c": 6, "products": {"glass": 1}}],
            },
            "glass",
        ),
        ({"target": "LiMn2O4", "atmosphere": "plasma", "experiments": []}, "atmosphere"),
    ],
)
def test_format_errors_name_the_problem(data, problem):
    with pytest.raises(ReplayFormatError, match=problem):
        load_replay(data)


def test_not_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ReplayFormatError, match="not valid JSON"):
        load_replay(bad)
    with pytest.raises(ReplayFormatError, match="does not exist"):
        load_replay(tmp_path / "missing.json")


def test_random_expectation_formula():
    exp = random_expectation(188, 10)
    assert exp["first"] == pytest.approx(189 / 11)
    assert exp["all"] == pytest.approx(10 * 189 / 11)  # ≈ 172, as in the ARROWS3 paper
    assert exp["within_10"] == pytest.approx(10 * 10 / 188)


def test_benchmark_reports_every_planner(replay_dict, fake_thermo):
    result = benchmark(load_replay(replay_dict), ["random", "labos"], seeds=2, thermo=fake_thermo)
    assert result["cells"] == 80 and result["successes"] == 8
    for name in ("random", "labos"):
        s = result["planners"][name]
        assert s["seeds"] == 2 and s["first_success"]["median"] is not None
        assert {"within_10", "within_20", "within_50", "auc", "ms_per_experiment"} <= set(s)


def test_learning_planner_beats_random_on_structured_chemistry(replay_dict, fake_thermo):
    """Averaged over seeds, labos finds all eight successes far sooner than random search."""
    oracle = ReplayOracle(load_replay(replay_dict))
    k = len(oracle.success_keys)
    labos = [run_one("labos", oracle, s, fake_thermo)["successes_at"][k - 1] for s in range(3)]
    rand = [run_one("random", oracle, s, fake_thermo)["successes_at"][k - 1] for s in range(3)]
    assert sum(labos) / 3 < random_expectation(oracle.n_cells, k)["all"]
    assert sum(labos) < sum(rand)


def test_parallel_seeds_give_the_same_result(replay_dict, fake_thermo):
    ds = load_replay(replay_dict)
    one = benchmark(ds, ["thermo"], seeds=2, thermo=fake_thermo, jobs=1)["planners"]["thermo"]
    two = benchmark(ds, ["thermo"], seeds=2, thermo=fake_thermo, jobs=2)["planners"]["thermo"]
    assert one["first_success"] == two["first_success"] and one["within_20"] == two["within_20"]


def test_shipped_simulated_datasets_follow_the_format():
    from pathlib import Path

    expected = {"Ba2YNbO6": 21, "Sr2MgWO6": 2, "BaTiO3": 3, "BaZrO3": 7, "MgAl2O4": 12, "BaFe2O4": 40}
    folder = Path(__file__).parent / "data" / "replay"
    for target, k in expected.items():
        oracle = ReplayOracle(load_replay(folder / f"sim_{target}.json"))
        assert oracle.dataset.target == target and len(oracle.success_keys) == k
    small = ReplayOracle(load_replay(folder / "sim_BaZrO3.json"))
    run = run_one("labos", small, 0, None)  # no thermodynamics at all: still plans, still finds them
    assert len(run["successes_at"]) == 7
