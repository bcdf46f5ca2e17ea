"""What a running task (or furnace run) sees: its devices, its bookings, the clock, and ``step``,
the journaled way to touch hardware.

Task bodies are SimPy generators: ``yield from ctx.step(...)`` and ``yield from ctx.wait(min)``.
On virtual time with in-process fakes a driver call returns at once and the step then waits its
modelled duration; with real drivers (or wire-level emulators) the call runs in a thread while
the clock goes on, so the device takes the time it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from labos.db.base import utcnow
from labos.drivers.errors import DeviceError, DeviceFault, DeviceTimeout
from labos.lab import journal
from labos.lab.events import emit
from labos.lab.interventions import ClearDeviceFault, ConfirmStep, Intervention, raise_intervention
from labos.lab.journal import StepLog
from labos.lab.records import FurnaceRunRow, JournalRow
from labos.lab.resources import set_device_state
from labos.lab.store import jsonable
from labos.lab.transitions import wait_operator

if TYPE_CHECKING:
    from labos.lab.engine import Engine

Gen = Generator[Any, Any, Any]


class OperatorWait(Exception):
    """The task (or run) stopped until the operator answers intervention ``intervention_id``."""

    def __init__(self, intervention_id: str):
        super().__init__(intervention_id)
        self.intervention_id = intervention_id


class TaskFailed(Exception):
    """The task cannot succeed (policy says fail rather than ask the operator)."""


@dataclass
class Verdict:
    """What verification of an open step found: ``done`` (with result), ``redo``, or ``ask``."""

    outcome: str
    result: Any = None
    reason: str = ""

    @classmethod
    def done(cls, result: Any = None) -> Verdict:
        return cls("done", result)

    @classmethod
    def redo(cls) -> Verdict:
        return cls("redo")

    @classmethod
    def ask(cls, reason: str = "") -> Verdict:
        return cls("ask", reason=reason)


Verify = Callable[[str, dict, "StepContext"], Verdict]


@dataclass
class TaskInfo:
    id: str
    experiment_id: str
    node: str
    kind: str
    params: dict
    sample_id: str | None
    holds: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    attempts: int = 0
    successors: list[str] = field(default_factory=list)
    deps: list[str] = field(default_factory=list)
    started_s: float | None = None
    fresh: bool = False  # claimed from "ready" on its first attempt: it has no journal yet


class StepContext:
    """Journaled hardware steps for one owner (a task or a furnace run)."""

    def __init__(self, engine: Engine, owner: str, log: StepLog):
        self.engine = engine
        self.env = engine.env
        self.cfg = engine.cfg
        self.owner = owner
        self.log = log
        # Records of idempotent steps, written with this owner's next transaction (write-behind):
        # losing them in a crash only means the harmless step runs again.
        self._pending: list[tuple[JournalRow, dict, Any]] = []

    # ---- time

    @property
    def now(self) -> float:
        return float(self.env.now)

    def wait(self, minutes: float) -> Gen:
        if minutes > 0:
            yield self.env.timeout(minutes * 60.0)

    def call(self, fn: Callable[..., Any], *args: Any, expected_min: float = 0.0) -> Gen:
        """Call a driver; the clock runs while it works (see module docstring)."""
        eng = self.engine
        if not eng.threaded:
            out = fn(*args)
            if expected_min > 0:
                yield self.env.timeout(expected_min * 60.0)
            return out
        fut = eng.pool.submit(fn, *args)
        while not fut.done():
            if not eng.realtime:
                time.sleep(eng.thread_sleep_s)
            yield self.env.timeout(eng.tick_s)
        return fut.result()

    # ---- the journaled step

    def step(
        self,
        name: str,
        action: Callable[[dict], Any],
        *,
        data: dict | Callable[[], dict] | None = None,
        effect: str | None = None,
        idempotent: bool = False,
        verify: Verify | None = None,
        expected_min: float = 0.0,
        device: str | None = None,
    ) -> Gen:
        """Run ``action(data)`` once, ever: intent committed before, result and effect after.

        ``idempotent`` steps (opening a door, a second scan) are simply run again when their
        outcome is unknown; others are verified with ``verify`` or put to the operator."""
        st = self.log.state(name)
        if st.state == "done":
            return st.result
        attempt = st.attempt
        if st.state == "open":
            verdict = Verdict.redo() if idempotent else self._verify(name, st, verify)
            if verdict.outcome == "done":
                result = jsonable(verdict.result)
                self._commit_done(name, attempt, st.effect, st.data, result, recovered=True)
                return result
            if verdict.outcome == "ask":
                self._confirm(
                    name,
                    attempt,
                    st.effect,
                    st.data,
                    verdict.reason or "the lab OS stopped while the step was running",
                )
            self._write(name, attempt, "abandoned", data={"reason": "verified not done"})
        faults = self.cfg.faults
        tries = 0
        while True:
            attempt += 1
            tries += 1
            payload = data() if callable(data) else dict(data or {})
            payload = jsonable(payload)
            if not idempotent:
                self._write(name, attempt, "intent", effect=effect, data=payload)
            try:
                result = yield from self.call(action, payload, expected_min=expected_min)
            except DeviceError as exc:
                dev = device or exc.device or "?"
                if isinstance(exc, DeviceTimeout) and not idempotent:
                    verdict = self._verify(name, journal.StepState("open", attempt, payload, effect), verify)
                    if verdict.outcome == "done":
                        res = jsonable(verdict.result)
                        self._commit_done(name, attempt, effect, payload, res, recovered=True)
                        return res
                    if verdict.outcome == "ask":
                        self._confirm(name, attempt, effect, payload, f"{dev} timed out: {exc}")
                self._write(name, attempt, "failed", data={"error": str(exc), "type": type(exc).__name__})
                if (exc.safe_to_retry or isinstance(exc, DeviceTimeout)) and tries <= faults.max_retries:
                    self._event("task.retry", step=name, attempt=attempt, error=str(exc), device=dev)
                    yield from self.wait(faults.retry_delay_min)
                    continue
                self._device_failed(dev, exc)
                continue  # unreachable: _device_failed raises
            self.engine.crash_point(self.owner, name, "acted")
            result = jsonable(result)
            if idempotent:
                self._defer(name, attempt, effect, payload, result)
            else:
                self._commit_done(name, attempt, effect, payload, result)
            return result

    def _verify(self, name: str, st: journal.StepState, verify: Verify | None) -> Verdict:
        if verify is None:
            return Verdict.ask()
        try:
            return verify(name, st.data, self)
        except DeviceError as exc:
            return Verdict.ask(f"the device could not be read to verify it ({exc})")

    # ---- journal writes

    def flush_into(self, session) -> None:
        """Write the deferred records (and their effects) in the caller's transaction."""
        if self._pending:
            cols = ("owner", "step", "attempt", "phase", "effect", "data", "lab_t", "at")
            session.execute(
                insert(JournalRow.__table__), [{c: getattr(r, c) for c in cols} for r, _, _ in self._pending]
            )
        for row, data, result in self._pending:
            if row.phase == "done":
                journal.apply_effect(
                    session, row.effect, self.owner, data, result, row.lab_t, f"{self.cause} ({self.owner})"
                )

    def committed(self) -> None:
        self._pending.clear()

    def transact(self, fn) -> Any:
        """Run ``fn(session)`` in one transaction together with the deferred records."""

        def both(session):
            self.flush_into(session)
            return fn(session)

        out = self.engine.store.run(both)
        self.committed()
        return out

    def _defer(self, step: str, attempt: int, effect: str | None, data: dict, result: Any) -> None:
        row = JournalRow(
            owner=self.owner,
            step=step,
            attempt=attempt,
            phase="done",
            effect=effect,
            data={"result": result, "input": data},
            lab_t=self.now,
            at=utcnow(),
        )
        self._pending.append((row, data, result))
        self.log.record(row)

    def _write(
        self, step: str, attempt: int, phase: str, *, effect: str | None = None, data: dict | None = None
    ):
        now = self.now
        row = self.transact(
            lambda session: journal.write(
                session, self.owner, step, attempt, phase, effect=effect, data=data, lab_t=now
            )
        )
        self.log.record(row)
        self.engine.crash_point(self.owner, step, phase)

    def _commit_done(self, step, attempt, effect, data, result, recovered: bool = False) -> None:
        now = self.now
        cause = f"{self.cause} ({self.owner})"

        def fn(session):
            row = journal.write(
                session,
                self.owner,
                step,
                attempt,
                "done",
                data={"result": result, "recovered": recovered},
                lab_t=now,
            )
            journal.apply_effect(session, effect, self.owner, data, result, now, cause)
            return row

        row = self.transact(fn)
        self.log.record(row)
        self.engine.crash_point(self.owner, step, "done")

    @property
    def cause(self) -> str:
        return self.owner

    @property
    def task_id(self) -> str | None:
        return None

    def _event(self, kind: str, **data: Any) -> None:
        now = self.now
        self.transact(lambda s: emit(s, kind, self.owner, lab_t=now, **data))

    # ---- asking the operator

    def _confirm(self, name: str, attempt: int, effect: Any, data: Any, reason: str) -> None:
        """Ask the operator whether a step whose result cannot be verified took place (raises)."""
        self._ask(
            ConfirmStep(
                owner=self.owner,
                task_id=self.task_id,
                step=name,
                attempt=attempt,
                effect=effect,
                data=data,
                reason=reason,
            )
        )

    def _ask(self, spec: Intervention) -> None:
        now = self.now
        every = self.cfg.faults.escalate_after_min * 60.0

        def fn(session):
            row = raise_intervention(session, spec, lab_t=now, escalate_after_s=every)
            self._park(session, row.id)
            return row.id

        iid = self.transact(fn)
        self.engine.on_intervention(iid)
        raise OperatorWait(iid)

    def _park(self, session, intervention_id: str) -> None:
        run = session.get(FurnaceRunRow, self.owner)
        if run is not None:
            run.status = "waiting_operator"
            run.worker = None

    def _device_failed(self, device: str, exc: DeviceError) -> None:
        if self.cfg.faults.on_exhausted == "fail":
            raise TaskFailed(f"{device}: {exc}")
        now = self.now

        def mark(session):
            if isinstance(exc, DeviceFault):
                set_device_state(session, device, "fault", {"error": str(exc), "code": jsonable(exc.code)})
            emit(
                session,
                "device.fault",
                device,
                lab_t=now,
                error=str(exc),
                code=jsonable(exc.code),
                owner=self.owner,
            )

        self.transact(mark)
        self._ask(
            ClearDeviceFault(
                device=device,
                error=str(exc),
                code=None if exc.code is None else str(exc.code),
                owner=self.owner,
                task_id=self.task_id,
            )
        )


