"""A lab on real hardware: every device of the lab configuration opened through the device registry,
the lab OS on a real-time SimPy clock, and outcomes only from analysing the diffractometer's files.

The lab configuration is the usual TOML (:mod:`labos.lab.config`) whose devices name driver kinds
(``quantos``, ``ur``, ``eurotherm2416``, ``furnace_door``, ``aeris`` ...) with their addresses and
limits, plus an optional ``[hardware]`` table (:class:`HardwareSettings`)::

    [hardware]
    time_scale = 1                 # 1 for real hardware (see below)
    phases = ["cifs/"]             # CIF files / folders for the XRD analyser (relative to the file)
    builtin_phases = true          # ... plus the crystal structures labos ships (the demo chemistry)

Two things have no driver protocol and are handled here, honestly:

* **Stations without a protocol** (shakers, mills): kind ``timed_station``. The lab does not talk to
  the station: it puts the vial into the station's slot, leaves it there for the recipe's time and
  takes it out. That is right for a station that processes whatever sits in it (a shaker that runs
  while its lid is closed, a mill started by its own vial sensor or timer). A station a person
  must start does not belong in an autonomous campaign; it is refused with a ConfigError.
* **Powder selection**: a Quantos doses whatever dosing head is mounted; heads are changed by the
  arm that serves the dosing station. Each powder's head sits at the taught arm position
  ``heads/<formula>``; a doser's head mount is ``<doser>/head``. Before a dose of another powder the
  arm puts the mounted head back and mounts the right one (:class:`HeadChangingDoser`); which head
  is mounted is kept in a small state file, so a restarted lab does not mount a second head.

``time_scale`` is for emulated hardware only (``labos sim serve-lab`` serves emulators on a clock
running that many times faster than the wall clock, and writes a configuration with the same
factor); a real lab runs at 1.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labos.errors import ConfigError
from labos.lab.config import DOSING, LabConfig, lab_config_from_dict, read_lab_file
from labos.lab.runtime import Lab
from labos.lab.store import Store

log = logging.getLogger(__name__)

#: device kinds served by this module rather than a driver (no wire protocol)
STATION_KINDS = ("timed_station",)
HEAD_RACK = "heads"


def head_position(formula: str) -> str:
    """The arm position where ``formula``'s dosing head is parked."""
    return f"{HEAD_RACK}/{formula}"


def head_mount(doser: str) -> str:
    """The arm position of ``doser``'s dosing-head mount."""
    return f"{doser}/head"


class HardwareSettings(BaseModel):
    """The ``[hardware]`` table of a lab configuration."""

    model_config = ConfigDict(extra="forbid")

    time_scale: float = Field(
        default=1.0,
        ge=1.0,
        le=100_000.0,
        description="lab seconds per wall second: 1 for real hardware; >1 only for emulated hardware "
        "(labos sim serve-lab) whose clock runs that fast",
    )
    phases: list[str] = Field(
        default_factory=list, description="CIF files or folders of the phases the XRD analyser may find"
    )
    builtin_phases: bool = Field(
        default=True, description="also use the crystal structures labos ships (the demo chemistry's)"
    )
    state_dir: str | None = Field(
        default=None, description="where the lab keeps hardware state (mounted dosing heads)"
    )


def is_hardware(cfg: LabConfig) -> bool:
    """True when the configuration names real device kinds (anything but the simulated ``sim_*``)."""
    return any(not d.kind.startswith("sim") for d in cfg.devices)


