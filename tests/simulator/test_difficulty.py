"""Difficulty of the world: nucleation-limited traps, difficulty levels, the difficulty measurement."""

from __future__ import annotations

import json

import pytest
from labos.simulator.chemistry.kinetics import INTERFACE_RATE_MAX, mixed_control, nucleation_rate
from labos.simulator.demo_chemistry import demo_inventory
from labos.simulator.difficulty import bin_of, measure
from labos.simulator.world import World, WorldError
from typer.testing import CliRunner

from labos.domain import HeatSegment, HeatStep

TEMPS = (700.0, 900.0, 1100.0)


def heat(target_c: float, dwell_min: float = 240.0) -> HeatStep:
    return HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=target_c, dwell_min=dwell_min)])


def test_nucleation_stalls_below_the_threshold_at_any_furnace_temperature():
    thr = 0.03
    for t_k in (900.0, 1200.0, 1500.0, 1700.0):
        assert nucleation_rate(0.3 * thr, thr, t_k) < 1e-12  # no temperature rescues the step
    assert nucleation_rate(3 * thr, thr, 1273.15) > 0.4 * INTERFACE_RATE_MAX  # never limiting
    assert nucleation_rate(0.0, thr, 1273.15) == 0.0
    drives = [0.5 * thr, thr, 1.5 * thr, 2 * thr]
    rates = [nucleation_rate(d, thr, 1273.15) for d in drives]
    assert rates == sorted(rates) and rates[0] < rates[-1]
    assert nucleation_rate(thr, thr, 1000.0) < nucleation_rate(thr, thr, 1400.0)  # hotter: a bit easier


def test_mixed_control_is_limited_by_the_slower_step():
    assert mixed_control(1.0, 1e-4) == pytest.approx(1e-4, rel=1e-3)
    assert mixed_control(1e-4, 1.0) == pytest.approx(1e-4, rel=1e-3)
    assert mixed_control(1.0, 1.0) == pytest.approx(0.5)
    assert mixed_control(0.0, 1.0) == 0.0


def test_unknown_difficulty_is_refused():
    with pytest.raises(WorldError, match="easy, alab, hard"):
        World.demo(0, difficulty="medium")


def test_difficulty_levels_are_deterministic_and_distinct():
    mix = {"MgO": 335.3, "TiO2": 664.7}
    a = World.demo(4, difficulty="hard").synthesize(mix, heat(1100))
    b = World.demo(4, difficulty="hard").synthesize(mix, heat(1100))
    assert a == b
    outs = {
        lvl: World.demo(4, difficulty=lvl).synthesize(mix, heat(1100)).fraction_of("MgTiO3")
        for lvl in ("easy", "alab", "hard")
    }
    assert len({round(v, 6) for v in outs.values()}) > 1


def test_measure_reports_per_target_difficulty_and_skips_infeasible_targets():
    rep = measure(
        lambda s: World.demo(s), ["MgTiO3", "BaTiO3"], demo_inventory(), seeds=(0,), temperatures_c=TEMPS
    )
    assert set(rep["skipped"]) == {"BaTiO3"} and "Ba" in rep["skipped"]["BaTiO3"]
    d = rep["targets"]["MgTiO3"]
    assert d["sets"] == 3 and d["cells_per_seed"] == 3 * len(TEMPS)
    assert 0.0 <= d["success_share"] <= 1.0 and d["bin"] == bin_of(d["success_share"])
    assert rep["summary"]["targets"] == 1 and sum(rep["summary"]["bins"].values()) == 1
    assert rep["syntheses"] == d["cells_per_seed"]
    json.dumps(rep)  # JSON-ready


def test_bin_edges():
    assert bin_of(0.0) == "none"
    assert bin_of(0.04) == "very_hard_lt5pct"
    assert bin_of(0.2) == "typical_5_30pct"
    assert bin_of(0.5) == "moderate_30_60pct"
    assert bin_of(0.9) == "easy_gt60pct"


def test_bench_sim_world_reports_difficulty_and_harder_levels_make_fewer_cells_succeed():
    from labos.cli.main import app

    res = CliRunner().invoke(
        app,
        [
            "bench",
            "sim-world",
            "--json",
            "--targets",
            "0",
            "--world-seeds",
            "0,1",
            "--difficulty",
            "easy,alab,hard",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["warm_ms_per_synthesis"] > 0 and out["syntheses"] > 0
    assert list(out["difficulty"]) == ["easy", "alab", "hard"]
    share = {k: v["demo"]["summary"]["success_share_mean"] for k, v in out["difficulty"].items()}
    assert all(v["demo"]["summary"]["targets"] == 6 for v in out["difficulty"].values())
    assert share["easy"] >= share["alab"] >= share["hard"]
    assert share["easy"] > share["hard"]
    bad = CliRunner().invoke(app, ["bench", "sim-world", "--difficulty", "medium"])
    assert bad.exit_code != 0 and "difficulty" in bad.output


def test_melting_estimate_uses_the_cation_oxidation_state():
    from labos.simulator.chemistry.melting import effective_melting_k
    from labos.simulator.chemistry.phases import make_phase

    # V5+ in Ca2V2O7 pairs with V2O5 (954 K), not V2O3 (2230 K): the estimate stays far below CaO's
    assert effective_melting_k(make_phase("Ca2V2O7").key) < 1700.0
    assert effective_melting_k(make_phase("CaMoO4").key) == pytest.approx(1718.0, rel=0.1)  # CRC: 1445 °C


def test_precursor_choice_decides_through_the_intermediate():
    """Ba2TiO4 in the full world: BaCO3 + TiO2 first makes BaTiO3, and BaTiO3 + BaCO3 → Ba2TiO4 adds
    only a few meV/atom, so the carbonate route is trapped on BaTiO3 until BaCO3 itself goes; BaO2
    (no CO2 to lose) forms Ba2TiO4 directly. Same temperature, different precursors."""
    from labos.simulator.replay import candidate_sets

    world = World(0)
    sets = dict(candidate_sets("Ba2TiO4", ["BaCO3", "BaO2", "TiO2"]))
    carbonate, peroxide = sets[("BaCO3", "TiO2")], sets[("BaO2", "TiO2")]
    for t in (900.0, 1000.0):
        trapped = world.synthesize(carbonate, heat(t))
        assert trapped.fraction_of("Ba2TiO4") < 0.3
        assert trapped.fraction_of("BaTiO3") > 0.2 + trapped.fraction_of("Ba2TiO4")
    best_peroxide = max(world.synthesize(peroxide, heat(t)).fraction_of("Ba2TiO4") for t in (1000.0, 1100.0))
    assert best_peroxide > 0.5
    assert world.synthesize(peroxide, heat(1000.0)).fraction_of("Ba2TiO4") > 0.2 + world.synthesize(
        carbonate, heat(1000.0)
    ).fraction_of("Ba2TiO4")
