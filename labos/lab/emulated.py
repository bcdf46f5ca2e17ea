"""Emulated hardware as a separate process: every device of a lab layout as its wire-level emulator,
with the hidden chemistry behind them, and a lab configuration that points at them.

``labos sim serve-lab`` runs this. The campaign (or any lab OS) then opens that configuration like a
real lab's (:mod:`labos.lab.hardware`): it talks to the emulators over pty and loopback TCP through
the real drivers and knows nothing of the world. Inside this process the :class:`WireBridge`
keeps the physical world in step with the emulators (arm programmes move objects, doses land in
the vial, heated crucibles react, scans are synthesised from the true phases). Dosing heads are
parked at ``heads/<formula>`` and mounted at ``<doser>/head`` by the dosing arm, as on the hardware
side; a head move tells the Quantos emulator (and the bridge) which powder it now doses.

Mixers and grinders become ``timed_station`` devices: they have no protocol, so nothing is emulated.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labos.lab.config import LabConfig, sim_lab_config
from labos.lab.fakes import Physics
from labos.lab.hardware import HEAD_RACK, head_mount, head_position
from labos.lab.wirelab import Emulators, WireBridge, _positions, start_emulators

log = logging.getLogger(__name__)


class HeadBridge(WireBridge):
    """The wire bridge plus dosing heads: a head moved onto a doser's mount sets the powder it doses."""

    def __init__(self, physics: Physics):
        super().__init__(physics)
        self.mounts: dict[str, str] = {}  # "<doser>/head" -> the doser's balance slot

    def moved(self, source: str, destination: str) -> None:
        if destination in self.mounts and source.startswith(f"{HEAD_RACK}/"):
            slot = self.mounts[destination]
            formula = source.split("/", 1)[1]
            if self.powder.get(slot):
                self.errors.append(f"head {formula} mounted on {destination} over {self.powder[slot]}")
            self.powder[slot] = formula
            self.balances[slot].substance = formula
            return
        if source in self.mounts and destination.startswith(f"{HEAD_RACK}/"):
            self.powder[self.mounts[source]] = None
            return
        super().moved(source, destination)


class EmulatedLab:
    """Emulators for every device of ``cfg`` (a layout of ``sim_*`` devices) on one scaled clock."""

    def __init__(
        self,
        cfg: LabConfig,
        *,
        time_scale: float = 500.0,
        seed: int = 0,
        world=None,
        workdir: str | Path | None = None,
        scan_s: float = 600.0,
    ):
        from labos.simulator.emulators import ScaledClock

        self.cfg, self.time_scale, self.seed, self.scan_s = cfg, float(time_scale), seed, scan_s
        self.clock = ScaledClock(self.time_scale)
        if world is None:
            from labos.simulator.world import World

            world = World.demo(seed)
        self.world = world
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="labos-hw-"))
        self.emulators: list[Any] = []
        self.entries: list[dict[str, Any]] = []  # device entries of the served configuration
        self.physics: Physics | None = None
        self.bridge: HeadBridge | None = None
        self.running: Emulators | None = None

    def _formulas(self) -> list[str]:
        if self.cfg.inventory:
            return sorted({lot.formula for lot in self.cfg.inventory})
        from labos.simulator.demo_chemistry import demo_inventory

        return sorted(p.formula for p in demo_inventory())

    def start(self) -> EmulatedLab:
        cfg = self.cfg
        positions = _positions(cfg)
        dosers = [d.name for d in cfg.by_role("doser")]
        for i, name in enumerate(
            [head_position(f) for f in self._formulas()] + [head_mount(n) for n in dosers]
        ):
            base = [2.5 - 0.11 * i, -1.0, 1.1, -1.5, -1.57, 0.5]
            positions[name] = {"joints": base, "approach": [base[0], -0.8, 0.9, -1.5, -1.57, 0.5]}
        running = start_emulators(
            cfg,
            self.clock,
            world=self.world,
            seed=self.seed,
            workdir=self.workdir,
            scan_s=self.scan_s,
            bridge_type=HeadBridge,
            positions=positions,
        )
        bridge = running.bridge
        assert isinstance(bridge, HeadBridge)
        self.running = running
        self.physics, self.bridge, self.emulators = running.physics, bridge, running.emulators
        for ed in running.devices:
            d = ed.device
            if d.role == "doser":
                bridge.mounts[head_mount(d.name)] = ed.slots[0]
            entry = ed.spec()
            if d.spec.get("limits"):
                entry["limits"] = d.spec["limits"]
            entry["lab"] = d.lab.model_dump(mode="json", exclude_defaults=True) | {"role": d.role}
            self.entries.append(entry)
        return self

    def config_dict(self) -> dict[str, Any]:
        """The lab configuration of the served hardware (what ``--write-config`` writes)."""
        data = self.cfg.model_dump(mode="json", exclude={"devices", "xrd_dir"}, exclude_defaults=True)
        data["name"] = self.cfg.name
        data["positions"] = [g.model_dump(mode="json", exclude_defaults=True) for g in self.cfg.positions]
        if not self.cfg.inventory:
            data["inventory"] = [
                {"formula": f, "lot": "EMU-1", "stock_mg": 1_000_000.0} for f in self._formulas()
            ]
        data["hardware"] = {"time_scale": self.time_scale, "builtin_phases": True}
        data["devices"] = self.entries
        return data

    def write_config(self, path: str | Path) -> Path:
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        header = (
            "# Lab configuration of emulated hardware served by `labos sim serve-lab` "
            f"(clock x{self.time_scale:g}); devices point at the emulators' ptys and loopback ports.\n"
        )
        tmp.write_text(header + to_toml(self.config_dict()))
        tmp.replace(path)
        return path

    def stop(self) -> None:
        if self.running is not None:
            self.running.stop()
        self.emulators = []


def serve_config(path: str | Path | None, furnaces: int = 1) -> LabConfig:
    """The layout to emulate: a lab configuration of ``sim_*`` devices, or the simulated layout."""
    if path is None:
        return sim_lab_config(furnaces=furnaces)
    from labos.lab.hardware import load_lab_file

    cfg, _ = load_lab_file(path)
    return cfg


# ---- a small TOML writer (the data here: tables, arrays of tables, strings, numbers, lists)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, Mapping):
        return (
            "{"
            + ", ".join(f"{json.dumps(str(k))} = {_value(x)}" for k, x in v.items() if x is not None)
            + "}"
        )
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """``data`` as TOML: scalars first, then sub-tables, then arrays of tables (one level deep)."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping]] = []
    arrays: list[tuple[str, list]] = []
    for k, v in data.items():
        if v is None:
            continue
        if isinstance(v, Mapping):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{json.dumps(k)} = {_value(v)}")
    for k, v in tables:
        lines += ["", f"[{json.dumps(k)}]"] + [
            f"{json.dumps(a)} = {_value(b)}" for a, b in v.items() if b is not None
        ]
    for k, items in arrays:
        for item in items:
            lines += ["", f"[[{json.dumps(k)}]]"]
            lines += [f"{json.dumps(a)} = {_value(b)}" for a, b in item.items() if b is not None]
    return "\n".join(lines) + "\n"


__all__ = ["EmulatedLab", "HeadBridge", "serve_config", "to_toml"]
