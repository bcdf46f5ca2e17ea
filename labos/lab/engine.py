"""The executor: runs the dispatcher's decisions as SimPy processes on the lab clock.

Virtual time (``simpy.Environment``) for simulation, ``simpy.rt.RealtimeEnvironment`` for
hardware: the same code runs both. All durable state is in the database; the engine keeps only
the processes that are running, so a new engine on the same database (after a crash, on another
machine, or as one of several workers) carries on where the old one stopped.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import simpy
import simpy.rt
from sqlalchemy import select

from labos.db.repository import load_experiment, load_outcomes
from labos.domain import Experiment, Outcome, utcnow
from labos.errors import LabosError, NotImplementedYet
from labos.lab.config import LabConfig
from labos.lab.context import OperatorWait, TaskContext, TaskFailed, TaskInfo
from labos.lab.events import emit
from labos.lab.furnace import run_furnace
from labos.lab.interventions import TaskError, raise_intervention
from labos.lab.journal import StepLog
from labos.lab.records import FurnaceRunRow, TaskRow, WorkerRow
from labos.lab.scheduler import Dispatcher, release_worker
from labos.lab.store import Store, jsonable
from labos.lab.tasks import task_type
from labos.lab.transitions import abort_experiment, finish_task, wait_operator

log = logging.getLogger(__name__)

Analyzer = Callable[[str, Experiment, str | None], Outcome]
OutcomeCallback = Callable[[Outcome], None]


class SimulatedCrash(BaseException):
    """Raised by a test's crash hook to stop the engine as abruptly as a kill would."""


