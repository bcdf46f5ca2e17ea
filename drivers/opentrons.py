"""Opentrons OT-2 / Flex liquid handler: Protocol API v2 generation, offline simulation, HTTP client.

Why three parts: a dosing plan (which solution, how many µL, into which well) becomes a Protocol
API v2 Python file (:func:`generate_protocol`); :func:`simulate_protocol` runs it through
``opentrons.simulate`` (opentrons 8.8.2) and reports what would be aspirated and dispensed, so a
plan is checked before a robot sees it; :class:`OpentronsClient` uploads it to the robot's HTTP
API (port 31950, ``Opentrons-Version`` header on every request) and creates, plays and watches
runs. Wet mixing of metal-nitrate solutions needs volumes from masses: :func:`volume_for_mass_ul`.

Retries: GETs (status) are retried; uploading a protocol is harmless to repeat; creating a run and
the ``play`` action are sent once, so a liquid is never dispensed twice because a reply was lost.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.registry import DeviceSpec, construct, lab_context, register_kind
from labos.drivers.transport import HttpLink, retry_call
from labos.simulator.clock import Clock, WallClock
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from labos.errors import ConfigError, LabosError

log = logging.getLogger("labos.drivers.opentrons")

API_HEADER = "Opentrons-Version"
DEFAULT_API_LEVEL = "2.20"
RUN_STATUSES = frozenset(
    {
        "idle",
        "running",
        "paused",
        "blocked-by-open-door",
        "stop-requested",
        "stopped",
        "finishing",
        "failed",
        "succeeded",
        "awaiting-recovery",
    }
)

# Working volume range (µL) of each pipette model and its usual tip rack.
# Source: Opentrons Python Protocol API v2 docs, "Loading pipettes" / pipette specifications
# (https://docs.opentrons.com/v2/new_pipette.html), OT-2 GEN2 and Flex pipettes.
PIPETTES: dict[str, tuple[str, float, float, str]] = {
    "p20_single_gen2": ("OT-2", 1.0, 20.0, "opentrons_96_tiprack_20ul"),
    "p300_single_gen2": ("OT-2", 20.0, 300.0, "opentrons_96_tiprack_300ul"),
    "p1000_single_gen2": ("OT-2", 100.0, 1000.0, "opentrons_96_tiprack_1000ul"),
    "flex_1channel_50": ("Flex", 1.0, 50.0, "opentrons_flex_96_tiprack_50ul"),
    "flex_1channel_1000": ("Flex", 5.0, 1000.0, "opentrons_flex_96_tiprack_1000ul"),
}
_LOAD_NAME = re.compile(r"[a-z0-9_.]+")
_WELL = re.compile(r"[A-P](?:[1-9]|1[0-9]|2[0-4])")


def _check_well(v: str) -> str:
    if not _WELL.fullmatch(v):
        raise ValueError(f"not a well name: {v!r}")
    return v


Well = Annotated[str, AfterValidator(_check_well)]  # "A1" ... "P24"


class ProtocolCheckError(LabosError, ValueError):
    """A dosing plan or protocol that cannot run (bad labware, out of tips, simulation error...)."""


# -- dosing plans --------------------------------------------------------------------------------
class Solution(BaseModel):
    """A stock solution (or a pure solvent, concentration None) in one well of the source labware."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    well: Well
    formula: str | None = None
    concentration_mol_l: float | None = Field(None, gt=0)
    molar_mass_g_mol: float | None = Field(None, gt=0)


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    solution: str
    destination: Well
    volume_ul: float = Field(gt=0)


