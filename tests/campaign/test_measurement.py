"""The campaign benchmark's measurement paths: the realistic pattern writer, the agreement metrics and
calibration of ``labos bench measurement``, the bench's --xrd analyse mode, and the ``campaigns`` alias."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labos.campaign import agreement
from labos.campaign.agreement import Case
from labos.cli.main import app

runner = CliRunner()


def _case(truth: dict[str, float], analysis: dict[str, float], target: str = "SrTiO3") -> Case:
    return Case(target, ("SrCO3", "TiO2"), 1000.0, 240.0, 0, truth=truth, analysis=analysis)


def test_compare_counts_decisions_wt_errors_and_phase_sets():
    cases = [
        _case({"SrTiO3": 0.6, "TiO2": 0.4}, {"SrTiO3": 0.58, "TiO2": 0.42}),
        _case({"SrTiO3": 0.52, "SrO": 0.48}, {"SrTiO3": 0.49, "SrO": 0.51}),  # analysis: fail
        _case({"SrTiO3": 0.1, "TiO2": 0.9}, {"TiO2": 1.0}),  # analysis misses the target
    ]
    models = [
        {"SrTiO3": 0.61, "TiO2": 0.39},
        {"SrTiO3": 0.53, "SrO": 0.47},  # model: success -> disagrees with the analysis
        {"SrTiO3": 0.1, "TiO2": 0.9, "SrO": 0.0},
    ]
    out = agreement.compare(cases, models, 0.5)
    assert out["success_agreement"] == round(2 / 3, 4)
    assert out["successes"] == {"truth": 2, "analysis": 1, "model": 2}
    assert out["decision_accuracy_vs_truth"] == {"analysis": round(2 / 3, 4), "model": 1.0}
    # |a - b| on the target: 3, 4, 10 wt% -> mean 5.667
    assert out["target_wt_mae_analysis_vs_model"] == pytest.approx(17 / 3, abs=1e-3)
    # phase sets a vs b: 2+2 shared, then {TiO2} vs {SrTiO3, TiO2}: tp 5, fn 1
    assert out["phase_f1_analysis_vs_model"] == round(10 / 11, 4)
    assert out["phase_f1_vs_truth"]["model"] == 1.0 and out["phase_f1_vs_truth"]["analysis"] < 1.0


def test_calibration_recovers_the_analysis_error_and_detection_limit():
    rng = np.random.default_rng(1)
    cases = []
    for _ in range(200):
        major = float(rng.uniform(0.3, 0.9))
        minor = float(rng.uniform(0.0, 0.08))
        truth = {"SrTiO3": major, "TiO2": 1 - major - minor, "SrO": minor}
        seen = {k: max(v + rng.normal(0, 0.015), 0.0) for k, v in truth.items() if v >= 0.03}
        cases.append(_case(truth, seen))
    params = agreement.calibrate(cases)
    assert params["sigma"] == pytest.approx(0.015, rel=0.2)
    assert 0.02 <= params["detection_limit"] <= 0.04


def test_realistic_patterns_are_deterministic_per_sample_and_vary_between_samples(tmp_path):
    from labos.models.xrd.io import read_pattern

    from labos.campaign import measure

    rng = np.random.default_rng(0)
    phases, inst = measure.sample_effects({"SrTiO3": 0.7, "TiO2": 0.3}, rng)
    assert abs(inst.zero_shift) <= 0.1 and abs(inst.displacement_mm) <= 0.2
    assert all(20 <= p.size_nm <= 300 and abs(p.lattice_strain) <= 0.004 for p in phases.values())

    write = measure.pattern_writer(None, seed=3)
    a = read_pattern(write({"SrTiO3": 0.7, "TiO2": 0.3}, tmp_path / "a", "smp-1"))
    b = read_pattern(write({"SrTiO3": 0.7, "TiO2": 0.3}, tmp_path / "b", "smp-1"))
    c = read_pattern(write({"SrTiO3": 0.7, "TiO2": 0.3}, tmp_path / "c", "smp-2"))
    assert a.counts == b.counts and a.counts != c.counts


@pytest.mark.slow
def test_bench_measurement_runs_both_paths_on_the_same_syntheses():
    r = runner.invoke(app, ["bench", "measurement", "--experiments", "4", "--seeds", "1", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout.strip().splitlines()[-1])
    assert data["agreement"]["experiments"] == 4
    assert data["analysis_errors_vs_truth"]["phases_compared"] >= 4
    # the analysis of a simulated demo pattern is close to the truth it was simulated from
    assert data["agreement"]["target_wt_mae_vs_truth_pct"]["analysis"] < 5.0
    assert data["agreement"]["phase_f1_vs_truth"]["analysis"] >= 0.8
    assert data["seconds_per_experiment"]["model"] < data["seconds_per_experiment"]["analysis"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--xrd", "analyse"], "--chemistry demo"),
        (["--chemistry", "demo", "--targets", "7"], "6 targets"),
        (["--xrd", "magic"], "unknown --xrd"),
    ],
)
def test_bench_campaign_measurement_options_are_checked(args, message):
    r = runner.invoke(app, ["bench", "campaign", "--seeds", "1", *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_campaigns_is_a_hidden_alias_of_campaign(tmp_path):
    db = f"sqlite:///{tmp_path / 'labos.sqlite'}"
    listed = [line.split()[1] for line in runner.invoke(app, ["--help"]).output.splitlines() if "│ " in line]
    assert "campaign" in listed and "campaigns" not in listed
    r = runner.invoke(app, ["campaigns", "submit", "Titanates", "-t", "SrTiO3", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    cid = json.loads(r.stdout)["id"]
    for group in ("campaign", "campaigns"):
        r = runner.invoke(app, [group, "list", "--db", db, "--json"])
        assert r.exit_code == 0 and [c["id"] for c in json.loads(r.stdout)] == [cid]
    r = runner.invoke(app, ["campaign", "show", cid, "--db", db])
    assert r.exit_code == 0 and "SrTiO3" in r.stdout and "submitted" in r.stdout


@pytest.mark.slow
def test_demo_runs_a_campaign_judged_by_pattern_analysis(tmp_path):
    r = runner.invoke(
        app, ["demo", "--budget-per-target", "1", "--days", "2", "--out", str(tmp_path), "--json"]
    )
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["xrd"] == "pattern" and rep["summary"]["targets"] == 6
    exps = [e for t in rep["targets"] for e in t["experiments"]]
    assert exps and all(e["outcome_source"] == "xrd" and e["xrd_file"] for e in exps)