def load_lab_file(path: str | Path) -> tuple[LabConfig, HardwareSettings]:
    """A lab configuration file and its ``[hardware]`` table (defaults when there is none)."""
    path = Path(path)
    data = read_lab_file(path)
    hw = data.pop("hardware", None) or {}
    if not isinstance(hw, Mapping):
        raise ConfigError(f"{path}: [hardware] must be a table")
    try:
        settings = HardwareSettings.model_validate(hw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: [hardware]: {problems}") from None
    base = path.resolve().parent
    phases = [str(p if Path(p).is_absolute() else base / p) for p in settings.phases]
    settings = settings.model_copy(update={"phases": phases})
    return lab_config_from_dict(data, where=str(path)), settings


def check_hardware_config(cfg: LabConfig, where: str = "lab configuration") -> None:
    """Refuse what a hardware lab cannot open, naming the device, before anything is opened."""
    from labos.drivers.registry import available_kinds

    kinds = set(available_kinds())
    problems = []
    for d in cfg.devices:
        if d.kind.startswith("sim"):
            problems.append(
                f"device {d.name!r} is simulated (kind {d.kind}) in a lab of real devices; "
                f"use a driver kind{' or timed_station' if d.role in ('mixer', 'grinder') else ''}"
            )
        elif d.kind in STATION_KINDS:
            if d.role not in ("mixer", "grinder"):
                problems.append(f"device {d.name!r}: kind {d.kind} is for mixers and grinders, not {d.role}")
        elif d.kind not in kinds:
            hint = (
                " (a station without a driver: kind timed_station)" if d.role in ("mixer", "grinder") else ""
            )
            problems.append(
                f"device {d.name!r} has unknown kind {d.kind!r}{hint}; known: {', '.join(sorted(kinds))}"
            )
        elif not (d.spec.get("port") or d.spec.get("host")):
            problems.append(
                f"device {d.name!r} ({d.kind}) has no address: give port = ... or host and tcp_port"
            )
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    if cfg.by_role("doser") and cfg.arm_for(DOSING) is None:
        raise ConfigError(
            f"{where}: dosing heads are changed by the arm serving {DOSING!r}; no arm serves it"
        )


def phase_library(settings: HardwareSettings):
    """The XRD analyser's reference phases: the configured CIFs and/or the structures labos ships."""
    from labos.models.xrd.library import PhaseLibrary

    lib = PhaseLibrary()
    for p in settings.phases:
        path = Path(p)
        if path.is_dir():
            lib = lib.merged(PhaseLibrary.from_cif_dir(path))
        elif path.is_file():
            lib = lib.merged(PhaseLibrary.from_files([path]))
        else:
            raise ConfigError(f"[hardware] phases: {path} is neither a CIF file nor a folder")
    if settings.builtin_phases:
        from labos.simulator.demo_chemistry import demo_structures

        lib = lib.merged(PhaseLibrary.from_structures(demo_structures()))
    if not len(lib):
        raise ConfigError("the XRD analyser has no reference phases: set [hardware] phases or builtin_phases")
    return lib


class TimedStation:
    """A station without a protocol (see the module docstring): ``run(minutes)`` waits that long
    on the lab's clock while the vial sits in the station."""

    def __init__(self, name: str, sleep: Callable[[float], None]):
        self.name = name
        self._sleep = sleep
        self.runs = 0

    def run(self, minutes: float, method: str = "") -> None:
        self._sleep(max(0.0, float(minutes)) * 60.0)
        self.runs += 1

    def close(self) -> None:
        pass


class HeadChangingDoser:
    """A Quantos driver plus dosing-head changes by the dosing arm (see the module docstring)."""

    def __init__(self, driver: Any, arm: Any, name: str, state_file: Path):
        self._driver, self._arm, self.name, self._state_file = driver, arm, name, state_file
        self._lock = threading.Lock()
        self.mounted: str | None = self._load()
        self.changes = 0

    def _load(self) -> str | None:
        try:
            return json.loads(self._state_file.read_text()).get(self.name)
        except (OSError, ValueError):
            return None

    def _save(self) -> None:
        try:
            data = json.loads(self._state_file.read_text())
        except (OSError, ValueError):
            data = {}
        data[self.name] = self.mounted
        self._state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._state_file)

    def select_powder(self, formula: str) -> None:
        """Mount ``formula``'s dosing head (the arm parks the mounted one first)."""
        with self._lock:
            if self.mounted == formula:
                return
            if self.mounted is not None:
                self._arm.move(head_mount(self.name), head_position(self.mounted))
                self.mounted = None
                self._save()
            self._arm.move(head_position(formula), head_mount(self.name))
            self.mounted = formula
            self._save()
            self.changes += 1

    def __getattr__(self, name: str):
        return getattr(self._driver, name)


def _address(spec: Mapping[str, Any]) -> str:
    if spec.get("port"):
        return str(spec["port"])
    return f"{spec.get('host')}:{spec.get('tcp_port', '')}".rstrip(":")


def _probe(role: str, drv: Any) -> None:
    """One harmless read, so an unreachable device fails now (naming itself), not mid-campaign."""
    probe = {
        "doser": "identify",
        "balance": "identify",
        "furnace": "status",
        "door": "state",
        "arm": "safety_status",
        "xrd": "ready",
    }.get(role)
    fn = getattr(drv, probe, None) if probe else None
    if callable(fn):
        fn()


