"""A lab process for the crash tests: runs a fixed set of experiments on a persistent simulated lab.

Run as ``python -m tests.lab.crash_worker DB_URL STATE_FILE N_EXPERIMENTS``; it can be killed at
any moment and started again on the same database and physical state. It answers the operator
requests an operator looking at the lab would answer, and prints DONE when every experiment is
over.
"""

from __future__ import annotations

import sys

from labos.domain import Experiment, Target
from tests.lab.labhelpers import PRECURSORS, answer_from_physics, recipe

TEMPS = (700.0, 800.0, 800.0, 900.0, 700.0, 800.0, 900.0, 800.0)


def experiments(n: int) -> list[Experiment]:
    return [
        Experiment(
            id=f"exp-crash-{i:03d}", target=Target(formula="LiMn2O4"), recipe=recipe(TEMPS[i % len(TEMPS)])
        )
        for i in range(n)
    ]


def build(url: str, state: str, migrate: bool = True):
    from labos.lab import SimLab
    from labos.lab.store import Store

    store = Store(url, migrate=migrate)
    return SimLab.build(
        store, inventory=PRECURSORS, furnaces=2, furnace_slots=2, crucible_rack=3, state_path=state
    )


def run(url: str, state: str, n: int, crash_hook=None, max_rounds: int = 50, announce: bool = False) -> bool:
    sim = build(url, state, migrate=not announce)  # a restarted lab process: the schema is there
    if crash_hook is not None:
        sim.lab.engine.crash_hook = crash_hook
    for e in experiments(n):
        sim.lab.submit(e)
    if announce:
        print("RUNNING", flush=True)
    for _ in range(max_rounds):
        sim.run()
        if not answer_from_physics(sim):
            break
    states = {sim.lab.api.experiment_status(e.id) for e in experiments(n)}
    sim.close()
    return states == {"completed"}


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by the tests
    ok = run(sys.argv[1], sys.argv[2], int(sys.argv[3]), announce=True)
    print("DONE" if ok else "NOT DONE", flush=True)
