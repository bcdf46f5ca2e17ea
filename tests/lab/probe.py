"""A custom task type for the multi-worker tests: books named resources, notes when it held them.

Each run appends ``task resource start_ns end_ns pid`` lines (one ``os.write`` each, O_APPEND) to
the file named by ``LABOS_PROBE_LOG``; ``time.monotonic_ns`` is one clock for every process, so
two tasks that held one resource at the same time show up as overlapping intervals.
"""

from __future__ import annotations

import os
import random
import time

import networkx as nx

from labos.lab import Need, Task, register_task
from labos.lab.config import lab_config_from_dict


@register_task
class Probe(Task):
    kind = "probe"

    @classmethod
    def estimate_min(cls, params, cfg):
        return float(params.get("hold_s", 0.0)) / 60.0

    def needs(self, params, cfg, run_furnace=None):
        out = [Need(name=r) for r in params["resources"]]
        if params.get("slot"):
            out.append(Need(group="bench_rack", tag="slot"))
        return out

    def run(self, ctx):
        start = time.monotonic_ns()
        yield ctx.env.timeout(float(ctx.task.params.get("hold_s", 0.0)))
        end = time.monotonic_ns()
        held = sorted(ctx.task.holds.values())
        lines = "".join(f"{ctx.task.id} {r} {start} {end} {os.getpid()}\n" for r in held)
        fd = os.open(os.environ["LABOS_PROBE_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return {"held": held, "pid": os.getpid()}


def bench_config(devices: int = 6, slots: int = 4):
    return lab_config_from_dict(
        {
            "name": "bench",
            "devices": [
                {"name": f"dev_{i}", "kind": "bench", "lab": {"role": "bench"}} for i in range(1, devices + 1)
            ],
            "positions": [{"group": "bench_rack", "capacity": slots}],
        }
    )


def probe_graph(rng: random.Random, n: int, devices: int, hold_s: float) -> nx.DiGraph:
    """``n`` probe tasks in a random DAG (edges only forward), each booking 1-2 devices."""
    g = nx.DiGraph()
    for i in range(n):
        res = rng.sample([f"dev_{j}" for j in range(1, devices + 1)], rng.randint(1, 2))
        g.add_node(
            f"p{i}", kind="probe", params={"resources": res, "slot": rng.random() < 0.3, "hold_s": hold_s}
        )
        if i >= 2:
            for j in rng.sample(range(i), min(2, i)):
                if rng.random() < 0.5:
                    g.add_edge(f"p{j}", f"p{i}")
    return g
