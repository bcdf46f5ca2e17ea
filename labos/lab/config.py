"""The lab configuration: devices, sample positions with capacities, precursor inventory, timings.

One TOML file describes a lab. Devices are the drivers' ``DeviceSpec`` entries (see
:mod:`labos.drivers.registry`); what the lab OS needs to know on top of the driver settings sits
in a ``lab`` sub-table of each device, which is stripped before the spec is validated::

    [devices.furnace_1]
    kind = "eurotherm2416"
    port = "/dev/ttyUSB0"
    lab = { role = "furnace", slots = 4, atmospheres = ["air"], max_c = 1200, door = "door_1" }

    [[positions]]                      # racks that belong to no device
    group = "crucible_rack"
    capacity = 16

    [[inventory]]
    formula = "Li2CO3"
    lot = "SA-0423"
    stock_mg = 50000

Roles are what tasks ask for (``doser``, ``furnace``, ``arm``, ``xrd``, ``mixer``, ``grinder``,
``door``); a device with ``slots`` owns a position group of that many slots named after it
(``furnace_1/1`` ... ``furnace_1/4``).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from labos.errors import ConfigError

ROLES = ("doser", "furnace", "arm", "xrd", "mixer", "grinder", "door", "balance", "liquid_handler")

# Driver kind (or a word in it) -> role, so common devices need no explicit ``lab.role``.
_ROLE_HINTS = {  # most specific first: a "furnace_door" is a door
    "door": "door",
    "doser": "doser",
    "quantos": "doser",
    "furnace": "furnace",
    "eurotherm": "furnace",
    "epc": "furnace",
    "arm": "arm",
    "robot": "arm",
    "xrd": "xrd",
    "diffract": "xrd",
    "aeris": "xrd",
    "mixer": "mixer",
    "shaker": "mixer",
    "grinder": "grinder",
    "mill": "grinder",
    "balance": "balance",
    "opentrons": "liquid_handler",
    "liquid": "liquid_handler",
}

# Groups every workflow uses; a config must define them (as device slots or [[positions]]).
DOSING, MIXER, CRUCIBLE_RACK, COOLING_RACK, GRINDER, XRD, STORAGE = (
    "dosing",
    "mixer",
    "crucible_rack",
    "cooling_rack",
    "grinder",
    "xrd",
    "storage",
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceLab(_Model):
    """The lab OS's view of a device (the driver never sees these)."""

    role: str | None = None
    slots: int = Field(default=0, ge=0, le=1000, description="sample slots the device holds")
    group: str | None = Field(default=None, description="position group of the slots (default: device name)")
    holds: list[str] = Field(default_factory=list, description="containers the slots take (empty: any)")
    atmospheres: list[str] = Field(default_factory=lambda: ["air"])
    max_c: float | None = Field(default=None, gt=0, description="°C rating (furnaces)")
    door: str | None = Field(default=None, description="door device of this furnace")
    serves: list[str] = Field(default_factory=list, description="position groups an arm reaches (empty: all)")


class DeviceEntry(_Model):
    """A device as the lab sees it: the driver spec (as a plain dict) plus the lab sub-table."""

    name: str
    kind: str
    spec: dict[str, Any]
    lab: DeviceLab

    @property
    def role(self) -> str:
        return self.lab.role or "other"

    @property
    def slot_group(self) -> str | None:
        return (self.lab.group or self.name) if self.lab.slots else None

    def device_spec(self):
        """The validated :class:`labos.drivers.registry.DeviceSpec` for ``open_device``."""
        from labos.drivers.registry import DeviceSpec

        return DeviceSpec.model_validate(self.spec)


class PositionGroup(_Model):
    """Slots of one kind. Slots on a device are named after it (``doser_2/1``) even when several
    devices share a group (``dosing``)."""

    group: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    capacity: int = Field(ge=1, le=100_000)
    holds: list[str] = Field(default_factory=list)
    device: str | None = None

    @property
    def prefix(self) -> str:
        return self.device or self.group

    def slot_names(self) -> list[str]:
        return [f"{self.prefix}/{i}" for i in range(1, self.capacity + 1)]


