"""In-process device fakes over one shared physical model, for fast simulation and tests.

The fakes follow the driver protocols (:mod:`labos.drivers.protocols`) exactly, so the lab OS
cannot tell them from drivers; behind them :class:`Physics` keeps what is physically where, what
each vial or crucible contains, and what every device did. It can persist itself to a JSON file
after every action, so a lab process killed with SIGKILL and restarted finds the world as it
left it — which is how the crash tests check that no sample was lost or duplicated and no dose
or heat happened twice.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from labos.domain import HeatSegment, HeatStep
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout
from labos.drivers.protocols import DoseResult, FurnaceStatus

Chemistry = Callable[[dict[str, float], HeatStep, str], dict[str, float]]

VIAL_MG = 12_000.0
CRUCIBLE_MG = 20_000.0


def no_reaction(precursors_mg: dict[str, float], heat: HeatStep, atmosphere: str) -> dict[str, float]:
    """Stand-in chemistry (nothing reacts): weight fractions of what went in."""
    total = sum(precursors_mg.values()) or 1.0
    return {k: v / total for k, v in precursors_mg.items()}


class Physics:
    """What is where, and what it is made of. ``state`` is plain JSON."""

    def __init__(
        self,
        clock,
        *,
        chemistry: Chemistry | None = None,
        crucible_groups: Sequence[str] = ("crucible_rack",),
        group_of: Callable[[str], str | None] | None = None,
        state_path: str | Path | None = None,
        seed: int = 0,
        dose_noise: float = 0.003,
    ):
        self.clock = clock
        self.chemistry = chemistry or no_reaction
        self.crucible_groups = set(crucible_groups)
        self.group_of = group_of or (lambda pos: pos.rpartition("/")[0] or None)
        self.state_path = Path(state_path) if state_path else None
        self.rng = random.Random(seed)
        self.dose_noise = dose_noise
        self.state: dict[str, Any] = {"objects": {}, "at": {}, "devices": {}, "log": [], "next": 1, "t": 0.0}
        if self.state_path and self.state_path.exists():
            self.state = json.loads(self.state_path.read_text())

    # ---- persistence

    def save(self) -> None:
        self.state["t"] = max(self.state.get("t", 0.0), self.now())
        if self.state_path is None:
            return
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)

    def now(self) -> float:
        return float(self.clock.now())

    def record(self, *entry: Any) -> None:
        self.state["log"].append([round(self.now(), 3), *entry])

    # ---- objects and places

    def new_object(self, container: str) -> str:
        oid = f"obj{self.state['next']}"
        self.state["next"] += 1
        self.state["objects"][oid] = {
            "container": container,
            "contents": {},
            "phases": None,
            "doses": [],
            "heats": [],
            "stages": [],
            "scans": 0,
        }
        return oid

    def at(self, position: str) -> str | None:
        return self.state["at"].get(position)

    def obj(self, oid: str) -> dict:
        return self.state["objects"][oid]

    def device(self, name: str, **defaults: Any) -> dict:
        return self.state["devices"].setdefault(name, dict(defaults))

    def gross_mg(self, position: str) -> float:
        oid = self.at(position)
        if oid is None:
            return 0.0
        o = self.obj(oid)
        tare = VIAL_MG if o["container"] == "vial" else CRUCIBLE_MG
        return tare + sum(o["contents"].values())

    def phases_of(self, oid: str) -> dict[str, float]:
        o = self.obj(oid)
        if o["phases"] is not None:
            return dict(o["phases"])
        return no_reaction(
            o["contents"], HeatStep(segments=[HeatSegment(ramp_c_per_min=1, target_c=25, dwell_min=0)]), "air"
        )

    def carry(self, source: str, destination: str) -> str:
        """What an arm does: take the object at ``source`` (a fresh vial from ``vial_supply``) to
        ``destination``; a vial put on a crucible rack is poured into a crucible there.
        Raises ValueError when the move is physically impossible."""
        if source == "vial_supply":
            if self.at(destination) is not None:
                raise ValueError(f"{destination} is occupied")
            oid = self.new_object("vial")
        else:
            oid = self.at(source)
            if oid is None:
                raise ValueError(f"nothing to pick at {source}")
            if self.at(destination) is not None:
                raise ValueError(f"{destination} is occupied")
            del self.state["at"][source]
        self.state["at"][destination] = oid
        o = self.obj(oid)
        if o["container"] == "vial" and self.group_of(destination) in self.crucible_groups:
            o["container"] = "crucible"
        self.record("move", oid, source, destination)
        self.save()
        return oid

    def heat(
        self, oid: str, heat: HeatStep, atmosphere: str, furnace: str, start_s: float, *, save: bool = True
    ) -> None:
        """The object reacted in a furnace programme (products of a second heat start from the first)."""
        o = self.obj(oid)
        if o["phases"] is None:
            o["phases"] = self.chemistry(dict(o["contents"]), heat, atmosphere)
        else:
            as_mg = {k: v * sum(o["contents"].values()) for k, v in o["phases"].items()}
            o["phases"] = self.chemistry(as_mg, heat, atmosphere)
        o["heats"].append([furnace, start_s, heat.max_temperature_c])
        if save:
            self.save()

    def remove(self, position: str) -> str | None:
        """An operator takes whatever is at ``position`` off the deck."""
        oid = self.state["at"].pop(position, None)
        if oid is not None:
            self.record("removed", oid, position)
            self.save()
        return oid

    # ---- what tests ask

    def positions(self) -> dict[str, str]:
        return dict(self.state["at"])

    def count(self, action: str) -> int:
        return sum(1 for e in self.state["log"] if e[1] == action)


class Faults:
    """Scripted failures: ``inject("dose", DeviceBusy(...), times=1)`` fails the next call(s)
    before they act; ``after=True`` lets the call act and then fails it (a lost reply)."""

    def __init__(self) -> None:
        self.plan: dict[str, list[BaseException]] = {}
        self.after: dict[str, list[BaseException]] = {}

    def inject(self, method: str, error: BaseException, times: int = 1, *, after: bool = False) -> None:
        (self.after if after else self.plan).setdefault(method, []).extend([error] * times)

    def check(self, method: str) -> None:
        queue = self.plan.get(method)
        if queue:
            raise queue.pop(0)

    def check_after(self, method: str) -> None:
        queue = self.after.get(method)
        if queue:
            raise queue.pop(0)


class _Fake:
    def __init__(self, name: str, physics: Physics):
        self.name = name
        self.physics = physics
        self.faults = Faults()
        self.calls: list[str] = []

    def _enter(self, method: str) -> None:
        self.calls.append(method)
        self.faults.check(method)

    def _exit(self, method: str) -> None:
        self.faults.check_after(method)

    def close(self) -> None:
        pass


class FakeDoser(_Fake):
    """A powder doser on a balance (PowderDoser protocol); the vial sits at ``position``."""

    def __init__(self, name: str, physics: Physics, position: str):
        super().__init__(name, physics)
        self.position = position
        physics.device(name, tare=0.0, powder=None)

    @property
    def _st(self) -> dict:
        return self.physics.device(self.name)

    def identify(self) -> str:
        return f"FakeDoser {self.name}"

    def zero(self) -> None:
        self._enter("zero")
        self._st["tare"] = 0.0
        self.physics.save()

    def tare(self) -> float:
        self._enter("tare")
        self._st["tare"] = self.physics.gross_mg(self.position)
        self.physics.save()
        return self._st["tare"]

    def weight_mg(self, stable: bool = True) -> float:
        self._enter("weight_mg")
        return self.physics.gross_mg(self.position) - self._st["tare"]

    def select_powder(self, formula: str) -> None:
        self._enter("select_powder")
        self._st["powder"] = formula
        self.physics.save()

    def dose(self, target_mg: float, tolerance_pct: float = 2.0) -> DoseResult:
        self._enter("dose")
        oid = self.physics.at(self.position)
        if oid is None:
            raise DeviceFault(f"no vial at {self.position}", device=self.name, code="NO_VIAL")
        powder = self._st.get("powder")
        if not powder:
            raise DeviceFault("no dosing head selected", device=self.name, code="NO_HEAD")
        dosed = target_mg * (1.0 + self.physics.rng.gauss(0.0, self.physics.dose_noise))
        o = self.physics.obj(oid)
        o["contents"][powder] = o["contents"].get(powder, 0.0) + dosed
        o["doses"].append([powder, round(dosed, 4)])
        self.physics.record("dose", oid, powder, round(dosed, 4))
        self.physics.save()
        ok = abs(dosed - target_mg) <= target_mg * tolerance_pct / 100
        self._exit("dose")
        return DoseResult(target_mg=target_mg, dosed_mg=dosed, within_tolerance=ok, raw=f"{dosed:.4f} mg")


class FakeArm(_Fake):
    """A robot arm (RobotArm protocol): carries whatever is at one position to another."""

    def safety_status(self) -> str:
        return "normal"

    def move(self, source: str, destination: str) -> None:
        self._enter("move")
        try:
            self.physics.carry(source, destination)
        except ValueError as exc:
            code = "COLLISION" if "occupied" in str(exc) else "EMPTY_SOURCE"
            raise DeviceFault(str(exc), device=self.name, code=code) from None
        self._exit("move")


class FakeDoor(_Fake):
    def __init__(self, name: str, physics: Physics):
        super().__init__(name, physics)
        physics.device(name, state="closed")

    def open(self) -> None:
        self._enter("open")
        self.physics.device(self.name)["state"] = "open"
        self.physics.save()

    def close_door(self) -> None:
        self._enter("close_door")
        self.physics.device(self.name)["state"] = "closed"
        self.physics.save()

    def state(self) -> str:
        return self.physics.device(self.name)["state"]


def _profile(segments: list[dict], t: float, start_c: float = 25.0) -> tuple[float, int, bool]:
    """Temperature at ``t`` minutes into a programme; (pv, segment index, finished)."""
    temp = start_c
    for i, s in enumerate(segments):
        ramp = abs(s["target_c"] - temp) / s["ramp_c_per_min"]
        if t < ramp:
            return temp + (s["target_c"] - temp) * (t / ramp if ramp else 1.0), i, False
        t -= ramp
        if t < s["dwell_min"]:
            return s["target_c"], i, False
        t -= s["dwell_min"]
        temp = s["target_c"]
    return max(25.0, temp - 5.0 * t), len(segments), True  # natural cooling afterwards


class FakeFurnace(_Fake):
    """A programmable furnace (Furnace protocol); heats whatever sits in its slots."""

    def __init__(self, name: str, physics: Physics, slots: Sequence[str], atmosphere: str = "air"):
        super().__init__(name, physics)
        self.slots = list(slots)
        self.atmosphere = atmosphere
        physics.device(name, program=None, start=None, state="reset", load=[], applied=True, runs=0)

    @property
    def _st(self) -> dict:
        return self.physics.device(self.name)

    def status(self) -> FurnaceStatus:
        self._enter("status")
        st = self._st
        if st["program"] is None or st["state"] == "reset":
            return FurnaceStatus(
                pv_c=25.0, sp_c=25.0, output_pct=0.0, program_state="reset", segment=0, sensor_break=False
            )
        minutes = (self.physics.now() - st["start"]) / 60.0
        pv, seg, finished = _profile(st["program"], minutes)
        if finished:
            self._apply()
            return FurnaceStatus(
                pv_c=pv, sp_c=pv, output_pct=0.0, program_state="complete", segment=seg, sensor_break=False
            )
        return FurnaceStatus(
            pv_c=pv, sp_c=pv, output_pct=50.0, program_state="run", segment=seg + 1, sensor_break=False
        )

    def run_program(self, segments: Sequence[HeatSegment]) -> None:
        self._enter("run_program")
        st = self._st
        if st["state"] == "run" and not _profile(st["program"], (self.physics.now() - st["start"]) / 60)[2]:
            raise DeviceBusy("a programme is running", device=self.name, code="BUSY", safe_to_retry=False)
        self._apply()
        st.update(
            program=[s.model_dump(mode="json") for s in segments],
            start=self.physics.now(),
            state="run",
            load=[self.physics.at(p) for p in self.slots if self.physics.at(p)],
            applied=False,
        )
        st["runs"] += 1
        self.physics.record("heat", self.name, list(st["load"]))
        self.physics.save()
        self._exit("run_program")

    def reset_program(self) -> None:
        self._enter("reset_program")
        self._apply()
        self._st["state"] = "reset"
        self.physics.save()

    def _apply(self) -> None:
        """Once a programme has finished, its crucibles have reacted (applied once per run)."""
        st = self._st
        if st.get("applied", True) or st["program"] is None:
            return
        if not _profile(st["program"], (self.physics.now() - st["start"]) / 60)[2]:
            return
        heat = recipe_heat([HeatSegment.model_validate(s) for s in st["program"]])
        st["applied"] = True  # one save for the flag and the products: a kill cannot split them
        for oid in st["load"]:
            if oid in [self.physics.at(p) for p in self.slots]:
                self.physics.heat(oid, heat, self.atmosphere, self.name, st["start"], save=False)
        self.physics.save()


def recipe_heat(segments: list[HeatSegment]) -> HeatStep:
    """The heat step a furnace programme came from: a last segment that only cools down (no
    dwell, lower target) was added by the lab OS and becomes the cooling rate."""
    segs = list(segments)
    cool = 5.0
    if len(segs) > 1 and segs[-1].dwell_min == 0 and segs[-1].target_c < segs[-2].target_c:
        cool = segs.pop().ramp_c_per_min
    return HeatStep(segments=segs, cool_c_per_min=cool)


class FakeStation(_Fake):
    """A timed station without a driver protocol (shaker, grinder): ``run(minutes)``."""

    def __init__(self, name: str, physics: Physics, slots: Sequence[str] = ()):
        super().__init__(name, physics)
        self.slots = list(slots)

    def run(self, minutes: float, method: str = "") -> None:
        self._enter("run")
        for p in self.slots:
            oid = self.physics.at(p)
            if oid:
                self.physics.obj(oid)["stages"].append([self.name, minutes])
        self.physics.record("station", self.name, minutes)
        self.physics.save()


class FakeDiffractometer(_Fake):
    """A diffractometer with a sample changer (Diffractometer protocol).

    ``pattern`` turns the true phases of the mounted sample into a file (an .xrdml pattern from
    the XRD simulator, or by default a small JSON of the true phases for the fast path)."""

    def __init__(
        self,
        name: str,
        physics: Physics,
        prefix: str,
        out_dir: str | Path,
        *,
        scan_s: float = 0.0,
        writer: Callable[[dict[str, float], Path, str], Path] | None = None,
    ):
        super().__init__(name, physics)
        self.prefix = prefix
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.scan_s = scan_s
        self.writer = writer or write_truth
        physics.device(name, mounted={}, scans={})

    @property
    def _st(self) -> dict:
        return self.physics.device(self.name)

    def ready(self) -> bool:
        return True

    def add_sample(self, sample_id: str, slot: int, application: str) -> None:
        self._enter("add_sample")
        pos = f"{self.prefix}/{slot}"
        if self.physics.at(pos) is None:
            raise DeviceFault(f"slot {slot} is empty", device=self.name, code="EMPTY_SLOT")
        self._st["mounted"][sample_id] = pos
        self.physics.save()

    def measure(self, sample_id: str, application: str) -> None:
        self._enter("measure")
        if sample_id not in self._st["mounted"]:
            raise DeviceError(f"sample {sample_id} is not mounted", device=self.name, code="NOT_MOUNTED")
        self._st["scans"][sample_id] = {"done_at": self.physics.now() + self.scan_s, "file": None}
        oid = self.physics.at(self._st["mounted"][sample_id])
        self.physics.obj(oid)["scans"] += 1
        self.physics.record("scan", oid, sample_id)
        self.physics.save()

    def wait_for_result(self, sample_id: str, timeout_s: float) -> Path:
        self._enter("wait_for_result")
        scan = self._st["scans"].get(sample_id)
        if scan is None:
            raise DeviceError(f"no measurement of {sample_id}", device=self.name, code="NO_SCAN")
        if self.physics.now() < scan["done_at"]:
            raise DeviceTimeout(f"scan of {sample_id} still running", device=self.name, safe_to_retry=True)
        if scan["file"] is None:
            oid = self.physics.at(self._st["mounted"][sample_id])
            path = self.writer(self.physics.phases_of(oid), self.out_dir, sample_id)
            scan["file"] = str(path)
            self.physics.save()
        return Path(scan["file"])

    def remove_sample(self, sample_id: str) -> None:
        self._enter("remove_sample")
        self._st["mounted"].pop(sample_id, None)
        self.physics.save()


def write_truth(phases: dict[str, float], out_dir: Path, sample_id: str) -> Path:
    """The fast path's 'diffraction file': the true weight fractions as JSON."""
    path = out_dir / f"{sample_id}.truth.json"
    path.write_text(json.dumps({"sample_id": sample_id, "phases": phases}))
    return path


