"""Device registry: which driver serves which kind of device, and the lab configuration that names them.

A lab configuration (TOML) lists devices under ``[devices.<name>]`` (or ``[[devices]]`` with a
``name``)::

    [devices.furnace_a]
    kind = "eurotherm2416"
    port = "/dev/ttyUSB0"
    options = { slave_address = 1 }
    limits = { max_temperature_c = 1100, max_ramp_c_per_min = 10 }

    [devices.door_a]
    kind = "furnace_door"
    host = "192.168.1.40"
    tcp_port = 8888
    limits = { safe_door_temperature_c = 200 }

Driver modules register a factory per kind with :func:`register_kind`; :func:`open_device` finds
the factory (importing the driver modules of this package on first use, all but
:data:`NOT_DRIVERS`) and opens the device. Factories take the lab objects a driver needs from
``open_device``'s context with :func:`lab_context` and build the driver with :func:`construct`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labos.errors import ConfigError

__all__ = [
    "NOT_DRIVERS",
    "DeviceLimits",
    "DeviceSpec",
    "available_kinds",
    "check_options",
    "construct",
    "driver_modules",
    "lab_context",
    "load_lab_devices",
    "open_device",
    "register_kind",
]

log = logging.getLogger(__name__)

Factory = Callable[..., Any]
T = TypeVar("T")

#: kind -> factory(spec, **context) returning an open driver.
DEVICE_KINDS: dict[str, Factory] = {}

#: modules of labos.drivers that hold no driver; discovery never imports them (the benchmark, for
#: one, pulls in emulators). A new helper module belongs here, else discovery warns about it.
NOT_DRIVERS = frozenset(
    {
        "benchmarks",
        "bisynch",
        "errors",
        "furnace_transport",
        "protocols",
        "registry",
        "rtde",
        "safety",
        "transport",
    }
)
_discovered = False
_broken: dict[str, str] = {}  # module -> why it failed to import
_kinds_by_module: dict[str, list[str]] = {}  # module -> the kinds it registered


class DeviceLimits(BaseModel):
    """Safety limits enforced by the drivers before any byte goes to the device (None = no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_temperature_c: float | None = Field(default=None, gt=0, description="°C")
    max_ramp_c_per_min: float | None = Field(default=None, gt=0, description="°C/min")
    max_dwell_min: float | None = Field(default=None, gt=0, description="min")
    safe_door_temperature_c: float | None = Field(default=None, description="°C; door opens only below")
    max_dose_mg: float | None = Field(default=None, gt=0, description="mg")
    min_dose_mg: float | None = Field(default=None, ge=0, description="mg")
    max_tolerance_pct: float | None = Field(default=None, gt=0, description="% of the target mass")


class DeviceSpec(BaseModel):
    """One device of the lab: what it is, where it is connected, and its limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1, description="registered driver kind, e.g. 'quantos', 'eurotherm2416'")
    port: str | None = Field(default=None, description="serial port, e.g. /dev/ttyUSB0")
    host: str | None = None
    tcp_port: int | None = Field(default=None, ge=1, le=65535)
    options: dict[str, Any] = Field(default_factory=dict, description="driver-specific settings")
    limits: DeviceLimits = Field(default_factory=DeviceLimits)

    @model_validator(mode="after")
    def _one_address(self) -> DeviceSpec:
        if self.port and self.host:
            raise ValueError(f"device {self.name!r}: give either port or host, not both")
        if self.tcp_port is not None and not self.host:
            raise ValueError(f"device {self.name!r}: tcp_port given without host")
        return self

    def transport_kwargs(self) -> dict[str, Any]:
        """Address fields in the form :func:`labos.drivers.transport.open_transport` takes."""
        if self.port:
            return {"name": self.name, "port": self.port}
        if self.host and self.tcp_port:
            return {"name": self.name, "host": self.host, "tcp_port": self.tcp_port}
        raise ConfigError(f"device {self.name!r} (kind {self.kind}) needs a serial port or host and tcp_port")


def register_kind(*kinds: str) -> Callable[[Factory], Factory]:
    """Decorator: ``@register_kind("quantos")`` on ``def open_quantos(spec, **context)``."""
    if not kinds:
        raise ValueError("register_kind needs at least one kind name")

    def deco(factory: Factory) -> Factory:
        for kind in kinds:
            existing = DEVICE_KINDS.get(kind)
            if existing is not None and existing is not factory and _qualname(existing) != _qualname(factory):
                raise ConfigError(f"device kind {kind!r} is already registered by {_qualname(existing)}")
            DEVICE_KINDS[kind] = factory
        return factory

    return deco


def _qualname(f: Factory) -> str:
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', repr(f))}"


def driver_modules() -> list[str]:
    """The modules discovery imports: every public module of labos.drivers not in NOT_DRIVERS."""
    import labos.drivers as pkg

    return [
        f"labos.drivers.{info.name}"
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name)
        if not info.name.startswith("_") and info.name not in NOT_DRIVERS
    ]


def _discover() -> None:
    """Import every driver module of labos.drivers once, so their @register_kind lines run."""
    global _discovered
    if _discovered:
        return
    for module in driver_modules():
        before = set(DEVICE_KINDS)
        try:
            importlib.import_module(module)
        except Exception as exc:  # one broken driver module must not hide the others
            _broken[module] = f"{type(exc).__name__}: {exc}"
            log.warning("driver module %s failed to import: %s", module, exc)
            continue
        mine = sorted(k for k, f in DEVICE_KINDS.items() if getattr(f, "__module__", None) == module)
        _kinds_by_module[module] = mine or sorted(set(DEVICE_KINDS) - before)
        if not _kinds_by_module[module]:
            log.warning(
                "%s registers no device kind; list it in registry.NOT_DRIVERS if it is no driver", module
            )
    _discovered = True


def lab_context(context: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The lab objects a driver takes from ``open_device``'s context (default ``clock`` and
    ``sleep``), as keyword arguments. A clock is a :class:`~labos.simulator.clock.Clock` (``now()``
    in seconds); a bare function returning seconds is wrapped into one."""
    out: dict[str, Any] = {}
    for key in keys or ("clock", "sleep"):
        value = context.get(key)
        if value is None:
            continue
        if key == "clock" and not hasattr(value, "now"):
            if not callable(value):
                raise ConfigError(
                    f"context clock must be a Clock or a function returning seconds, not {value!r}"
                )
            value = _FunctionClock(value)
        out[key] = value
    return out


class _FunctionClock:
    """A Clock over a function such as ``time.monotonic``."""

    def __init__(self, fn: Callable[[], float]):
        self.now = fn


def check_options(
    spec: DeviceSpec, factory: Callable[..., Any], *args: Any, options: Mapping[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """``kwargs`` and the device's ``options`` as one set of keyword arguments for ``factory``;
    ConfigError naming the device when an option is unknown to it or clashes with what the lab
    sets itself (name, limits, clock...), before anything is opened."""
    clash = sorted(set(options) & set(kwargs))
    if clash:
        raise ConfigError(f"device {spec.name!r} ({spec.kind}): {clash} cannot be set in options")
    merged = {**kwargs, **options}
    try:
        inspect.signature(factory).bind(*args, **merged)
    except TypeError as exc:
        raise ConfigError(f"device {spec.name!r} ({spec.kind}): bad options: {exc}") from None
    return merged


def construct(spec: DeviceSpec, factory: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``factory(*args, **kwargs, **spec.options)`` after :func:`check_options`."""
    return factory(*args, **check_options(spec, factory, *args, options=spec.options, **kwargs))


def available_kinds() -> list[str]:
    _discover()
    return sorted(DEVICE_KINDS)


def open_device(spec: DeviceSpec | Mapping[str, Any], **context: Any) -> Any:
    """Open the driver for ``spec``. ``context`` passes lab objects a driver may need
    (e.g. ``temperature_c=`` for a door interlock, ``clock=``, ``sleep=``)."""
    if not isinstance(spec, DeviceSpec):
        spec = DeviceSpec.model_validate(spec)
    factory = DEVICE_KINDS.get(spec.kind)
    if factory is None:
        _discover()
        factory = DEVICE_KINDS.get(spec.kind)
    if factory is None:
        broken = "".join(f"; {m} failed to import ({why})" for m, why in _broken.items())
        raise ConfigError(
            f"device {spec.name!r}: unknown kind {spec.kind!r}; "
            f"known kinds: {', '.join(available_kinds())}{broken}"
        )
    return factory(spec, **context)


def _device_entries(devices: Any) -> list[dict[str, Any]]:
    if isinstance(devices, Mapping):
        entries = []
        for name, body in devices.items():
            if not isinstance(body, Mapping):
                raise ConfigError(f"[devices.{name}] must be a table, got {type(body).__name__}")
            entry = dict(body)
            if "name" in entry and entry["name"] != name:
                raise ConfigError(f"[devices.{name}] has a different name = {entry['name']!r}")
            entry["name"] = name
            entries.append(entry)
        return entries
    if isinstance(devices, list):
        entries = []
        for i, body in enumerate(devices):
            if not isinstance(body, Mapping) or "name" not in body:
                raise ConfigError(f"devices[{i}] must be a table with a name")
            entries.append(dict(body))
        return entries
    raise ConfigError(
        f"the devices section must be a table or an array of tables, not {type(devices).__name__}"
    )


def load_lab_devices(
    source: str | Path | Mapping[str, Any], *, check_kinds: bool = True
) -> dict[str, DeviceSpec]:
    """Read the devices section of a lab configuration (a TOML path or an already-parsed dict).

    The section may sit at top level (``[devices.x]``) or under ``[lab]``. With ``check_kinds``
    every kind must be registered, so a typo fails when the file is loaded, not mid-run.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"lab configuration {path} does not exist")
        try:
            data: Mapping[str, Any] = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"lab configuration {path} is not valid TOML: {exc}") from None
        where = str(path)
    else:
        data, where = source, "lab configuration"
    if "devices" not in data and isinstance(data.get("lab"), Mapping):
        data = data["lab"]
    if "devices" not in data:
        raise ConfigError(f"{where} has no [devices] section")
    specs: dict[str, DeviceSpec] = {}
    for entry in _device_entries(data["devices"]):
        name = entry.get("name")
        try:
            spec = DeviceSpec.model_validate(entry)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'device'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"{where}: device {name!r}: {problems}") from None
        if spec.name in specs:
            raise ConfigError(f"{where}: device {spec.name!r} is listed twice")
        if check_kinds and spec.kind not in DEVICE_KINDS:
            _discover()
            if spec.kind not in DEVICE_KINDS:
                raise ConfigError(
                    f"{where}: device {spec.name!r} has unknown kind {spec.kind!r}; "
                    f"known kinds: {', '.join(available_kinds())}"
                )
        specs[spec.name] = spec
    return specs