class InventoryLot(_Model):
    formula: str
    lot: str = "default"
    stock_mg: float = Field(ge=0)
    low_mg: float = Field(default=1000.0, ge=0, description="raise a refill request below this")
    location: str | None = None

    @field_validator("formula")
    @classmethod
    def _formula(cls, v: str) -> str:
        from labos.domain import parse_formula

        parse_formula(v)
        return v.strip()


class Timing(_Model):
    """Duration estimates (minutes) the scheduler plans with and the fake devices take."""

    dose_per_precursor: float = Field(default=2.0, ge=0)
    vial_place: float = Field(default=0.5, ge=0)
    move: float = Field(default=1.0, ge=0)
    transfer: float = Field(default=2.0, ge=0, description="pour a vial into a crucible")
    door: float = Field(default=0.2, ge=0)
    xrd_overhead: float = Field(default=2.0, ge=0, description="mount, align, unmount")
    analyze: float = Field(default=1.0, ge=0)
    report: float = Field(default=0.0, ge=0)
    furnace_poll: float = Field(default=10.0, gt=0, description="status polling while a programme runs")


class Faults(_Model):
    """What to do when a device step fails."""

    max_retries: int = Field(default=2, ge=0, le=20)
    retry_delay_min: float = Field(default=1.0, ge=0)
    on_exhausted: Literal["intervention", "fail"] = "intervention"
    escalate_after_min: float = Field(default=30.0, gt=0)
    escalate_max_level: int = Field(default=3, ge=1)


class Batching(_Model):
    """Furnace batching: samples sharing one heating profile share one furnace run."""

    enabled: bool = True
    max_wait_min: float = Field(default=60.0, ge=0, description="longest a furnace idles to fill a batch")
    wait_fraction: float = Field(
        default=0.1, ge=0, le=1, description="... and at most this fraction of the programme length"
    )


class Scheduling(_Model):
    feed_bottleneck: bool = Field(
        default=True,
        description="while the diffractometer would idle, start the samples that reach it soonest first",
    )