class _HardwareLabOS(Lab):
    """The lab OS that also closes its drivers when it is closed (a campaign closes its lab)."""

    drivers: list[Any]

    def close(self) -> None:
        try:
            super().close()
        finally:
            for drv in reversed(getattr(self, "drivers", [])):
                try:
                    drv.close()
                except Exception:  # pragma: no cover - closing must not hide the real error
                    log.exception("closing a driver")


class HardwareLab:
    """A lab of real devices (or emulators over the real wire): ``hw.lab`` is the :class:`Lab`."""

    def __init__(self, lab: Lab, devices: dict[str, Any], clock, settings: HardwareSettings):
        self.lab, self.devices, self.clock, self.settings = lab, devices, clock, settings

    @staticmethod
    def open_devices(
        cfg: LabConfig, settings: HardwareSettings, clock, sleep, *, state_dir: Path
    ) -> tuple[dict[str, Any], list[Any]]:
        """Open every device of ``cfg`` (drivers through the registry); ConfigError naming the
        device that is unknown, has no address, or does not answer. Opened ones are closed on failure."""
        from labos.drivers.registry import open_device

        check_hardware_config(cfg)
        devices: dict[str, Any] = {}
        drivers: list[Any] = []
        try:
            for d in cfg.devices:
                if d.kind in STATION_KINDS:
                    devices[d.name] = TimedStation(d.name, sleep)
                    continue
                try:
                    drv = open_device(d.device_spec(), clock=clock, sleep=sleep)
                except ConfigError:
                    raise
                except Exception as exc:
                    raise ConfigError(
                        f"device {d.name!r} ({d.kind} at {_address(d.spec)}) cannot be opened: {exc}"
                    ) from None
                drivers.append(drv)
                try:
                    _probe(d.role, drv)
                except Exception as exc:
                    raise ConfigError(
                        f"device {d.name!r} ({d.kind} at {_address(d.spec)}) does not answer: {exc}"
                    ) from None
                devices[d.name] = drv
            arm_name = cfg.arm_for(DOSING)
            for d in cfg.by_role("doser"):
                devices[d.name] = HeadChangingDoser(
                    devices[d.name], devices[arm_name], d.name, state_dir / f"{cfg.name}-dosing-heads.json"
                )
        except BaseException:
            for drv in drivers:
                try:
                    drv.close()
                except Exception:  # pragma: no cover
                    log.exception("closing a driver")
            raise
        return devices, drivers

    @classmethod
    def build(
        cls,
        cfg: LabConfig,
        db: str | Store | None = None,
        *,
        settings: HardwareSettings | None = None,
        analyzer: Callable | None = None,
        threshold: float | None = None,
    ) -> HardwareLab:
        """Open the devices and start the lab OS on them (real time × ``settings.time_scale``)."""
        import simpy.rt

        from labos.config import get_settings
        from labos.lab.analysis import xrd_analyzer
        from labos.lab.engine import default_xrd_dir
        from labos.simulator.emulators import ScaledClock

        settings = settings or HardwareSettings()
        cfg.check_workflow()
        store = db if isinstance(db, Store) else Store(db)
        scale = settings.time_scale
        t0 = store.clock_s()
        clock = ScaledClock(scale, start=t0)
        state_dir = Path(settings.state_dir) if settings.state_dir else get_settings().home / "hardware"
        if analyzer is None:
            analyzer = xrd_analyzer(phase_library(settings), threshold=threshold)
        devices, drivers = cls.open_devices(cfg, settings, clock, clock.sleep, state_dir=state_dir)
        try:
            cfg = cfg.model_copy(update={"xrd_dir": str(default_xrd_dir(cfg))})
            env = simpy.rt.RealtimeEnvironment(initial_time=clock.now(), factor=1.0 / scale, strict=False)
            lab = _HardwareLabOS(
                cfg, store, devices, env=env, analyzer=analyzer, threaded=True, poll_s=max(1.0, 0.05 * scale)
            )
        except BaseException:
            for drv in drivers:
                drv.close()
            raise
        lab.drivers = drivers
        return cls(lab, devices, clock, settings)

    def run(self, until: float | None = None) -> None:
        self.lab.run(until=until)

    def close(self) -> None:
        self.lab.close()

    def __enter__(self) -> HardwareLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = [
    "STATION_KINDS",
    "HardwareLab",
    "HardwareSettings",
    "HeadChangingDoser",
    "TimedStation",
    "check_hardware_config",
    "head_mount",
    "head_position",
    "is_hardware",
    "load_lab_file",
    "phase_library",
]