class DosingPlan(BaseModel):
    """Which solutions go into which wells, on which robot, pipette and labware."""

    model_config = ConfigDict(extra="forbid")

    title: str = "labos liquid dosing"
    robot: Literal["OT-2", "Flex"] = "OT-2"
    api_level: str = DEFAULT_API_LEVEL
    pipette: str = "p300_single_gen2"
    mount: Literal["left", "right"] = "right"
    tip_rack: str | None = None
    tip_rack_slots: list[str] = Field(default_factory=lambda: ["1"])
    source_labware: str = "nest_12_reservoir_15ml"
    source_slot: str = "2"
    destination_labware: str = "corning_24_wellplate_3.4ml_flat"
    destination_slot: str = "3"
    new_tip: Literal["always", "once"] = "always"
    mix_after: tuple[int, float] | None = None  # (repetitions, µL) after each transfer
    solutions: list[Solution]
    transfers: list[Transfer]

    @model_validator(mode="after")
    def _consistent(self) -> DosingPlan:
        if self.pipette not in PIPETTES:
            raise ValueError(f"unknown pipette {self.pipette!r}; known: {', '.join(PIPETTES)}")
        robot, vmin, _, _ = PIPETTES[self.pipette]
        if robot != self.robot:
            raise ValueError(f"pipette {self.pipette} belongs on an {robot}, not an {self.robot}")
        if not re.fullmatch(r"2\.\d{1,2}", self.api_level):
            raise ValueError(f"api_level must look like '2.20', got {self.api_level!r}")
        for name in (self.tip_rack or "x", self.source_labware, self.destination_labware):
            if not _LOAD_NAME.fullmatch(name):
                raise ValueError(f"not an Opentrons labware load name: {name!r}")
        for slot in [self.source_slot, self.destination_slot, *self.tip_rack_slots]:
            if not re.fullmatch(r"[1-9]|1[01]|[A-D][1-4]", slot):
                raise ValueError(f"not a deck slot: {slot!r}")
        used = [self.source_slot, self.destination_slot, *self.tip_rack_slots]
        if len(set(used)) != len(used):
            raise ValueError(f"two labware share a deck slot: {used}")
        names = [s.name for s in self.solutions]
        if len(set(names)) != len(names):
            raise ValueError("solution names must be unique")
        known = set(names)
        for t in self.transfers:
            if t.solution not in known:
                raise ValueError(f"transfer uses unknown solution {t.solution!r}")
            if t.volume_ul < vmin:
                raise ValueError(
                    f"{t.volume_ul:g} µL of {t.solution} is below the {vmin:g} µL minimum of {self.pipette}"
                )
        if not self.transfers:
            raise ValueError("a dosing plan needs at least one transfer")
        return self

    @property
    def tip_rack_name(self) -> str:
        return self.tip_rack or PIPETTES[self.pipette][3]

    def expected_ul(self) -> dict[str, float]:
        """Total µL each destination well should receive."""
        out: dict[str, float] = {}
        for t in self.transfers:
            out[t.destination] = out.get(t.destination, 0.0) + t.volume_ul
        return out


def molar_mass_g_mol(formula: str) -> float:
    from pymatgen.core import Composition

    try:
        return float(Composition(formula).weight)
    except Exception as exc:  # pymatgen raises several types for bad formulas
        raise ProtocolCheckError(f"cannot compute the molar mass of {formula!r}: {exc}") from None


def volume_for_mass_ul(mass_mg: float, solution: Solution) -> float:
    """µL of ``solution`` that hold ``mass_mg`` of its solute (mg / (g/mol) = mmol; mmol / (mol/L) = mL)."""
    if solution.concentration_mol_l is None:
        raise ProtocolCheckError(f"{solution.name} has no concentration; it is a solvent")
    if mass_mg <= 0:
        raise ProtocolCheckError(f"mass must be positive, got {mass_mg} mg")
    mm = solution.molar_mass_g_mol or (molar_mass_g_mol(solution.formula) if solution.formula else None)
    if mm is None:
        raise ProtocolCheckError(f"{solution.name} needs a formula or molar_mass_g_mol")
    return mass_mg / mm / solution.concentration_mol_l * 1000.0


