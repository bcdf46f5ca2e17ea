"""Several worker processes on one PostgreSQL database never double-book a resource."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import select

import tests.lab.probe as probe
from labos.domain import DoseStep, Experiment, Recipe, Target
from labos.lab import Lab
from labos.lab.records import ResourceRow, TaskRow

ROOT = Path(__file__).resolve().parents[2]
N_EXP, PER_EXP, DEVICES = 100, 10, 10


def _experiment(i: int) -> Experiment:
    # the recipe is not run (the task graph is custom); experiments just group the probes
    recipe = Recipe(steps=[DoseStep(precursor="ZnO", mass_mg=1.0)])
    return Experiment(id=f"exp-probe-{i:03d}", target=Target(formula="ZnO"), recipe=recipe)


@pytest.mark.postgres
def test_four_workers_1000_tasks_no_double_booking(postgres_url, tmp_path):
    rng = random.Random(1)
    lab = Lab(probe.bench_config(devices=DEVICES), postgres_url, {})
    for i in range(N_EXP):
        lab.submit(
            _experiment(i),
            graph=probe.probe_graph(rng, PER_EXP, DEVICES, hold_s=0.003),
            priority=rng.random(),
        )
    log = tmp_path / "probe.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LABOS_PROBE_LOG": str(log)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.lab.pg_worker", postgres_url],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    started = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        started.append(int(out.split("STARTED")[1].split()[0]))
    assert sum(started) == N_EXP * PER_EXP
    assert sum(1 for n in started if n > 0) >= 3, f"work was not shared: {started}"

    with lab.store.factory() as s:
        tasks = list(s.scalars(select(TaskRow)))
        grants = {r.name: r.grants for r in s.scalars(select(ResourceRow))}
        holders = [r.name for r in s.scalars(select(ResourceRow).where(ResourceRow.holder.is_not(None)))]
    assert len(tasks) == N_EXP * PER_EXP
    assert all(t.status == "done" and t.attempts == 1 for t in tasks)
    assert not holders, f"still booked: {holders}"

    intervals = defaultdict(list)
    runs = defaultdict(int)
    for line in log.read_text().splitlines():
        task, res, a, b, _pid = line.split()
        intervals[res].append((int(a), int(b), task))
        runs[(task, res)] += 1
    assert all(n == 1 for n in runs.values()), "a task ran twice"
    assert {t for t, _ in runs} == {t.id for t in tasks}
    for res, spans in intervals.items():
        spans.sort()
        for (_a0, b0, t0), (a1, _b1, t1) in zip(spans, spans[1:], strict=False):
            assert a1 >= b0, f"{res} double-booked by {t0} and {t1}"
        assert grants[res] == len(spans), f"{res}: {grants[res]} grants for {len(spans)} uses"
