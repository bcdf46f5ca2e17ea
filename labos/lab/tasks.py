"""Task types: small plain classes, one per kind of work, calling the driver protocols.

A task type says what it needs (:meth:`Task.needs`), how long it takes (:meth:`Task.estimate_min`)
and what it does (:meth:`Task.run`, a generator of journaled steps). Register your own with
:func:`register_task` and put it in a custom task graph (see :mod:`labos.lab.workflow`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

from labos.drivers.errors import DeviceTimeout
from labos.lab.config import COOLING_RACK, CRUCIBLE_RACK, DOSING, GRINDER, MIXER, STORAGE, XRD, LabConfig
from labos.lab.context import TaskContext, Verdict
from labos.lab.interventions import RefillPrecursor
from labos.lab.resources import Need

Gen = Generator[Any, Any, Any]
TASK_TYPES: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task type available under its ``kind``."""
    if not getattr(cls, "kind", None):
        raise TypeError(f"task type {cls.__name__} has no kind")
    TASK_TYPES[cls.kind] = cls
    return cls


def task_type(kind: str) -> type[Task]:
    try:
        return TASK_TYPES[kind]
    except KeyError:
        from labos.errors import ConfigError

        raise ConfigError(f"unknown task kind {kind!r}; known: {', '.join(sorted(TASK_TYPES))}") from None


class Task:
    """Base class. ``moves_to``: the position group the sample is carried into first (``None``:
    it stays); ``uses``: device roles booked for the whole task; ``tier``: scheduling tier (higher
    first, e.g. unloading frees a furnace)."""

    kind: ClassVar[str] = ""
    moves_to: ClassVar[str | None] = None
    uses: ClassVar[tuple[str, ...]] = ()
    container: ClassVar[str | None] = None  # container the sample ends up in
    tier: ClassVar[int] = 1
    batched: ClassVar[bool] = False  # run by a furnace run, never dispatched on its own

    @classmethod
    def estimate_min(cls, params: dict, cfg: LabConfig) -> float:
        return float(params.get("duration_min", 0.0))

    def destination(self, params: dict, cfg: LabConfig, run_furnace: str | None) -> str | None:
        if self.moves_to and cfg.has_group(self.moves_to):
            return self.moves_to
        return None

    def needs(self, params: dict, cfg: LabConfig, run_furnace: str | None = None) -> list[Need]:
        out = [Need(role=r) for r in self.uses if cfg.by_role(r)]
        dest = self.destination(params, cfg, run_furnace)
        if dest:
            owner_roles = {cfg.device(g.device).role for g in cfg.groups(dest) if g.device}
            on = next((r for r in self.uses if r in owner_roles), None)
            out.append(Need(group=dest, on=on, tag="slot"))
            arm = cfg.arm_for(dest)
            if arm:
                out.append(Need(name=arm, tag="arm"))
        return out

    def run(self, ctx: TaskContext) -> Gen:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def on_finish(self, session, task, now_s: float) -> None:
        """Extra state changes in the transaction that marks the task done (``task``: TaskInfo)."""

    def after_commit(self, ctx: TaskContext) -> None:
        """Called once the task's completion is committed (e.g. to notify the campaign)."""

    # ---- helpers for subclasses

    def move_in(self, ctx: TaskContext, container: str | None = None) -> Gen:
        """Carry the sample into the booked slot (journaled; an interrupted move asks the operator)."""
        dest = ctx.task.holds.get("slot")
        if dest is None:
            return None
        arm = ctx.maybe_device("arm")
        sid = ctx.task.sample_id

        def data() -> dict:
            return {
                "sample_id": sid,
                "source": ctx.sample_position(),
                "destination": dest,
                "container": container or self.container,
            }

        def act(d: dict) -> None:
            if d["source"] != d["destination"] and arm is not None:
                arm.move(d["source"], d["destination"])

        yield from ctx.step(
            "move",
            act,
            data=data,
            effect="move",
            expected_min=ctx.timing.move,
            device=ctx.task.holds.get("arm"),
        )
        return dest


def _run_timed(dev: Any, minutes: float, method: str = "") -> None:
    """Mixers and grinders have no driver protocol yet: call ``run(minutes)`` if the device has one."""
    fn = getattr(dev, "run", None)
    if callable(fn):
        fn(minutes, method) if method else fn(minutes)