def wet_mixing_plan(
    masses_mg: Mapping[str, float],
    solutions: list[Solution],
    destination: str,
    *,
    solvent: str | None = None,
    total_volume_ul: float | None = None,
    **plan_options: Any,
) -> DosingPlan:
    """Transfers that put ``masses_mg`` (solution name → mg of solute) into one well, topped up with
    ``solvent`` to ``total_volume_ul``."""
    by_name = {s.name: s for s in solutions}
    transfers = []
    for name, mg in masses_mg.items():
        if name not in by_name:
            raise ProtocolCheckError(f"no solution named {name!r}; have {', '.join(by_name)}")
        transfers.append(
            Transfer(solution=name, destination=destination, volume_ul=volume_for_mass_ul(mg, by_name[name]))
        )
    if total_volume_ul is not None:
        if solvent is None or solvent not in by_name:
            raise ProtocolCheckError("topping up needs the name of a solvent among the solutions")
        rest = total_volume_ul - sum(t.volume_ul for t in transfers)
        if rest < 0:
            raise ProtocolCheckError(f"the solutions alone need more than {total_volume_ul:g} µL")
        if rest > 0:
            transfers.append(Transfer(solution=solvent, destination=destination, volume_ul=rest))
    try:
        return DosingPlan(solutions=solutions, transfers=transfers, **plan_options)
    except ValueError as exc:
        raise ProtocolCheckError(f"dosing plan is not valid: {exc}") from None


def generate_protocol(plan: DosingPlan) -> str:
    """Protocol API v2 source for ``plan`` (every value is a Python literal; nothing is interpolated
    as code)."""
    wells = {s.name: s.well for s in plan.solutions}
    transfers = [
        (t.solution, wells[t.solution], t.destination, round(t.volume_ul, 3)) for t in plan.transfers
    ]
    trash = '    protocol.load_trash_bin("A3")\n' if plan.robot == "Flex" else ""
    mix = f", mix_after={tuple(plan.mix_after)!r}" if plan.mix_after else ""
    return f'''"""{plan.title.replace('"', "'")} -- generated by labos from a dosing plan; do not edit."""

from opentrons import protocol_api

metadata = {{"protocolName": {plan.title!r}, "author": "labos"}}
requirements = {{"robotType": {plan.robot!r}, "apiLevel": {plan.api_level!r}}}

TIP_RACK = {plan.tip_rack_name!r}
TIP_RACK_SLOTS = {plan.tip_rack_slots!r}
SOURCE = ({plan.source_labware!r}, {plan.source_slot!r})
DESTINATION = ({plan.destination_labware!r}, {plan.destination_slot!r})
PIPETTE = ({plan.pipette!r}, {plan.mount!r})
# (solution, source well, destination well, volume in µL)
TRANSFERS = {transfers!r}


def run(protocol: protocol_api.ProtocolContext) -> None:
    tips = [protocol.load_labware(TIP_RACK, slot) for slot in TIP_RACK_SLOTS]
    source = protocol.load_labware(*SOURCE)
    destination = protocol.load_labware(*DESTINATION)
{trash}    pipette = protocol.load_instrument(*PIPETTE, tip_racks=tips)
    for solution, src, dst, volume in TRANSFERS:
        protocol.comment(f"{{volume}} uL of {{solution}} -> {{dst}}")
        pipette.transfer(volume, source[src], destination[dst], new_tip={plan.new_tip!r}{mix})
'''


# -- offline simulation --------------------------------------------------------------------------
_SIM_LOCK = threading.Lock()


def _ensure_config_dir() -> None:
    """opentrons reads OT_API_CONFIG_DIR at import time; never let it write into ~/.opentrons."""
    if not os.environ.get("OT_API_CONFIG_DIR"):
        os.environ["OT_API_CONFIG_DIR"] = tempfile.mkdtemp(prefix="labos-opentrons-")


@dataclass(frozen=True)
class SimulationReport:
    """What ``opentrons.simulate`` says the protocol would do."""

    robot: str
    api_level: str
    steps: tuple[str, ...]
    aspirated_ul: dict[str, float] = field(default_factory=dict)  # "slot:well" -> µL
    dispensed_ul: dict[str, float] = field(default_factory=dict)
    tips_used: int = 0
    overfilled: tuple[str, ...] = ()  # wells that would hold more than their maximum volume

    @property
    def duration_estimate_s(self) -> float:
        """Rough run time: a few seconds per aspirate, dispense and tip change."""
        return 4.0 * self.tips_used + 3.0 * sum(
            1 for s in self.steps if s.startswith(("Aspirating", "Dispensing", "Mixing"))
        )


