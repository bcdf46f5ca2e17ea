"""Executing a furnace run: one programme for a batch of crucibles.

The programme start is a journaled step verified from the furnace's own state after a crash
(running or complete: it started; reset and cold: it did not), so a batch is never heated twice.
Monitoring only reads the furnace, so a restarted lab simply resumes watching it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from labos.domain import HeatSegment, HeatStep
from labos.drivers.errors import DeviceError, DeviceFault
from labos.lab.context import StepContext, Verdict
from labos.lab.events import emit
from labos.lab.interventions import ConfirmStep
from labos.lab.journal import StepLog
from labos.lab.records import FurnaceRunRow, TaskRow
from labos.lab.samples import add_provenance
from labos.lab.transitions import finish_task

if TYPE_CHECKING:
    from labos.lab.engine import Engine

RUNNING_STATES = ("run", "hold", "holdback")


def programme(heat: HeatStep, unload_c: float) -> list[HeatSegment]:
    """The recipe's segments plus a controlled cool-down to the unloading temperature."""
    segs = list(heat.segments)
    last = segs[-1].target_c
    if last > unload_c:
        segs.append(
            HeatSegment(ramp_c_per_min=heat.cool_c_per_min, target_c=max(unload_c, 20.0), dwell_min=0)
        )
    return segs


class RunContext(StepContext):
    @property
    def cause(self) -> str:
        return "furnace run"


def run_furnace(engine: Engine, run_id: str) -> Generator[Any, Any, None]:
    with engine.store.factory() as s:
        run = s.get(FurnaceRunRow, run_id)
        log = StepLog.load(s, run_id)
        furnace_name, profile, members = run.furnace, run.profile, list(run.members)
        duration = run.duration_min
    heat = HeatStep.model_validate(profile)
    ctx = RunContext(engine, run_id, log)
    furnace = engine.device(furnace_name)
    door_name = engine.cfg.device(furnace_name).lab.door
    door = engine.device(door_name) if door_name else None
    unload_c = engine.unload_below_c
    segs = programme(heat, unload_c)

    if door is not None:
        yield from ctx.step("door_closed", lambda d: door.close_door(), idempotent=True, device=door_name)

    def start(d: dict) -> dict:
        furnace.reset_program()
        furnace.run_program(segs)
        return {"started_s": ctx.now}

    def verify(step: str, data: dict, c: StepContext) -> Verdict:
        st = furnace.status()
        if st.program_state in RUNNING_STATES or st.program_state == "complete":
            return Verdict.done({"started_s": data.get("at_s", c.now), "verified": st.program_state})
        if st.program_state == "reset" and st.pv_c < 100.0:
            return Verdict.redo()
        return Verdict.ask(f"furnace reads {st.program_state} at {st.pv_c:.0f} °C")

    # An operator who finds a programme reset mid-run may authorise a re-run ("not_done").
    end = ctx.log.state("program_end")
    reruns = end.attempt if end.state == "abandoned" else 0
    program_step = "program" if reruns == 0 else f"program#{reruns + 1}"
    started = yield from ctx.step(
        program_step,
        start,
        data=lambda: {
            "run_id": run_id,
            "furnace": furnace_name,
            "at_s": ctx.now,
            "segments": [sg.model_dump(mode="json") for sg in segs],
        },
        effect="heat_start",
        verify=verify,
        device=furnace_name,
    )
    t0 = float((started or {}).get("started_s", ctx.now))
    poll = engine.cfg.timing.furnace_poll
    end_est = t0 + duration * 60.0
    errors = 0
    readings: list[list[float]] = []  # [lab seconds, °C]: the profile the console draws against setpoint
    while end.state != "done":
        # poll through the whole programme: the watchdog sees a sensor break when it happens
        remaining = (end_est - ctx.now) / 60.0
        yield from ctx.wait(min(remaining, poll) if remaining > 0 else poll)
        try:
            st = yield from ctx.call(furnace.status)
        except DeviceError as exc:
            errors += 1
            if errors <= engine.cfg.faults.max_retries:
                continue
            ctx._device_failed(furnace_name, exc)
        errors = 0
        readings.append([round(ctx.now, 1), round(st.pv_c, 1)])
        if st.sensor_break:
            ctx._device_failed(furnace_name, DeviceFault("sensor break", device=furnace_name))
        if st.program_state == "complete" and st.pv_c <= unload_c + 25.0:
            break
        if st.program_state == "reset":
            ctx._ask(
                ConfirmStep(
                    owner=run_id,
                    step="program_end",
                    attempt=reruns + 1,
                    effect=None,
                    data={"furnace": furnace_name},
                    reason=f"furnace {furnace_name} lost its programme before it completed; "
                    "'done' if the heat finished, 'not_done' to run it again",
                )
            )

    now = ctx.now

    def finish(s):
        run = s.get(FurnaceRunRow, run_id)
        run.status = "cooled"
        run.heat_end_s = now
        run.data = {**(run.data or {}), "readings": readings}
        emit(
            s,
            "furnace_run.finished",
            run_id,
            lab_t=now,
            furnace=furnace_name,
            status="cooled",
            hours=round((now - t0) / 3600, 2),
            members=len(members),
        )
        for m in members:
            t = s.get(TaskRow, m)
            if t is None or t.status in ("done", "cancelled", "failed"):
                continue
            if t.sample_id:
                add_provenance(
                    s,
                    t.sample_id,
                    "heat",
                    task_id=t.id,
                    lab_t=now,
                    run=run_id,
                    furnace=furnace_name,
                    profile=profile,
                    started_s=t0,
                    ended_s=now,
                    batch=len(members),
                )
            finish_task(s, t, now, result={"run": run_id})
        run.status = "unloading"

    ctx.transact(finish)