@register_task
class Dose(Task):
    """Place a fresh vial on the doser's balance and dose every precursor into it."""

    kind = "dose"
    moves_to = DOSING
    uses = ("doser",)

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.vial_place + cfg.timing.dose_per_precursor * len(params.get("doses", []))

    def needs(self, params, cfg, run_furnace=None):
        out = [Need(role="doser"), Need(group=DOSING, on="doser", tag="slot")]
        arm = cfg.arm_for(DOSING)
        if arm:
            out.append(Need(name=arm, tag="arm"))
        return out

    def run(self, ctx: TaskContext) -> Gen:
        from labos.lab import inventory

        slot = ctx.held("slot")
        doser_name = ctx.held("doser")
        doser = ctx.device("doser")
        arm = ctx.maybe_device("arm")
        sid = ctx.task.sample_id
        doses = ctx.task.params["doses"]

        # stock for the doses still to do (before the vial is even placed)
        todo = [(i, d) for i, d in enumerate(doses) if ctx.log.state(self._step(i, d)).state != "done"]
        with ctx.engine.store.factory() as s:
            for _, d in todo:
                have = inventory.stock_mg(s, d["precursor"])
                if have < d["mass_mg"]:
                    ctx.ask(RefillPrecursor(formula=d["precursor"], needed_mg=d["mass_mg"], stock_mg=have))

        def place(d: dict) -> None:
            if arm is not None:
                arm.move("vial_supply", d["position"])

        yield from ctx.step(
            "place_vial",
            place,
            data=lambda: {
                "sample_id": sid,
                "position": slot,
                "container": "vial",
                "experiment_id": ctx.task.experiment_id,
                "before_mg": doser.weight_mg(),
            },
            effect="create_sample",
            verify=self._verify_vial,
            expected_min=ctx.timing.vial_place,
            device=ctx.task.holds.get("arm"),
        )
        yield from ctx.step("tare", lambda d: doser.tare(), idempotent=True, device=doser_name)
        for i, d in enumerate(doses):
            yield from ctx.step(
                self._step(i, d),
                lambda data: self._dose(doser, data),
                data=lambda d=d: {
                    "sample_id": sid,
                    "precursor": d["precursor"],
                    "target_mg": d["mass_mg"],
                    "position": slot,
                    "device": doser_name,
                    "before_mg": doser.weight_mg(),
                },
                effect="dose",
                verify=self._verify_dose,
                expected_min=ctx.timing.dose_per_precursor,
                device=doser_name,
            )

    @staticmethod
    def _step(i: int, d: dict) -> str:
        return f"dose:{i}:{d['precursor']}"

    @staticmethod
    def _dose(doser: Any, data: dict) -> dict:
        select = getattr(doser, "select_powder", None)
        if callable(select):
            select(data["precursor"])
        r = doser.dose(float(data["target_mg"]))
        return {"dosed_mg": r.dosed_mg, "within_tolerance": r.within_tolerance}

    def _verify_vial(self, step: str, data: dict, ctx: TaskContext) -> Verdict:
        delta = ctx.device("doser").weight_mg() - float(data.get("before_mg", 0.0))
        if delta > 500:
            return Verdict.done({"verified": "balance", "delta_mg": delta})
        if abs(delta) < 50:
            return Verdict.redo()
        return Verdict.ask(f"the balance changed by {delta:.0f} mg, which is not a vial")

    def _verify_dose(self, step: str, data: dict, ctx: TaskContext) -> Verdict:
        delta = ctx.device("doser").weight_mg() - float(data["before_mg"])
        target = float(data["target_mg"])
        if abs(delta - target) <= max(0.1 * target, 2.0):
            return Verdict.done({"dosed_mg": delta, "verified": "balance"})
        if abs(delta) <= max(0.02 * target, 0.5):
            return Verdict.redo()
        return Verdict.ask(f"the balance shows {delta:.1f} mg added, {target:.1f} mg were asked for")


@register_task
class Mix(Task):
    kind = "mix"
    moves_to = MIXER
    uses = ("mixer",)

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move + float(params.get("duration_min", 10.0))

    def run(self, ctx: TaskContext) -> Gen:
        yield from self.move_in(ctx)
        mixer = ctx.maybe_device("mixer")
        minutes = float(ctx.task.params.get("duration_min", 10.0))
        method = ctx.task.params.get("method", "shaker")
        yield from ctx.step(
            "mix",
            lambda d: _run_timed(mixer, minutes, method) if mixer is not None else None,
            data={
                "sample_id": ctx.task.sample_id,
                "stage": "mix",
                "info": {"method": method, "minutes": minutes},
            },
            effect="stage",
            idempotent=True,
            expected_min=minutes,
            device=ctx.task.holds.get("mixer"),
        )


@register_task
class Transfer(Task):
    """Pour the mixed powder from its vial into a crucible on the crucible rack."""

    kind = "transfer"
    moves_to = CRUCIBLE_RACK
    container = "crucible"

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.transfer

    def run(self, ctx: TaskContext) -> Gen:
        yield from self.move_in(ctx, container="crucible")
        yield from ctx.wait(max(0.0, ctx.timing.transfer - ctx.timing.move))