def _run_off_loop(fn):
    """Call ``fn`` in a worker thread when this thread already runs an event loop.

    ``opentrons.simulate`` calls ``asyncio.run()``, which fails inside a running loop (a web
    server, a notebook, a browser-automation session); a fresh thread has none.
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn()
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result()


def simulate_protocol(text: str, file_name: str = "protocol.py") -> SimulationReport:
    """Run ``text`` through ``opentrons.simulate``; ProtocolCheckError names the problem."""
    return _simulate_cached(hashlib.sha256(text.encode()).hexdigest(), text, file_name)


@functools.lru_cache(maxsize=64)
def _simulate_cached(_digest: str, text: str, file_name: str) -> SimulationReport:
    _ensure_config_dir()
    with _SIM_LOCK:
        from opentrons import simulate

        logging.getLogger("opentrons").setLevel(logging.WARNING)
        try:
            runlog = _run_off_loop(lambda: simulate.simulate(io.StringIO(text), file_name)[0])
        except Exception as exc:  # opentrons raises many types (SyntaxError, OutOfTips, KeyError...)
            raise ProtocolCheckError(
                f"opentrons.simulate rejected {file_name}: {type(exc).__name__}: {exc}"
            ) from None
    steps, asp, disp, capacity = [], {}, {}, {}
    tips = 0
    for entry in runlog:
        payload = entry.get("payload", {})
        text_ = str(payload.get("text", ""))
        steps.append(text_)
        if text_.startswith("Picking up tip"):
            tips += 1
        if text_.startswith(("Aspirating", "Dispensing")) and "volume" in payload:
            well = _well_of(payload.get("location"))
            if well is None:
                continue
            key, max_volume = well
            target = asp if text_.startswith("Aspirating") else disp
            target[key] = target.get(key, 0.0) + float(payload["volume"])
            capacity[key] = max_volume
    robot, api = _requirements(text)
    over = tuple(k for k, v in disp.items() if capacity.get(k) and v - asp.get(k, 0.0) > capacity[k] + 1e-6)
    return SimulationReport(robot, api, tuple(steps), asp, disp, tips, over)


def _well_of(location: Any) -> tuple[str, float] | None:
    try:
        well = location.labware.as_well()
        return f"{well.parent.parent}:{well.well_name}", float(well.max_volume)
    except Exception:
        return None


def _requirements(text: str) -> tuple[str, str]:
    robot = re.search(r"[\"']robotType[\"']\s*:\s*[\"']([\w-]+)[\"']", text)
    api = re.search(r"[\"']apiLevel[\"']\s*:\s*[\"']([\d.]+)[\"']", text)
    return (robot.group(1) if robot else "OT-2", api.group(1) if api else "")


def check_protocol(plan: DosingPlan, text: str | None = None) -> SimulationReport:
    """Simulate the protocol of ``plan`` and check that each well gets what the plan says."""
    text = text if text is not None else generate_protocol(plan)
    report = simulate_protocol(text, "dosing.py")
    for well, want in plan.expected_ul().items():
        key = f"{plan.destination_slot}:{well}"
        got = report.dispensed_ul.get(key, 0.0) - report.aspirated_ul.get(
            key, 0.0
        )  # mixing moves liquid back
        if abs(got - want) > 0.01 + 1e-6 * want:
            raise ProtocolCheckError(
                f"simulation dispenses {got:g} µL into {well}, the plan says {want:g} µL"
            )
    if report.overfilled:
        raise ProtocolCheckError(f"wells would overflow: {', '.join(report.overfilled)}")
    return report


# -- HTTP client ---------------------------------------------------------------------------------
class HttpSend(Protocol):
    """Sends one request and returns (status, body bytes); :meth:`HttpLink.request` is the real one."""

    def __call__(
        self, method: str, path: str, *, body: bytes | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes]: ...


def multipart_file(field_name: str, file_name: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body holding one file; returns (body, Content-Type header)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{file_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class OpentronsClient:
    """The robot's HTTP API (port 31950). Satisfies ``LiquidHandler``.

    One keep-alive connection (:class:`~labos.drivers.transport.HttpLink`); ``transport`` replaces
    it with any :class:`HttpSend` (tests feed canned replies through it).
    """

    def __init__(
        self,
        host: str,
        port: int = 31950,
        *,
        api_version: str = "3",
        timeout_s: float = 10.0,
        retries: int = 2,
        poll_s: float = 1.0,
        check_protocols: bool = True,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "opentrons",
        transport: HttpSend | None = None,
    ):
        self.name = name
        self.base_url = f"http://{host}:{int(port)}"
        self.retries = retries
        self.poll_s = poll_s
        self.check_protocols = check_protocols
        self.clock = clock or WallClock()
        self._sleep = sleep
        self._link: HttpLink | None = None
        if transport is None:
            self._link = HttpLink(host, port, timeout=timeout_s, name=name)
            transport = self._link.request
        self._send: HttpSend = transport
        self._version_header = {API_HEADER: api_version}

    # -- plumbing ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        safe: bool,
        data_key: str | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> dict:
        """One API call; with ``data_key`` the reply must hold ``data.<data_key>`` (a reply meant for
        another request is a ProtocolError, retried like a lost one when ``safe``)."""
        headers = dict(self._version_header)
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type

        def once() -> dict:
            reply = self._once(method, path, body, headers)
            return self._data(reply, f"{method} {path}", key=data_key) if data_key else reply

        return retry_call(
            once,
            retries=self.retries,
            safe=safe,
            what=f"{method} {path}",
            device=self.name,
            retry_if=lambda exc: not (isinstance(exc, ProtocolError) and exc.code in (422, 404)),
        )

    def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> dict:
        status, raw = self._send(method, path, body=body, headers=headers)
        try:
            reply = json.loads(raw)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            raise ProtocolError(
                f"{method} {path}: HTTP {status} with a body that is not JSON: {raw[:200]!r}",
                device=self.name,
                code="garbage",
            ) from None
        if not isinstance(reply, dict):
            raise ProtocolError(
                f"{method} {path}: reply is not a JSON object", device=self.name, code="shape"
            )
        if status >= 400:
            detail = _error_text(reply)
            if status == 422:
                raise ProtocolError(f"{method} {path} rejected (422): {detail}", device=self.name, code=422)
            if status == 409:
                raise DeviceBusy(f"{method} {path} refused (409): {detail}", device=self.name, code=409)
            if status == 404:
                raise ProtocolError(f"{method} {path}: not found: {detail}", device=self.name, code=404)
            raise DeviceFault(f"{method} {path}: HTTP {status}: {detail}", device=self.name, code=status)
        return reply

    def _data(self, body: dict, what: str, *, key: str | None = None) -> dict:
        data = body.get("data")
        if not isinstance(data, dict) or (key is not None and key not in data):
            raise ProtocolError(
                f"{what}: reply has no data{'.' + key if key else ''}: {str(body)[:200]}",
                device=self.name,
                code="shape",
            )
        return data

    # -- API -----------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._request("GET", "/health", safe=True)

    def upload_protocol(self, protocol_text: str, name: str = "protocol.py") -> str:
        """POST /protocols; returns the protocol id. Uploading twice only stores a second copy."""
        if not re.fullmatch(r"[\w.-]+\.py", name):
            raise ValueError(f"{self.name}: protocol file name must be a simple *.py name, got {name!r}")
        if self.check_protocols:
            simulate_protocol(protocol_text, name)
        body, content_type = multipart_file("files", name, protocol_text.encode(), "text/x-python")
        reply = self._request(
            "POST", "/protocols", safe=True, data_key="id", body=body, content_type=content_type
        )
        return str(reply["id"])

    def analysis(self, protocol_id: str) -> dict:
        """The robot's latest analysis of a protocol (``result`` ok / not-ok, ``errors``)."""
        body = self._request("GET", f"/protocols/{protocol_id}/analyses", safe=True)
        items = body.get("data")
        if not isinstance(items, list) or not items:
            raise ProtocolError(f"no analysis of protocol {protocol_id}", device=self.name, code="shape")
        return items[-1]

    def create_run(self, protocol_id: str) -> str:
        data = self._request(
            "POST", "/runs", safe=False, data_key="id", json_body={"data": {"protocolId": protocol_id}}
        )
        return str(data["id"])

    def action(self, run_id: str, action: Literal["play", "pause", "stop"]) -> None:
        """play/pause/stop a run. ``play`` is never retried (it could start dispensing twice)."""
        if action not in ("play", "pause", "stop"):
            raise ValueError(f"unknown run action {action!r}")
        self._request(
            "POST",
            f"/runs/{run_id}/actions",
            safe=action == "stop",
            json_body={"data": {"actionType": action}},
        )

    def run(self, run_id: str) -> dict:
        return self._request("GET", f"/runs/{run_id}", safe=True, data_key="status")

    def run_status(self, run_id: str) -> str:
        status = str(self.run(run_id)["status"])
        if status not in RUN_STATUSES:
            raise ProtocolError(f"unknown run status {status!r}", device=self.name, code="status")
        return status

    def run_protocol(self, protocol_text: str, name: str = "protocol.py") -> str:
        """Check, upload, analyse, create a run and play it (once); returns the run id."""
        protocol_id = self.upload_protocol(protocol_text, name)
        analysis = self.analysis(protocol_id)
        if analysis.get("result") not in (None, "ok"):
            raise DeviceError(
                f"the robot's analysis of {name} failed: {_error_text(analysis)}",
                device=self.name,
                code="analysis",
            )
        run_id = self.create_run(protocol_id)
        self.action(run_id, "play")
        return run_id

    def resume(self, run_id: str) -> None:
        """Resume a paused run (after the door was closed); refuses unless the run is paused."""
        status = self.run_status(run_id)
        if status != "paused":
            raise DeviceBusy(f"run {run_id} is {status}, not paused", device=self.name, code=status)
        self.action(run_id, "play")

    def wait_for_run(self, run_id: str, timeout_s: float = 3600.0) -> str:
        """Poll until the run succeeds; typed errors for failed/stopped/door-open/timeout."""
        t0 = self.clock.now()
        while True:
            run = self.run(run_id)
            status = str(run["status"])
            if status == "succeeded":
                return status
            if status == "failed":
                raise DeviceFault(f"run {run_id} failed: {_error_text(run)}", device=self.name, code="failed")
            if status in ("stopped", "stop-requested"):
                raise DeviceFault(f"run {run_id} was stopped", device=self.name, code=status)
            if status == "awaiting-recovery":
                raise DeviceFault(
                    f"run {run_id} needs error recovery on the robot", device=self.name, code=status
                )
            if status == "blocked-by-open-door":
                raise DeviceBusy(
                    f"run {run_id} is blocked by the open door; close it and call resume()",
                    device=self.name,
                    code=status,
                )
            if status not in RUN_STATUSES:
                raise ProtocolError(f"unknown run status {status!r}", device=self.name, code="status")
            if self.clock.now() - t0 >= timeout_s:
                raise DeviceTimeout(
                    f"run {run_id} still {status} after {timeout_s:g} s", device=self.name, code="run"
                )
            self._sleep(self.poll_s)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()

    def __enter__(self) -> OpentronsClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _error_text(body: Mapping[str, Any]) -> str:
    errors = body.get("errors") or []
    if isinstance(errors, list) and errors:
        parts = []
        for e in errors:
            if isinstance(e, Mapping):
                parts.append(str(e.get("detail") or e.get("title") or e.get("errorType") or e))
            else:
                parts.append(str(e))
        return "; ".join(parts)
    return str(body.get("message") or body)[:300]


@register_kind("opentrons", "ot2", "flex")
def open_opentrons(spec: DeviceSpec, **context) -> OpentronsClient:
    """Registry factory: ``host``, ``tcp_port`` (default 31950), ``options`` for the client."""
    if not spec.host:
        raise ConfigError(f"device {spec.name!r} (opentrons) needs host")
    return construct(
        spec,
        OpentronsClient,
        spec.host,
        spec.tcp_port or 31950,
        name=spec.name,
        **lab_context(context),
    )