def truth_analyzer(threshold: float | None = None, noise: float = 0.0, seed: int = 0):
    """An analyzer for the fast path: reads the true phases (optionally with noise) into an Outcome."""
    from labos.config import get_settings
    from labos.domain import Outcome, PhaseResult, parse_formula

    rng = random.Random(seed)
    thr = threshold if threshold is not None else get_settings().success_threshold

    def analyze(path: str, exp, sample_id: str | None) -> Outcome:
        data = json.loads(Path(path).read_text())
        phases = {k: max(0.0, v + (rng.gauss(0, noise) if noise else 0.0)) for k, v in data["phases"].items()}
        total = sum(phases.values()) or 1.0
        phases = {k: v / total for k, v in phases.items() if v > 1e-6}
        target = exp.target.formula
        key = parse_formula(target)
        frac = sum(v for k, v in phases.items() if _reduced(k) == key)
        return Outcome(
            experiment_id=exp.id,
            phases=[
                PhaseResult(phase_id=k, formula=k, weight_fraction=round(min(v, 1.0), 6))
                for k, v in sorted(phases.items(), key=lambda kv: -kv[1])
            ],
            target_formula=target,
            target_fraction=round(min(frac, 1.0), 6),
            success=frac > thr,
            confidence=1.0,
            source="simulator",
        )

    return analyze


def _reduced(formula: str) -> str:
    from labos.domain import parse_formula

    try:
        return parse_formula(formula)
    except Exception:
        return formula