class Engine:
    def __init__(
        self,
        store: Store,
        cfg: LabConfig,
        devices: Mapping[str, Any],
        *,
        env: simpy.Environment | None = None,
        analyzer: Analyzer | None = None,
        threaded: bool = False,
        worker_id: str | None = None,
        poll_s: float | None = None,
        lease_s: float = 20.0,
        tick_s: float = 1.0,
        thread_sleep_s: float = 0.0005,
        unload_below_c: float = 100.0,
    ):
        self.store = store
        self.cfg = cfg
        self.devices = dict(devices)
        self.env = env if env is not None else simpy.Environment(initial_time=store.clock_s())
        self.realtime = isinstance(self.env, simpy.rt.RealtimeEnvironment)
        self.analyzer = analyzer
        self.threaded = threaded or self.realtime
        self.pool = (
            ThreadPoolExecutor(max_workers=8, thread_name_prefix="labos-dev") if self.threaded else None
        )
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.poll_s = poll_s if poll_s is not None else (1.0 if self.realtime else None)
        self.lease_s = lease_s
        self.recheck_s = 1.0  # real time between looks for work handed back by others
        self.notify_tick_s = 0.005  # how often the dispatcher checks for a NOTIFY (no database)
        self._notified = None
        self._listen_stop = None
        self.tick_s = tick_s
        self.thread_sleep_s = thread_sleep_s
        self.unload_below_c = unload_below_c
        self.dispatcher = Dispatcher(store, cfg, self.worker_id, persist_clock=not self.realtime)
        self.active: dict[str, simpy.Process] = {}
        self.outcome_callbacks: list[OutcomeCallback] = []
        self.crash_hook: Callable[[str, str, str], None] | None = None
        self._kick = self.env.event()
        self._experiments: dict[str, Experiment] = {}
        self._started = False
        self._stopped = False
        self._last_beat = 0.0
        self.dispatch_s = 0.0  # wall time spent deciding (the scheduling overhead)
        self.dispatch_cpu_s = 0.0  # ... of which this thread's CPU time (robust on a busy machine)
        self.dispatches = 0
        self.tasks_started = 0
        self.outcome_event = self.env.event()

    # ---- lifecycle

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        now = self.now
        exclusive = not self.store.is_pg

        def fn(s):
            s.merge(
                WorkerRow(
                    id=self.worker_id,
                    pid=os.getpid(),
                    host=socket.gethostname(),
                    status="running",
                    heartbeat_at=utcnow(),
                )
            )
            s.flush()
            n, dead = self._reap(s, exclusive=exclusive)
            emit(s, "lab.started", self.worker_id, lab_t=now, recovered=n, dead_workers=dead)

        self.store.run(fn)
        self.env.process(self._loop())
        if self.store.is_pg and self.realtime:
            self._listen()

    def _listen(self) -> None:
        """Wake the dispatcher when another worker commits something that may free work
        (PostgreSQL LISTEN/NOTIFY on a dedicated connection, in a daemon thread)."""
        import threading

        import psycopg

        from labos.lab.events import CHANNEL

        url = self.store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        flag = self._notified = threading.Event()
        stop = self._listen_stop = threading.Event()

        def listen() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            flag.set()
            except Exception:  # the poll still finds the work, only later
                log.exception("LISTEN %s stopped", CHANNEL)

        threading.Thread(target=listen, name="labos-listen", daemon=True).start()

        def relay():
            while not self._stopped:
                if flag.is_set():
                    flag.clear()
                    self.kick()
                yield self.env.timeout(self.notify_tick_s)

        self.env.process(relay())

    def stop(self) -> None:
        self._stopped = True
        self.kick()

    def close(self) -> None:
        if self._listen_stop is not None:
            self._listen_stop.set()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
        try:
            self.store.run(
                lambda s: s.merge(
                    WorkerRow(id=self.worker_id, pid=os.getpid(), host=socket.gethostname(), status="stopped")
                )
            )
        except Exception:  # pragma: no cover - closing must not raise
            log.exception("could not mark worker stopped")

    @property
    def now(self) -> float:
        return float(self.env.now)

    def kick(self) -> None:
        if not self._kick.triggered:
            self._kick.succeed()

    def device(self, name: str) -> Any:
        try:
            return self.devices[name]
        except KeyError:
            raise LabosError(f"device {name} is configured but not connected to this lab") from None

    # ---- the dispatch loop

    def _loop(self):
        poll = self.poll_s or 0.0
        next_recheck = 0.0
        while True:
            t0, c0 = time.perf_counter(), time.thread_time()
            idle = not self.active
            dec = self.store.run(lambda s, idle=idle: self.dispatcher.dispatch(s, self.now, idle=idle))
            self.dispatch_s += time.perf_counter() - t0
            self.dispatch_cpu_s += time.thread_time() - c0
            self.dispatches += 1
            self._heartbeat()
            for info in dec.tasks:
                self.tasks_started += 1
                self.active[info.id] = self.env.process(self._task_proc(info))
            for run_id in dec.runs:
                self.active[run_id] = self.env.process(self._run_proc(run_id))
            if self._stopped or (dec.desired == "stopped" and not self.active):
                return
            waits = [self._kick]
            if dec.wake_at is not None:
                waits.append(self.env.timeout(max(0.0, dec.wake_at - self.now)))
            if self.poll_s:
                # poll fast while work turns up, back off (up to 10x) while nothing does
                poll = self.poll_s if dec.tasks or dec.runs else min(poll * 2, self.poll_s * 10)
                waits.append(self.env.timeout(poll))
            yield self.env.any_of(waits)
            if self._kick.triggered:
                self._kick = self.env.event()
                poll = self.poll_s
            elif time.monotonic() >= next_recheck or not self.realtime:
                # woken by a timer or the poll: other processes may have answered something
                self.dispatcher.esc_dirty = True
                self.dispatcher.recheck = True
                next_recheck = time.monotonic() + self.recheck_s
            yield self.env.timeout(0)  # let everything due at this instant finish first

    def _reap(self, s, *, exclusive: bool) -> tuple[int, list[str]]:
        """Hand back the work of workers that died (stale heartbeat, or any other worker when the
        database is single-process SQLite) and of workers no longer registered at all."""
        stale = utcnow() - timedelta(seconds=self.lease_s)
        dead = []
        for w in s.scalars(
            select(WorkerRow).where(WorkerRow.id != self.worker_id, WorkerRow.status == "running")
        ):
            hb = w.heartbeat_at if w.heartbeat_at.tzinfo else w.heartbeat_at.replace(tzinfo=utcnow().tzinfo)
            if exclusive or hb < stale:
                dead.append(w.id)
                w.status = "dead"
        s.flush()
        known = set(s.scalars(select(WorkerRow.id).where(WorkerRow.status == "running")))
        owners = {
            w for (w,) in s.execute(select(TaskRow.worker).where(TaskRow.status == "running").distinct())
        }
        owners |= {
            w
            for (w,) in s.execute(
                select(FurnaceRunRow.worker).where(FurnaceRunRow.status == "heating").distinct()
            )
        }
        gone = sorted(set(dead) | {w for w in owners if w and w not in known})
        n = sum(release_worker(s, w) for w in gone)
        if n:
            self.dispatcher.recheck = True
        return n, gone

    def _heartbeat(self) -> None:
        """Several workers (PostgreSQL): say this one is alive, and take over the work of dead ones."""
        if not self.store.is_pg:
            return
        wall = time.monotonic()
        if wall - self._last_beat < self.lease_s / 4:
            return
        self._last_beat = wall
        now = self.now

        def fn(s):
            w = s.get(WorkerRow, self.worker_id)
            if w is not None:
                w.heartbeat_at = utcnow()
            n, gone = self._reap(s, exclusive=False)
            if n:
                emit(s, "lab.recovered", self.worker_id, lab_t=now, recovered=n, dead_workers=gone)

        self.store.run(fn)

    # ---- processes

    def _task_proc(self, info: TaskInfo):
        if info.fresh:
            log_ = StepLog([])
        else:
            with self.store.factory() as s:
                log_ = StepLog.load(s, info.id)
        task = task_type(info.kind)()
        ctx = TaskContext(self, info, log_)
        try:
            result = yield from task.run(ctx)
        except OperatorWait:
            pass
        except TaskFailed as exc:
            self._fail(ctx, str(exc))
        except SimulatedCrash:
            raise
        except Exception as exc:  # a bug or bad data: the operator decides (retry/abort)
            log.exception("task %s failed", info.id)
            self._task_error(ctx, exc)
        else:
            now = self.now

            def fin(s):
                finish_task(s, info, now, result=jsonable(result) if isinstance(result, dict) else None)
                task.on_finish(s, info, now)

            ctx.transact(fin)
            self.crash_point(info.id, "task", "finished")
            task.after_commit(ctx)
        finally:
            self.active.pop(info.id, None)
            self.kick()

    def _run_proc(self, run_id: str):
        try:
            yield from run_furnace(self, run_id)
        except OperatorWait:
            pass
        except TaskFailed as exc:
            from labos.lab.interventions import abort_run

            now, reason = self.now, str(exc)
            self.store.run(lambda s: abort_run(s, run_id, reason=reason, now_s=now))
        except SimulatedCrash:
            raise
        except Exception as exc:
            log.exception("furnace run %s failed", run_id)
            now, error = self.now, f"{type(exc).__name__}: {exc}"
            from labos.lab.interventions import ClearDeviceFault

            def fn(s):
                run = s.get(FurnaceRunRow, run_id)
                row = raise_intervention(
                    s, ClearDeviceFault(device=run.furnace, error=error, owner=run_id), lab_t=now
                )
                run.status = "waiting_operator"
                run.worker = None
                return row.id

            self.on_intervention(self.store.run(fn))
        finally:
            self.active.pop(run_id, None)
            self.kick()

    def _fail(self, ctx: TaskContext, reason: str) -> None:
        now, info = self.now, ctx.task
        ctx.transact(
            lambda s: abort_experiment(
                s,
                info.experiment_id,
                reason=reason,
                now_s=now,
                sample_to=None,
                sample_status="stranded",
                failed_task=info.id,
            )
        )

    def _task_error(self, ctx: TaskContext, exc: Exception) -> None:
        now, info = self.now, ctx.task

        def fn(s):
            row = raise_intervention(
                s,
                TaskError(task_id=info.id, error=f"{type(exc).__name__}: {exc}"),
                lab_t=now,
                escalate_after_s=self.cfg.faults.escalate_after_min * 60,
            )
            wait_operator(s, info.id, row.id, now)
            return row.id

        self.on_intervention(ctx.transact(fn))

    # ---- hooks used by tasks

    def on_intervention(self, intervention_id: str) -> None:
        log.info("operator intervention %s raised", intervention_id)
        self.dispatcher.esc_dirty = True

    def notify_change(self) -> None:
        """Something outside the engine changed the lab (an answer, pause/resume): look again."""
        self.dispatcher.esc_dirty = True
        self.dispatcher.recheck = True
        self.kick()

    def crash_point(self, owner: str, step: str, phase: str) -> None:
        if self.crash_hook is not None:
            self.crash_hook(owner, step, phase)

    def experiment(self, exp_id: str) -> Experiment:
        exp = self._experiments.get(exp_id)
        if exp is None:
            with self.store.factory() as s:
                exp = load_experiment(s, exp_id)
            self._experiments[exp_id] = exp
        return exp

    def task_result(self, task_id: str) -> dict:
        with self.store.factory() as s:
            row = s.get(TaskRow, task_id)
            if row is None:
                raise LabosError(f"no task {task_id}")
            return dict(row.result or {})

    def analyze(self, path: str, exp: Experiment, sample_id: str | None) -> Outcome:
        if self.analyzer is None:
            raise NotImplementedYet(
                "analysis not implemented: this lab has no analyzer; pass analyzer= to the Lab"
            )
        out = self.analyzer(path, exp, sample_id)
        if out.experiment_id != exp.id:
            out = out.model_copy(update={"experiment_id": exp.id})
        return out

    def after_report(self, exp_id: str) -> None:
        """Hand the committed outcome to the campaign (callbacks and the SimPy outcome event)."""
        with self.store.factory() as s:
            outcomes = load_outcomes(s, exp_id)
        if not outcomes:
            return
        for cb in list(self.outcome_callbacks):
            cb(outcomes[-1])
        ev, self.outcome_event = self.outcome_event, self.env.event()
        ev.succeed(outcomes[-1])

    # ---- running

    def run(self, until: float | None = None) -> None:
        """Run the lab clock until ``until`` (lab seconds) or, on virtual time, until no work is left."""
        self.start()
        self.env.run(until=until)


def realtime_env(factor: float = 1.0) -> simpy.rt.RealtimeEnvironment:
    """A real-time clock for hardware (or a watched simulation): lab seconds are epoch seconds, so
    every worker and every restart agree on what time it is."""
    return simpy.rt.RealtimeEnvironment(initial_time=time.time(), factor=factor, strict=False)


def default_xrd_dir(cfg: LabConfig) -> Path:
    from labos.config import get_settings

    return Path(cfg.xrd_dir) if cfg.xrd_dir else get_settings().home / "xrd"
