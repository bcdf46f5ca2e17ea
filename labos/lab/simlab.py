"""The simulated lab: chemistry World, XRD synthesis, the SimPy clock and devices, wired to the lab OS.

Two ways to run the devices:

* ``fast`` — in-process fakes (:mod:`labos.lab.fakes`) that follow the driver protocols over one
  physical model; hours of lab time pass in milliseconds. The A-Lab-scale campaign uses this.
* ``wire`` — the real drivers (``labos.drivers.*``) talking over pty/TCP to the wire-level
  emulators (``labos.simulator.emulators.*``) on the same clock; see :mod:`labos.lab.wirelab`.

XRD files are either the simulator's truth as JSON (``xrd="truth"``, analysed by reading it back)
or real simulated patterns written as .xrdml and analysed by ``labos.models.xrd``
(``xrd="pattern"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import simpy

from labos.lab.config import LabConfig, sim_lab_config
from labos.lab.engine import default_xrd_dir
from labos.lab.fakes import (
    FakeArm,
    FakeDiffractometer,
    FakeDoor,
    FakeDoser,
    FakeFurnace,
    FakeStation,
    Physics,
    truth_analyzer,
    write_truth,
)
from labos.lab.runtime import Lab
from labos.lab.store import Store
from labos.simulator.clock import SimClock


def world_chemistry(world) -> Callable[[dict[str, float], Any, str], dict[str, float]]:
    """The World's hidden chemistry as the fakes' ``chemistry`` (masses already include dosing error)."""

    def chemistry(precursors_mg, heat, atmosphere):
        return dict(world.synthesize(precursors_mg, heat, atmosphere, dosing_error=False).phases)

    return chemistry


def pattern_writer(world=None, seed: int = 0):
    """Write a simulated .xrdml of the true phases (the world's structures, else the demo ones)."""
    from labos.models.xrd.io import write_xrdml
    from labos.simulator.xrd import synthesize

    counter: dict[str, Any] = {"n": 0, "library": None}

    def write(phases: dict[str, float], out_dir: Path, sample_id: str) -> Path:
        counter["n"] += 1
        library = None
        if world is not None and world.structures:
            if counter["library"] is None:
                from labos.models.xrd.library import PhaseLibrary

                counter["library"] = PhaseLibrary.from_structures(world.structures)
            library = counter["library"]
        pattern = synthesize(phases, seed=seed + counter["n"], library=library)
        return write_xrdml(pattern, out_dir / f"{sample_id}.xrdml", sample_id=sample_id)

    return write


def fake_devices(cfg: LabConfig, physics: Physics, xrd_dir: Path, writer=None) -> dict[str, Any]:
    """One fake per configured device, placed on the configured slots."""
    devices: dict[str, Any] = {}
    for d in cfg.devices:
        slots = [f"{d.name}/{i}" for i in range(1, d.lab.slots + 1)]
        if d.role == "doser":
            devices[d.name] = FakeDoser(d.name, physics, position=slots[0] if slots else f"{d.name}/1")
        elif d.role == "arm":
            devices[d.name] = FakeArm(d.name, physics)
        elif d.role == "furnace":
            devices[d.name] = FakeFurnace(d.name, physics, slots, atmosphere=d.lab.atmospheres[0])
        elif d.role == "door":
            devices[d.name] = FakeDoor(d.name, physics)
        elif d.role == "xrd":
            devices[d.name] = FakeDiffractometer(d.name, physics, d.name, xrd_dir, writer=writer)
        elif d.role in ("mixer", "grinder"):
            devices[d.name] = FakeStation(d.name, physics, slots)
    return devices


class SimLab:
    """A simulated lab ready to run experiments: ``sim.lab`` is the :class:`Lab`."""

    def __init__(self, lab: Lab, physics: Physics, world=None):
        self.lab = lab
        self.physics = physics
        self.world = world

    @classmethod
    def build(
        cls,
        db: str | Store | None = None,
        *,
        cfg: LabConfig | None = None,
        world=None,
        chemistry: Callable | None = None,
        xrd: Literal["truth", "pattern"] = "truth",
        analyzer: Callable | None = None,
        state_path: str | Path | None = None,
        seed: int = 0,
        inventory: Mapping[str, float] | None = None,
        **config: Any,
    ) -> SimLab:
        """A fast simulated lab (in-process fakes on virtual time).

        ``cfg`` defaults to :func:`sim_lab_config` (``config`` keywords go to it; the inventory
        defaults to 1 kg of every precursor the world's demo inventory or ``inventory`` names).
        ``state_path`` persists the physical world so a restarted process finds it unchanged."""
        if cfg is None:
            if inventory is None and world is not None:
                try:
                    from labos.simulator.demo_chemistry import demo_inventory

                    inventory = {p.formula: 1_000_000.0 for p in demo_inventory()}
                except ImportError:  # pragma: no cover
                    inventory = None
            cfg = sim_lab_config(inventory=inventory, **config)
        store = db if isinstance(db, Store) else Store(db)
        physics = Physics(
            None,
            chemistry=chemistry or (world_chemistry(world) if world is not None else None),
            crucible_groups=[g.prefix for g in cfg.all_groups() if "crucible" in g.holds and not g.device],
            state_path=state_path,
            seed=seed,
        )
        t0 = max(store.clock_s(), float(physics.state.get("t", 0.0)))
        env = simpy.Environment(initial_time=t0)
        physics.clock = SimClock(env)
        xrd_dir = default_xrd_dir(cfg)
        if xrd == "pattern":
            writer = pattern_writer(world, seed)
            if analyzer is None:
                from labos.lab.analysis import xrd_analyzer

                if world is not None and world.structures:
                    library = world.structures
                else:
                    from labos.simulator.demo_chemistry import demo_structures

                    library = demo_structures()
                analyzer = xrd_analyzer(library)
        else:
            writer = write_truth
            analyzer = analyzer or truth_analyzer()
        devices = fake_devices(cfg, physics, xrd_dir, writer)
        lab = Lab(cfg, store, devices, env=env, analyzer=analyzer)
        return cls(lab, physics, world)

    def run(self, until: float | None = None) -> None:
        self.lab.run(until=until)

    def close(self) -> None:
        self.lab.close()
