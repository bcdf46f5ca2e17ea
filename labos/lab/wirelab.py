"""The simulated lab at wire level: the real drivers talk over pty/TCP to the device emulators.

Every device of :func:`labos.lab.config.sim_lab_config` gets its emulator (Quantos doser,
UR arms, Eurotherm furnaces, furnace doors, Aeris diffractometer) started in this process on a
:class:`~labos.simulator.emulators.ScaledClock`, and the lab OS opens the real driver for it
through :func:`labos.drivers.registry.open_device`. The lab runs on a SimPy
``RealtimeEnvironment`` at the same speed-up, so furnace programmes, dose times and scans take
their (scaled) time on both sides of the wire.

The emulators know bytes and physics, not samples: :class:`WireBridge` keeps the physical world
(:class:`~labos.lab.fakes.Physics`) in step with them — a finished arm programme moves the object,
a dispensed dose lands in the vial on the balance, a crucible taken out of a furnace that ran a
programme has reacted, and the diffractometer's pattern is simulated from the true phases.
Shakers and grinders have no driver protocol yet, so they stay in-process fakes.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labos.domain import HeatSegment, HeatStep
from labos.lab.config import DeviceEntry, LabConfig, sim_lab_config
from labos.lab.engine import default_xrd_dir
from labos.lab.fakes import CRUCIBLE_MG, VIAL_MG, FakeStation, Physics, recipe_heat
from labos.lab.runtime import Lab
from labos.lab.store import Store

log = logging.getLogger(__name__)

_MOVE_MSG = re.compile(r"labos move (\S+) -> (\S+)")


class WireBridge:
    """The hidden physical side of the emulated lab (see the module docstring)."""

    def __init__(self, physics: Physics):
        self.physics = physics
        self.balances: dict[str, Any] = {}  # doser slot -> QuantosEmulator
        self.powder: dict[str, str | None] = {}  # doser slot -> powder in the head
        self.furnaces: dict[str, tuple[Any, list[str], str]] = {}  # slot -> (emulator, slots, name)
        self.loaded_at: dict[str, int] = {}  # object -> furnace runs_started when it went in
        self.errors: list[str] = []

    # -- arm
    def moved(self, source: str, destination: str) -> None:
        ph = self.physics
        oid = ph.at(source)
        if source in self.furnaces and oid is not None:
            self._maybe_heated(oid, source)
        out_mg = ph.gross_mg(source) if source in self.balances else 0.0
        try:
            oid = ph.carry(source, destination)
        except ValueError as exc:  # the arm did it, but the world disagrees: note it for the tests
            self.errors.append(f"{source} -> {destination}: {exc}")
            log.error("simulated world: impossible move %s -> %s: %s", source, destination, exc)
            return
        if source in self.balances:
            self.balances[source].place(-out_mg)
        if destination in self.balances:
            self.balances[destination].place(ph.gross_mg(destination))
        if destination in self.furnaces:
            self.loaded_at[oid] = self.furnaces[destination][0].runs_started

    def _maybe_heated(self, oid: str, slot: str) -> None:
        emu, _slots, name = self.furnaces[slot]
        if emu.runs_started <= self.loaded_at.get(oid, emu.runs_started):
            return
        heat = heat_from_program(emu.program) or HeatStep(
            segments=[HeatSegment(ramp_c_per_min=5, target_c=max(20.0, emu.max_chamber_c), dwell_min=60)]
        )
        self.physics.heat(oid, heat, "air", name, self.physics.now())

    # -- doser
    def dosed(self, slot: str) -> Callable[[float], None]:
        def on_dose(mg: float) -> None:
            oid = self.physics.at(slot)
            powder = self.powder.get(slot)
            if oid is None or not powder:
                self.errors.append(f"dose of {mg} mg at {slot} with nothing under the head")
                return
            o = self.physics.obj(oid)
            o["contents"][powder] = o["contents"].get(powder, 0.0) + mg
            o["doses"].append([powder, round(mg, 4)])
            self.physics.record("dose", oid, powder, round(mg, 4))
            self.physics.save()

        return on_dose

    # -- diffractometer
    def pattern_for(
        self, prefix: str, emulator_ref: list, synthesize: Callable[[dict[str, float], int], Any]
    ):
        def pattern(sample_id: str):
            emu = emulator_ref[0]
            slot = emu.samples[sample_id].slot
            oid = self.physics.at(f"{prefix}/{slot}")
            if oid is None:
                raise RuntimeError(f"no sample in {prefix}/{slot}")
            self.physics.obj(oid)["scans"] += 1
            return synthesize(self.physics.phases_of(oid), len(self.physics.state["log"]))

        return pattern


def heat_from_program(program) -> HeatStep | None:
    """A Eurotherm programme (the emulator's segments) as the HeatStep it came from."""
    from labos.drivers.eurotherm import SEGMENT_TYPES

    segs: list[HeatSegment] = []
    for s in program or []:
        if s.kind == SEGMENT_TYPES["rate"] and s.value > 0:
            segs.append(
                HeatSegment(
                    ramp_c_per_min=min(50.0, s.value * 60.0), target_c=max(20.0, s.target), dwell_min=0
                )
            )
        elif s.kind == SEGMENT_TYPES["dwell"] and segs:
            last = segs[-1]
            segs[-1] = last.model_copy(update={"dwell_min": last.dwell_min + s.value / 60.0})
        elif s.kind == SEGMENT_TYPES["end"]:
            break
    return recipe_heat(segs) if segs else None


class SelectableDoser:
    """The Quantos driver plus the head changer: ``select_powder`` mounts the powder's dosing head
    (in the emulated lab: tells the emulator and the bridge); everything else is the driver."""

    def __init__(self, driver, emulator, bridge: WireBridge, slot: str):
        self._driver, self._emu, self._bridge, self._slot = driver, emulator, bridge, slot

    def select_powder(self, formula: str) -> None:
        self._emu.substance = formula
        self._bridge.powder[self._slot] = formula

    def __getattr__(self, name: str):
        return getattr(self._driver, name)


def _positions(cfg: LabConfig) -> dict[str, dict]:
    """Taught joint positions for every slot (distinct synthetic joints; approach points above)."""
    names = ["vial_supply"] + [s for g in cfg.all_groups() for s in g.slot_names()]
    out = {}
    for i, n in enumerate(names):
        base = [-3.0 + 6.0 * ((i * 0.37) % 1.0), -1.2, 1.3, -1.6, -1.57, 0.0]
        out[n] = {"joints": base, "approach": [base[0], -0.9, 1.0, -1.6, -1.57, 0.0]}
    return out


# Realistic arm speeds: the driver sees a move end through RTDE (the move's sequence number in an
# output register), so even a move shorter than a poll at a large clock speed-up is not missed.
_MOTION = {"joint_speed": 1.05, "approach_speed": 0.25, "grip_wait_s": 1.0}


@dataclass
class EmulatedDevice:
    """One device of a layout as emulated: its emulator (None for a station without a protocol,
    kind ``timed_station``) and the driver kind, address and options that reach it."""

    device: DeviceEntry
    emulator: Any | None
    kind: str
    address: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def slots(self) -> list[str]:
        return [f"{self.device.name}/{i}" for i in range(1, self.device.lab.slots + 1)]

    def spec(self) -> dict[str, Any]:
        """The driver spec (:class:`labos.drivers.registry.DeviceSpec` fields) as plain data."""
        out: dict[str, Any] = {"name": self.device.name, "kind": self.kind, **self.address}
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass
class Emulators:
    """The running emulators of a layout with the hidden physics they share (see :func:`start_emulators`)."""

    clock: Any
    physics: Physics
    bridge: WireBridge
    library: Any  # the PhaseLibrary the diffractometer's patterns are synthesised from
    devices: list[EmulatedDevice] = field(default_factory=list)
    emulators: list[Any] = field(default_factory=list)  # in the order they were started

    def stop(self) -> None:
        for emu in reversed(self.emulators):
            try:
                emu.stop()
            except Exception:  # pragma: no cover - stopping must go on
                log.exception("stopping an emulator")
        self.emulators.clear()


def start_emulators(
    cfg: LabConfig,
    clock,
    *,
    world=None,
    seed: int = 0,
    workdir: Path,
    scan_s: float = 600.0,
    bridge_type: type[WireBridge] = WireBridge,
    positions: dict[str, dict] | None = None,
) -> Emulators:
    """Start the emulator of every device of ``cfg`` on ``clock``, with a ``bridge_type`` bridge
    keeping the physics (``world``'s chemistry; none without a world) in step with them.

    Each device comes back with the driver spec that reaches its emulator, so the same specs serve
    drivers opened in this process (:class:`WireLab`) and a configuration written for another
    (:mod:`labos.lab.emulated`). ``positions`` are the arms' taught positions (default: every slot).
    Mixers and grinders get no emulator (kind ``timed_station``); any other role is a ValueError."""
    from labos.lab.simlab import world_chemistry
    from labos.models.xrd.library import PhaseLibrary
    from labos.simulator.emulators.aeris import AerisEmulator
    from labos.simulator.emulators.door import DoorEmulator
    from labos.simulator.emulators.eurotherm import EurothermEmulator
    from labos.simulator.emulators.mtsics import QuantosEmulator
    from labos.simulator.emulators.ur import UREmulator
    from labos.simulator.xrd import synthesize as synth

    physics = Physics(
        clock,
        chemistry=world_chemistry(world) if world is not None else None,
        crucible_groups=[g.prefix for g in cfg.all_groups() if "crucible" in g.holds and not g.device],
        seed=seed,
    )
    bridge = bridge_type(physics)
    if world is not None and world.structures:
        structures = world.structures
    else:
        from labos.simulator.demo_chemistry import demo_structures

        structures = demo_structures()
    library = PhaseLibrary.from_structures(structures)

    def synthesize(phases: dict[str, float], n: int):
        return synth(phases, seed=seed + n, library=library)

    class BridgedUR(UREmulator):
        def _update(self) -> None:
            before = len(self.programs_completed)
            super()._update()
            if len(self.programs_completed) > before:
                for msg in reversed(self.messages):
                    m = _MOVE_MSG.search(msg)
                    if m:
                        bridge.moved(m.group(1), m.group(2))
                        break

    positions = _positions(cfg) if positions is None else positions
    out = Emulators(clock, physics, bridge, library)

    def started(emu):
        emu.start()
        out.emulators.append(emu)
        return emu

    def add(d: DeviceEntry, emu, kind: str, address: Mapping[str, Any], options: dict[str, Any]) -> None:
        out.devices.append(EmulatedDevice(d, emu, kind, dict(address), options))

    try:
        for d in cfg.devices:
            slots = [f"{d.name}/{i}" for i in range(1, d.lab.slots + 1)]
            if d.role == "doser":
                emu = started(
                    QuantosEmulator(
                        clock,
                        name=d.name,
                        on_dose=bridge.dosed(slots[0]),
                        head_content_mg=10_000_000.0,
                        settle_tau_s=0.5,
                    )
                )
                bridge.balances[slots[0]] = emu
                bridge.powder[slots[0]] = None
                add(
                    d,
                    emu,
                    "quantos",
                    emu.address,
                    {"timeout_s": 2.0, "poll_s": 2.0, "dose_timeout_s": 3600.0},
                )
            elif d.role == "arm":
                emu = started(BridgedUR(clock, name=d.name))
                options = {
                    "secondary_port": emu.secondary_port,
                    "rtde_port": emu.rtde_port,  # the end-of-move signal
                    "positions": positions,
                    "motion": _MOTION,
                    "start_timeout_s": 600.0,
                    "move_timeout_s": 3600.0,
                    "poll_s": 0.5,
                }
                add(d, emu, "ur", {"host": "127.0.0.1", "tcp_port": emu.dashboard_port}, options)
            elif d.role == "furnace":
                emu = started(EurothermEmulator(clock, name=d.name))
                for s in slots:
                    bridge.furnaces[s] = (emu, slots, d.name)
                add(d, emu, "eurotherm2416", emu.address, {"timeout_s": 0.5})
            elif d.role == "door":
                emu = started(DoorEmulator(clock, name=d.name))
                add(d, emu, "furnace_door", emu.address, {"poll_s": 1.0, "move_timeout_s": 120.0})
            elif d.role == "xrd":
                ref: list = []
                results = Path(workdir) / f"{d.name}-results"
                emu = started(
                    AerisEmulator(
                        results,
                        bridge.pattern_for(d.name, ref, synthesize),
                        clock,
                        slots=max(d.lab.slots, 1),
                        scan_s=scan_s,
                        name=d.name,
                    )
                )
                ref.append(emu)
                address = {"host": "127.0.0.1", "tcp_port": emu.port}
                add(d, emu, "aeris", address, {"result_dir": str(results), "poll_s": 5.0})
            elif d.role in ("mixer", "grinder"):
                add(d, None, "timed_station", {}, {})
            else:
                raise ValueError(f"device {d.name!r}: no emulator for role {d.role!r}")
    except BaseException:
        out.stop()
        raise
    return out


class WireLab:
    """A simulated lab whose drivers run over real pty/TCP links; ``wire.lab`` is the :class:`Lab`."""

    def __init__(self, lab: Lab, physics: Physics, bridge: WireBridge, emulators: list, drivers: list, clock):
        self.lab, self.physics, self.bridge = lab, physics, bridge
        self.emulators, self.drivers, self.clock = emulators, drivers, clock

    @classmethod
    def build(
        cls,
        db: str | Store | None = None,
        *,
        factor: float = 2000.0,
        cfg: LabConfig | None = None,
        world=None,
        inventory: dict[str, float] | None = None,
        analyzer: Callable | None = None,
        seed: int = 0,
        workdir: str | Path | None = None,
        **config: Any,
    ) -> WireLab:
        import simpy.rt

        from labos.drivers.registry import DeviceSpec, open_device
        from labos.lab.analysis import xrd_analyzer
        from labos.simulator.emulators import ScaledClock, sleeper_for

        config.setdefault("furnaces", 1)
        cfg = cfg or sim_lab_config(inventory=inventory, **config)
        clock = ScaledClock(factor)
        store = db if isinstance(db, Store) else Store(db)
        work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="labos-wire-"))
        emu = start_emulators(cfg, clock, world=world, seed=seed, workdir=work)
        physics, bridge = emu.physics, emu.bridge
        drivers: list = []
        devices: dict[str, Any] = {}
        ctx = {"clock": clock, "sleep": sleeper_for(clock)}
        try:
            for ed in emu.devices:
                name = ed.device.name
                if ed.emulator is None:
                    devices[name] = FakeStation(name, physics, ed.slots)
                    continue
                drv = open_device(DeviceSpec.model_validate(ed.spec()), **ctx)
                drivers.append(drv)
                if ed.device.role == "doser":
                    drv = SelectableDoser(drv, ed.emulator, bridge, ed.slots[0])
                devices[name] = drv
        except Exception:
            for drv in drivers:
                drv.close()
            emu.stop()
            raise
        if analyzer is None:
            analyzer = xrd_analyzer(emu.library)
        cfg_xrd = cfg.model_copy(update={"xrd_dir": str(default_xrd_dir(cfg))})
        env = simpy.rt.RealtimeEnvironment(initial_time=clock.now(), factor=1.0 / factor, strict=False)
        lab = Lab(
            cfg_xrd, store, devices, env=env, analyzer=analyzer, threaded=True, poll_s=max(1.0, 0.05 * factor)
        )
        return cls(lab, physics, bridge, emu.emulators, drivers, clock)

    def run(self, until: float | None = None) -> None:
        self.lab.run(until=until)

    def close(self) -> None:
        self.lab.close()
        for drv in self.drivers:
            try:
                drv.close()
            except Exception:  # pragma: no cover - closing must not hide the real error
                log.exception("closing a driver")
        for emu in self.emulators:
            emu.stop()

    def __enter__(self) -> WireLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "CRUCIBLE_MG",
    "VIAL_MG",
    "EmulatedDevice",
    "Emulators",
    "WireBridge",
    "WireLab",
    "heat_from_program",
    "start_emulators",
]