class LabConfig(_Model):
    name: str = "lab"
    devices: list[DeviceEntry] = Field(default_factory=list)
    positions: list[PositionGroup] = Field(default_factory=list)
    inventory: list[InventoryLot] = Field(default_factory=list)
    timing: Timing = Field(default_factory=Timing)
    faults: Faults = Field(default_factory=Faults)
    batching: Batching = Field(default_factory=Batching)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    arms: dict[str, str] = Field(
        default_factory=dict, description="position group -> arm that moves samples into it"
    )
    xrd_dir: str | None = Field(default=None, description="where diffraction files are kept")
    buffer: str | None = Field(
        default="storage", description="position group where waiting samples are parked to break a stall"
    )

    @property
    def buffer_group(self) -> str | None:
        return self.buffer if self.buffer and self.has_group(self.buffer) else None

    @model_validator(mode="after")
    def _consistent(self) -> LabConfig:
        names = [d.name for d in self.devices]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"device names listed twice: {sorted(dup)}")
        prefixes = [g.prefix for g in self.all_groups()]
        dupg = {g for g in prefixes if prefixes.count(g) > 1}
        if dupg:
            raise ValueError(f"slot names defined twice (position group or device): {sorted(dupg)}")
        for d in self.devices:
            if d.lab.door and d.lab.door not in names:
                raise ValueError(f"device {d.name!r} names door {d.lab.door!r}, which is not a device")
        for group, arm in self.arms.items():
            if arm not in names:
                raise ValueError(f"arms: group {group!r} uses arm {arm!r}, which is not a device")
        lots = [(i.formula, i.lot) for i in self.inventory]
        if len(set(lots)) != len(lots):
            raise ValueError("inventory lists the same formula and lot twice")
        return self

    # ---- derived views (cached: a configuration does not change while a lab runs)

    @cached_property
    def _groups(self) -> tuple[PositionGroup, ...]:
        out = list(self.positions)
        for d in self.devices:
            if d.lab.slots:
                out.append(
                    PositionGroup(group=d.slot_group, capacity=d.lab.slots, holds=d.lab.holds, device=d.name)
                )
        return tuple(out)

    @cached_property
    def _by_group(self) -> dict[str, list[PositionGroup]]:
        out: dict[str, list[PositionGroup]] = {}
        for g in self._groups:
            out.setdefault(g.group, []).append(g)
        return out

    @cached_property
    def _devices(self) -> dict[str, DeviceEntry]:
        return {d.name: d for d in self.devices}

    def all_groups(self) -> list[PositionGroup]:
        return list(self._groups)

    def groups(self, name: str) -> list[PositionGroup]:
        """Every slot set of position group ``name`` (several when devices share a group)."""
        return list(self._by_group.get(name, ()))

    def has_group(self, name: str) -> bool:
        return bool(self.groups(name))

    def capacity(self, name: str) -> int:
        return sum(g.capacity for g in self.groups(name))

    def group_of(self, slot: str) -> str | None:
        prefix = slot.rpartition("/")[0]
        return next((g.group for g in self.all_groups() if g.prefix == prefix), None)

    def device(self, name: str) -> DeviceEntry:
        try:
            return self._devices[name]
        except KeyError:
            raise ConfigError(f"lab {self.name!r} has no device {name!r}") from None

    def by_role(self, role: str) -> list[DeviceEntry]:
        return [d for d in self.devices if d.role == role]

    def furnaces(self) -> list[DeviceEntry]:
        return self.by_role("furnace")

    def arm_for(self, group: str) -> str | None:
        """The arm that carries samples into ``group`` (explicit map, else one that serves it)."""
        if group in self.arms:
            return self.arms[group]
        arms = self.by_role("arm")
        for a in arms:
            if not a.lab.serves or group in a.lab.serves:
                return a.name
        return None

    def check_workflow(self) -> None:
        """Raise ConfigError naming what the default workflow needs and the lab lacks."""
        missing = []
        for role in ("doser", "furnace", "xrd"):
            if not self.by_role(role):
                missing.append(f"a {role} device")
        for g in (DOSING, CRUCIBLE_RACK, COOLING_RACK, XRD, STORAGE):
            if not self.has_group(g):
                missing.append(f"position group {g!r}")
        for f in self.furnaces():
            if not f.lab.slots:
                missing.append(f"slots on furnace {f.name!r}")
        if missing:
            raise ConfigError(f"lab {self.name!r} cannot run experiments: it has no {', '.join(missing)}")


def _device_entries(devices: Any) -> list[dict[str, Any]]:
    if isinstance(devices, Mapping):
        out = []
        for name, body in devices.items():
            if not isinstance(body, Mapping):
                raise ConfigError(f"[devices.{name}] must be a table")
            out.append({"name": name, **body})
        return out
    if isinstance(devices, list):
        for i, body in enumerate(devices):
            if not isinstance(body, Mapping) or "name" not in body:
                raise ConfigError(f"devices[{i}] must be a table with a name")
        return [dict(b) for b in devices]
    raise ConfigError("the devices section must be a table or an array of tables")


def _infer_role(kind: str) -> str | None:
    k = kind.lower()
    if k in ROLES:
        return k
    if re.match(r"^ur(\d+e?)?($|[_\-])", k):  # Universal Robots arms (ur5e, ur_rtde ...)
        return "arm"
    for hint, role in _ROLE_HINTS.items():
        if hint in k:
            return role
    return None


def _device(entry: dict[str, Any]) -> DeviceEntry:
    lab = dict(entry.pop("lab", {}) or {})
    name, kind = entry.get("name"), entry.get("kind")
    if not name or not kind:
        raise ConfigError(f"device {entry!r} needs a name and a kind")
    try:
        from labos.drivers.registry import DeviceSpec

        DeviceSpec.model_validate(entry)
    except ImportError:  # pragma: no cover - the registry is part of the drivers package
        pass
    except ValidationError as exc:
        raise ConfigError(f"device {name!r}: {_problems(exc)}") from None
    lab.setdefault("role", _infer_role(str(kind)))
    if lab["role"] is None:
        raise ConfigError(
            f"device {name!r} of kind {kind!r}: say what it does with lab.role (one of {', '.join(ROLES)})"
        )
    try:
        return DeviceEntry(name=name, kind=kind, spec=entry, lab=DeviceLab.model_validate(lab))
    except ValidationError as exc:
        raise ConfigError(f"device {name!r}: {_problems(exc)}") from None


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors())