class _FurnaceMove(Task):
    tier = 2

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move + 2 * cfg.timing.door

    def needs(self, params, cfg, run_furnace=None):
        if run_furnace is None:
            return []  # not dispatchable before the scheduler puts it in a furnace run
        dest = self.destination(params, cfg, run_furnace)
        out = [Need(group=dest, tag="slot")]
        arm = cfg.arm_for(dest)
        if arm:
            out.append(Need(name=arm, tag="arm"))
        door = cfg.device(run_furnace).lab.door
        if door:
            out.append(Need(name=door, tag="door"))
        return out

    def run(self, ctx: TaskContext) -> Gen:
        door = ctx.maybe_device("door")
        dname = ctx.task.holds.get("door")
        if door is not None:
            yield from ctx.step(
                "door_open",
                lambda d: door.open(),
                idempotent=True,
                expected_min=ctx.timing.door,
                device=dname,
            )
        yield from self.move_in(ctx, container="crucible")
        if door is not None:
            yield from ctx.step(
                "door_close",
                lambda d: door.close_door(),
                idempotent=True,
                expected_min=ctx.timing.door,
                device=dname,
            )


@register_task
class LoadFurnace(_FurnaceMove):
    kind = "load"

    def destination(self, params, cfg, run_furnace):
        return cfg.device(run_furnace).slot_group if run_furnace else None


@register_task
class Heat(Task):
    """Run by its furnace run (several crucibles share one programme), never dispatched alone."""

    kind = "heat"
    batched = True

    UNLOAD_C = 100.0  # the programme ends with a controlled cool-down to this temperature

    @classmethod
    def estimate_min(cls, params, cfg):
        """Ramps, dwells and the cool-down to the unloading temperature (what the furnace runs)."""
        from labos.domain import HeatStep

        heat = HeatStep.model_validate(params["heat"])
        t, temp = 0.0, 25.0
        for s in heat.segments:
            t += abs(s.target_c - temp) / s.ramp_c_per_min + s.dwell_min
            temp = s.target_c
        return t + max(temp - cls.UNLOAD_C, 0.0) / heat.cool_c_per_min

    def run(self, ctx):  # pragma: no cover - furnace runs execute heat
        raise RuntimeError("heat tasks are executed by their furnace run")
        yield


@register_task
class Unload(_FurnaceMove):
    kind = "unload"
    tier = 3
    moves_to = COOLING_RACK

    def destination(self, params, cfg, run_furnace):
        return COOLING_RACK

    def on_finish(self, session, task_row, now_s):
        from labos.lab.records import FurnaceRunRow
        from labos.lab.transitions import maybe_close_run

        run = session.get(FurnaceRunRow, task_row.run_id) if task_row.run_id else None
        if run is not None and run.status in ("cooled", "unloading"):
            maybe_close_run(session, run, now_s)


@register_task
class Grind(Task):
    kind = "grind"
    moves_to = GRINDER
    uses = ("grinder",)

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move + float(params.get("duration_min", 5.0))

    def run(self, ctx: TaskContext) -> Gen:
        yield from self.move_in(ctx)
        grinder = ctx.maybe_device("grinder")
        minutes = float(ctx.task.params.get("duration_min", 5.0))
        yield from ctx.step(
            "grind",
            lambda d: _run_timed(grinder, minutes) if grinder is not None else None,
            data={"sample_id": ctx.task.sample_id, "stage": "grind", "info": {"minutes": minutes}},
            effect="stage",
            idempotent=True,
            expected_min=minutes,
            device=ctx.task.holds.get("grinder"),
        )


def scan_minutes(params: dict) -> float:
    points = (params.get("two_theta_end", 80.0) - params.get("two_theta_start", 10.0)) / params.get(
        "step_deg", 0.02
    )
    return points * params.get("counting_time_s", 0.5) / 60.0


