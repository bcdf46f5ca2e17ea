"""Write a replay dataset from the simulated chemistry (labos.simulator.world) for one target.

Every candidate precursor set from INVENTORY (labos.planners.candidates.enumerate_sets) is heated at
every temperature (4 h dwell, 10 °C/min, air) in World(SEED) with the MP-summary thermodynamics; the
true phases (≥ 0.5 wt%) become the recorded products. Usage (from the repository root):

    LABOS_DATA_DIR=../shared/data .venv/bin/python tests/planner/data/make_replay.py \\
        TARGET INVENTORY(comma separated) SEED OUT.json [TEMPERATURES]

The files in replay/ were made with the commands listed in replay/README.md.
"""

import json
import sys
import time

from labos.models.thermo import ThermoDB
from labos.planners.candidates import enumerate_sets
from labos.planners.chemistry import elements
from labos.simulator.world import World

from labos.domain import HeatSegment, HeatStep


def main() -> None:
    target, inv, seed, out = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), sys.argv[4]
    temps = [float(t) for t in (sys.argv[5] if len(sys.argv) > 5 else "600,700,800,900,1000,1100").split(",")]
    db = ThermoDB.with_mp()
    els = sorted(set().union(*(elements(p) for p in inv)) | {"O"})
    world = World(seed, elements=els, thermo=db)
    exps = []
    t0 = time.time()
    for cand in enumerate_sets(target, inv, batch_mg=1000):
        for t in temps:
            heat = HeatStep(segments=[HeatSegment(ramp_c_per_min=10, target_c=t, dwell_min=240)])
            truth = world.synthesize(dict(cand.masses_mg), heat)
            products = {k: round(v, 4) for k, v in truth.phases.items() if v >= 0.005}
            exps.append({"precursors": list(cand.precursors), "temperature_c": t, "products": products})
    data = {
        "target": target,
        "atmosphere": "air",
        "hold_time_h": 4,
        "success": {"target_fraction_at_least": 0.5},
        "experiments": exps,
        "source": f"labos simulator World(seed={seed})",
    }
    with open(out, "w") as fh:
        json.dump(data, fh, indent=1)
    print(out, len(exps), "cells", f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
