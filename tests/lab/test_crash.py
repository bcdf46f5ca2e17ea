"""Crash safety: kill the lab at any point, restart it on the same database, lose nothing.

After every run the physical world (the fakes' persisted state) and the database must agree:
no sample lost or duplicated, no precursor dosed twice, no crucible heated twice, and every
experiment finished (the auto-operator answers what the lab cannot verify by itself).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labos.lab import SimulatedCrash
from tests.lab import crash_worker
from tests.lab.labhelpers import check_invariants

ROOT = Path(__file__).resolve().parents[2]


def _crash_at(n: int):
    seen = {"n": 0}

    def hook(owner: str, step: str, phase: str) -> None:
        seen["n"] += 1
        if seen["n"] == n:
            raise SimulatedCrash(f"crash at {owner} {step} {phase}")

    return hook, seen


def test_crash_at_many_points_in_process(lab_url, tmp_path):
    """Stop the engine abruptly right after a journal write (before/after hardware, after a task)."""
    url, state = lab_url, str(tmp_path / "world.json")
    rng = random.Random(11)
    crashes = 0
    for _ in range(40):
        hook, _seen = _crash_at(rng.randint(1, 20))
        try:
            if crash_worker.run(url, state, 4, crash_hook=hook):
                break
        except SimulatedCrash:
            crashes += 1
    else:
        pytest.fail("the experiments never finished")
    assert crashes >= 10
    sim = crash_worker.build(url, state)
    stats = check_invariants(sim)
    assert stats["samples"] == 4
    recovered = sim.lab.api.events(kinds=["task.recovered"])
    assert recovered, "no task was ever resumed after a crash"


@pytest.mark.parametrize(
    ("step", "phase", "asks"),
    [
        ("place_vial", "intent", False),  # balance shows no vial: placed again
        ("place_vial", "acted", False),  # balance shows the vial: not placed twice
        ("dose", "intent", False),  # balance unchanged: dosed now
        ("dose", "acted", False),  # balance shows the dose: never dosed twice
        ("program", "intent", False),  # furnace reset and cold: started now
        ("program", "acted", False),  # furnace running: monitored, not restarted
        ("move", "acted", True),  # only the operator can say where the arm left it
        ("report", "acted", False),  # outcome written once
    ],
)
def test_crash_at_each_kind_of_step(lab_url, tmp_path, step, phase, asks):
    url, state = lab_url, str(tmp_path / "world.json")
    hit = []

    def hook(owner: str, name: str, ph: str) -> None:
        if not hit and name.split(":")[0] == step and ph == phase:
            hit.append(owner)
            raise SimulatedCrash(f"{owner} {name} {ph}")

    with pytest.raises(SimulatedCrash):
        crash_worker.run(url, state, 2, crash_hook=hook)
    assert crash_worker.run(url, state, 2)
    sim = crash_worker.build(url, state)
    check_invariants(sim)
    asked = [iv for iv in sim.lab.api.interventions(None) if iv.kind == "confirm_step"]
    assert bool(asked) == asks, [iv.message for iv in asked]
    if step == "report":
        assert all(len(sim.lab.outcomes(e.id)) == 1 for e in crash_worker.experiments(2))


@pytest.mark.slow
def test_sigkill_at_random_points(lab_url, tmp_path):
    """The real thing: SIGKILL a lab process at random moments of its work, restart it, check the world."""
    url, state = lab_url, str(tmp_path / "world.json")
    cmd = [sys.executable, "-m", "tests.lab.crash_worker", url, state, "12"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(5)
    kills, t_end = 0, time.monotonic() + 110
    while time.monotonic() < t_end:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if kills < 10:
            line = proc.stdout.readline()  # wait until it is working on the lab, then kill it mid-run
            if line.strip() == "RUNNING":
                time.sleep(rng.uniform(0.05, 0.4))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.communicate()
                    kills += 1
                    continue
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
        if "DONE" in out:
            break
    else:
        pytest.fail("the lab did not finish within the time limit")
    assert kills >= 5
    sim = crash_worker.build(url, state)
    stats = check_invariants(sim)
    assert stats["samples"] == 12
    assert sim.lab.api.events(kinds=["task.recovered"]), "no kill ever interrupted a task"