@register_task
class Diffraction(Task):
    """Mount the sample in a diffractometer slot, scan it, and keep the raw file."""

    kind = "xrd"
    moves_to = XRD
    uses = ("xrd",)

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move + cfg.timing.xrd_overhead + scan_minutes(params)

    def run(self, ctx: TaskContext) -> Gen:
        slot = yield from self.move_in(ctx)
        xrd = ctx.device("xrd")
        xname = ctx.held("xrd")
        sid = ctx.task.sample_id
        slot_no = int(slot.rpartition("/")[2]) if slot else 1
        app = ctx.task.params.get("application", "labos")
        scan = scan_minutes(ctx.task.params)
        yield from ctx.step(
            "add_sample",
            lambda d: xrd.add_sample(sid, slot_no, app),
            idempotent=True,
            expected_min=ctx.timing.xrd_overhead / 2,
            device=xname,
        )
        yield from ctx.step("measure", lambda d: xrd.measure(sid, app), idempotent=True, device=xname)
        yield from ctx.wait(scan)
        waited = 0.0
        while not (yield from ctx.call(xrd.ready)):  # the instrument is idle again once the scan ended
            if waited > max(60.0, 2 * scan):
                break  # let wait_for_result time out with the device's own error
            yield from ctx.wait(1.0)
            waited += 1.0
        path = yield from self._result(ctx, xrd, sid, scan)
        yield from ctx.step(
            "result",
            lambda d: {"path": str(path)},
            data={"sample_id": sid, "device": xname, "scan": dict(ctx.task.params)},
            effect="xrd",
            idempotent=True,
        )
        yield from ctx.step(
            "remove_sample",
            lambda d: xrd.remove_sample(sid),
            idempotent=True,
            expected_min=ctx.timing.xrd_overhead / 2,
            device=xname,
        )
        return {"path": str(path)}

    def _result(self, ctx: TaskContext, xrd: Any, sid: str, scan: float) -> Gen:
        timeout_s = max(60.0, scan * 60.0 * 2)
        if ctx.engine.threaded:
            return (yield from ctx.call(xrd.wait_for_result, sid, timeout_s))
        waited = 0.0
        while True:  # in-process fakes cannot block: poll on the lab clock
            try:
                return xrd.wait_for_result(sid, 0.0)
            except DeviceTimeout:
                if waited * 60 > timeout_s:
                    raise
                yield from ctx.wait(1.0)
                waited += 1.0


@register_task
class Analyze(Task):
    """Turn the raw pattern into phases and weight fractions (the lab's analyzer)."""

    kind = "analyze"
    tier = 3

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.analyze

    def run(self, ctx: TaskContext) -> Gen:
        xrd_node = ctx.task.params["xrd_node"]
        path = ctx.result_of(xrd_node)["path"]
        exp = ctx.experiment()
        out = yield from ctx.step(
            "analyze",
            lambda d: ctx.engine.analyze(path, exp, ctx.task.sample_id).model_dump(mode="json"),
            data={"sample_id": ctx.task.sample_id, "file": path},
            idempotent=True,
            expected_min=ctx.timing.analyze,
        )
        return {"outcome": out, "file": path}


@register_task
class Store(Task):
    kind = "store"
    moves_to = STORAGE

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move

    def run(self, ctx: TaskContext) -> Gen:
        yield from self.move_in(ctx)

    def on_finish(self, session, task_row, now_s):
        from labos.lab.samples import set_sample_status

        set_sample_status(session, task_row.sample_id, "stored")


@register_task
class Report(Task):
    """Record the outcome and hand it to whoever submitted the experiment (the campaign)."""

    kind = "report"
    tier = 3

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.report

    def run(self, ctx: TaskContext) -> Gen:
        res = ctx.result_of(ctx.task.params["analyze_node"])
        yield from ctx.step(
            "report",
            lambda d: res["outcome"],
            data={
                "experiment_id": ctx.task.experiment_id,
                "file": res.get("file"),
                "sample_id": ctx.task.sample_id,
            },
            effect="outcome",
            idempotent=True,
        )

    def after_commit(self, ctx: TaskContext) -> None:
        ctx.engine.after_report(ctx.task.experiment_id)


@register_task
class Park(Task):
    """Carry a waiting sample to the buffer rack (the scheduler adds this to break a stall)."""

    kind = "park"
    tier = 3

    @classmethod
    def estimate_min(cls, params, cfg):
        return cfg.timing.move

    def destination(self, params, cfg, run_furnace):
        return params.get("group")

    def run(self, ctx: TaskContext) -> Gen:
        yield from self.move_in(ctx)


@register_task
class Hold(Task):
    """Book resources for a while without touching a sample: ``params = {"devices": [names],
    "roles": [roles], "groups": [position groups], "duration_min": m}`` (benchmarks, maintenance
    windows, custom graphs)."""

    kind = "hold"

    def needs(self, params, cfg, run_furnace=None):
        out = [Need(name=n) for n in params.get("devices", [])]
        out += [Need(role=r, tag=f"role:{r}") for r in params.get("roles", [])]
        out += [Need(group=g, tag=f"group:{g}") for g in params.get("groups", [])]
        return out

    def run(self, ctx: TaskContext) -> Gen:
        yield from ctx.wait(float(ctx.task.params.get("duration_min", 0.0)))


@register_task
class Wait(Task):
    """A timed pause (e.g. letting a sample equilibrate); also handy in custom graphs and tests."""

    kind = "wait"

    def run(self, ctx: TaskContext) -> Gen:
        yield from ctx.wait(float(ctx.task.params.get("duration_min", 0.0)))