def lab_config_from_dict(data: Mapping[str, Any], where: str = "lab configuration") -> LabConfig:
    """Build a LabConfig from parsed TOML (top level or under ``[lab]``)."""
    data = dict(data)
    if "devices" not in data and isinstance(data.get("lab"), Mapping):
        data = dict(data["lab"])
    devices = [_device(e) for e in _device_entries(data.pop("devices", []))]
    try:
        return LabConfig.model_validate({**data, "devices": devices})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_problems(exc)}") from None


def read_lab_file(path: str | Path) -> dict[str, Any]:
    """A lab configuration file's parsed TOML; ConfigError when it is missing or not TOML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"lab configuration {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"lab configuration {path} is not valid TOML: {exc}") from None


def load_lab_config(path: str | Path) -> LabConfig:
    return lab_config_from_dict(read_lab_file(path), where=str(path))


def sim_lab_config(
    *,
    furnaces: int = 4,
    furnace_slots: int = 4,
    dosers: int = 1,
    xrd_slots: int = 4,
    crucible_rack: int = 16,
    cooling_rack: int = 16,
    storage: int = 2000,
    inventory: Mapping[str, float] | None = None,
    name: str = "simlab",
    **overrides: Any,
) -> LabConfig:
    """A configuration of the simulated lab (A-Lab layout: dosing, furnace and characterisation
    stations, each with its own arm)."""
    devices: list[dict[str, Any]] = []
    for i in range(1, dosers + 1):
        devices.append(
            {
                "name": f"doser_{i}",
                "kind": "sim_doser",
                "lab": {"role": "doser", "slots": 1, "group": "dosing"},
            }
        )
    devices += [
        {"name": "mixer_1", "kind": "sim_mixer", "lab": {"role": "mixer", "slots": 2, "group": "mixer"}},
        {
            "name": "arm_dosing",
            "kind": "sim_arm",
            "lab": {"role": "arm", "serves": ["dosing", "mixer", "crucible_rack"]},
        },
        {"name": "arm_furnace", "kind": "sim_arm", "lab": {"role": "arm", "serves": ["cooling_rack"]}},
        {
            "name": "arm_char",
            "kind": "sim_arm",
            "lab": {"role": "arm", "serves": ["grinder", "xrd", "storage"]},
        },
        {
            "name": "grinder_1",
            "kind": "sim_grinder",
            "lab": {"role": "grinder", "slots": 1, "group": "grinder"},
        },
        {"name": "xrd_1", "kind": "sim_xrd", "lab": {"role": "xrd", "slots": xrd_slots, "group": "xrd"}},
    ]
    arms = {}
    for i in range(1, furnaces + 1):
        devices.append(
            {
                "name": f"furnace_{i}",
                "kind": "sim_furnace",
                "lab": {
                    "role": "furnace",
                    "slots": furnace_slots,
                    "holds": ["crucible"],
                    "max_c": 1200,
                    "door": f"door_{i}",
                },
            }
        )
        devices.append({"name": f"door_{i}", "kind": "sim_door", "lab": {"role": "door"}})
        arms[f"furnace_{i}"] = "arm_furnace"
    inv = inventory or {}
    data: dict[str, Any] = {
        "name": name,
        "devices": devices,
        "positions": [
            {"group": "crucible_rack", "capacity": crucible_rack, "holds": ["crucible"]},
            {"group": "cooling_rack", "capacity": cooling_rack, "holds": ["crucible"]},
            {"group": "storage", "capacity": storage},
        ],
        "inventory": [{"formula": f, "lot": "SIM-1", "stock_mg": mg} for f, mg in inv.items()],
        "arms": arms,
        **overrides,
    }
    return lab_config_from_dict(data, where=name)