class TaskContext(StepContext):
    """A task's context: adds its bookings, its sample and its experiment."""

    def __init__(self, engine: Engine, task: TaskInfo, log: StepLog):
        super().__init__(engine, task.id, log)
        self.task = task

    @property
    def task_id(self) -> str | None:
        return self.task.id

    @property
    def cause(self) -> str:
        return self.task.kind

    def held(self, tag: str) -> str:
        try:
            return self.task.holds[tag]
        except KeyError:
            raise KeyError(f"task {self.task.id} holds no {tag!r} (it holds {self.task.holds})") from None

    def device(self, tag: str) -> Any:
        return self.engine.device(self.held(tag))

    def maybe_device(self, tag: str) -> Any | None:
        name = self.task.holds.get(tag)
        return self.engine.device(name) if name else None

    @property
    def timing(self):
        return self.cfg.timing

    def sample_position(self) -> str:
        from labos.db.records import SampleRow

        with self.engine.store.factory() as s:
            pos = s.scalar(select(SampleRow.position).where(SampleRow.id == self.task.sample_id))
            if pos is None:
                raise TaskFailed(f"sample {self.task.sample_id} does not exist (task {self.task.id})")
            return pos

    def result_of(self, node: str) -> dict:
        return self.engine.task_result(f"{self.task.experiment_id}:{node}")

    def experiment(self):
        return self.engine.experiment(self.task.experiment_id)

    def ask(self, spec: Intervention) -> None:
        """Stop this task until the operator answers ``spec``."""
        if spec.task_id is None:
            spec.task_id = self.task.id
        self._ask(spec)

    def _park(self, session, intervention_id: str) -> None:
        wait_operator(session, self.task.id, intervention_id, self.now)
