"""The dispatcher: decides, in one transaction, which work starts now.

It is event-driven (woken when a task ends, an experiment arrives, an operator answers, or a
timer it set expires), never a polling loop over devices. Each call:

1. escalates interventions nobody answered in time;
2. re-launches furnace runs and tasks that lost their worker or were answered by the operator;
3. groups crucibles that share a heating profile into furnace runs (a run books its furnace and
   holds up to the furnace's slots), joining runs that are still loading;
4. starts a loading run's programme when it is full, or when waiting for the next crucible of
   the same profile (whose arrival it estimates from the remaining task durations) would idle
   the furnace longer than the batching limit;
5. starts ready tasks in priority order (higher tier, then longer remaining path), booking all
   their resources at once or none.

On PostgreSQL every row it may change is read ``FOR UPDATE SKIP LOCKED``: concurrent workers
split the work instead of waiting on (or double-booking) each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from labos.domain import HeatStep, new_id
from labos.lab.config import STORAGE, LabConfig
from labos.lab.context import TaskInfo
from labos.lab.events import emit
from labos.lab.interventions import EmptyRack, escalate_due, next_escalation_s, raise_intervention
from labos.lab.records import FurnaceRunRow, ResourceRow, TaskRow
from labos.lab.resources import FreePool, Need, book, free_rows, release
from labos.lab.store import Store
from labos.lab.tasks import task_type
from labos.lab.transitions import start_experiment
from labos.lab.workflow import compatible_furnaces

#: what the dispatcher reads of a ready task (both the PostgreSQL queue query and the SQLite one)
_CANDIDATE_COLS = (
    TaskRow.id,
    TaskRow.kind,
    TaskRow.priority,
    TaskRow.ready_s,
    TaskRow.not_before_s,
    TaskRow.run_id,
    TaskRow.batch_key,
    TaskRow.params,
    TaskRow.experiment_id,
    TaskRow.lead_min,
)


@dataclass
class Decisions:
    tasks: list[TaskInfo] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    wake_at: float | None = None
    desired: str = "running"
    escalated: list[str] = field(default_factory=list)

    def wake(self, t: float | None) -> None:
        if t is not None and (self.wake_at is None or t < self.wake_at):
            self.wake_at = t


def task_info(t: TaskRow) -> TaskInfo:
    return TaskInfo(
        id=t.id,
        experiment_id=t.experiment_id,
        node=t.node,
        kind=t.kind,
        params=t.params or {},
        sample_id=t.sample_id,
        holds=dict(t.holds or {}),
        run_id=t.run_id,
        attempts=t.attempts,
        successors=list(t.successors or []),
        deps=list(t.deps or []),
        started_s=t.started_s,
    )


@dataclass
class Candidate:
    """A ready task as the dispatcher reads it (plain columns, no ORM object)."""

    id: str
    kind: str
    priority: float
    ready_s: float | None
    not_before_s: float | None
    run_id: str | None
    batch_key: str | None
    params: dict
    experiment_id: str
    lead_min: float | None = None


class Dispatcher:
    def __init__(
        self, store: Store, cfg: LabConfig, worker_id: str, *, per_kind: int = 32, persist_clock: bool = True
    ):
        self.store = store
        # Virtual time is saved so a restarted simulation resumes at the same lab time; real
        # time needs no saving (and several workers must not all write one row).
        self.persist_clock = persist_clock
        self.cfg = cfg
        self.worker = worker_id
        self.per_kind = per_kind  # ready tasks considered per task kind and dispatch
        self._furnace_of: dict[str, str] = {}  # run id -> furnace (runs never change furnace)
        self._esc_due: float | None = None
        self.esc_dirty = True  # set when an intervention is raised or answered
        # Set when work may have been handed back (start, an operator's answer, a poll): then
        # the dispatcher looks for resumable tasks and runs. Several workers: always look.
        self.recheck = True
        self._clock_saved = -1e18
        self._cand_stmt = None

    def dispatch(self, s: Session, now: float, *, idle: bool = False) -> Decisions:
        """Decide what starts now. ``idle``: this worker runs nothing (a stall check is allowed)."""
        out = Decisions()
        recheck = self.recheck
        if recheck or now - self._clock_saved >= 600.0:
            self._desired = self.store.desired(s)
            if self.persist_clock:
                self.store.save_clock(s, now)
            self._clock_saved = now
        out.desired = self._desired
        faults = self.cfg.faults
        if self.esc_dirty or (self._esc_due is not None and now >= self._esc_due):
            out.escalated = [
                r.id
                for r in escalate_due(
                    s, now, every_s=faults.escalate_after_min * 60, max_level=faults.escalate_max_level
                )
            ]
            self._esc_due = next_escalation_s(s)
            self.esc_dirty = False
        out.wake(self._esc_due)
        if out.desired != "running":
            return out
        lock = self.store.locked
        if recheck:
            self.recheck = False
            for run in s.scalars(
                lock(
                    select(FurnaceRunRow).where(
                        FurnaceRunRow.status == "heating", FurnaceRunRow.worker.is_(None)
                    )
                )
            ):
                run.worker = self.worker
                out.runs.append(run.id)
            for t in s.scalars(
                lock(select(TaskRow).where(TaskRow.status == "resume", TaskRow.worker.is_(None)))
            ):
                t.status = "running"
                t.worker = self.worker
                emit(s, "task.recovered", t.id, lab_t=now, experiment=t.experiment_id, kind=t.kind)
                out.tasks.append(task_info(t))

        cands = self._candidates(s)
        if cands and self.cfg.scheduling.feed_bottleneck:
            cands = self._feed_first(s, cands, now)
        pool = FreePool(free_rows(s, self.store, self.cfg))
        loading: list[FurnaceRunRow] = []
        if self.cfg.furnaces():
            loading = list(
                s.scalars(
                    self.store.locked(
                        select(FurnaceRunRow)
                        .where(FurnaceRunRow.status == "loading")
                        .order_by(FurnaceRunRow.created_s)
                    )
                )
            )
            self._batch(s, [c for c in cands if c.kind == "load" and c.run_id is None], pool, now, loading)
        failed: set[tuple] = set()
        full: set[str] = set()  # slot groups a ready task could not get into
        for c in cands:
            if c.not_before_s is not None and c.not_before_s > now:
                out.wake(c.not_before_s)
                continue
            tt = task_type(c.kind)
            if tt.batched:
                continue
            furnace = None
            if c.kind in ("load", "unload"):
                if c.run_id is None:
                    continue
                furnace = self._run_furnace(s, c.run_id)
            needs = tt().needs(c.params, self.cfg, furnace)
            sig = (c.kind, tuple(needs))
            if sig in failed:
                continue
            chosen = pool.take(needs) if needs else {}
            if chosen is None:
                failed.add(sig)
                full |= {n.group for n in needs if n.group and not pool.free_slots(n.group)}
                self._maybe_rack_full(s, needs, pool, now)
                continue
            info = self._claim(s, c, chosen, now)
            if info is None:
                continue
            if not info.deps:
                start_experiment(s, info.experiment_id, now)
            emit(
                s,
                "task.started",
                info.id,
                lab_t=now,
                experiment=info.experiment_id,
                kind=info.kind,
                holds=chosen,
            )
            out.tasks.append(info)
        self._start_runs(s, now, out, loading)
        if idle and full and not out.tasks and not out.runs and out.wake_at is None:
            if self._unstick(s, full, now):
                out.wake(now)
        return out

    # ---- breaking a stall: park a waiting sample in the buffer

    def _unstick(self, s: Session, full: set[str], now: float) -> bool:
        """Recipes with several heats make the sample flow cyclic (furnace → cooling rack → grinder
        → furnace), so racks can block each other. When nothing runs anywhere and ready work waits
        for full racks, carry one waiting sample from a full rack to the buffer (storage); its next
        task then fetches it from there."""
        busy = s.scalar(select(func.count()).select_from(TaskRow).where(TaskRow.status == "running"))
        heating = s.scalar(
            select(func.count()).select_from(FurnaceRunRow).where(FurnaceRunRow.status == "heating")
        )
        buffer = self.cfg.buffer_group
        if busy or heating or not buffer or buffer in full:
            return False
        for group in sorted(full):
            occupants = s.execute(
                select(ResourceRow.name, ResourceRow.occupant).where(
                    ResourceRow.role == group,
                    ResourceRow.kind == "slot",
                    ResourceRow.occupant.is_not(None),
                    ResourceRow.holder.is_(None),
                )
            ).all()
            for slot, sample in occupants:
                nxt = s.scalar(
                    select(TaskRow).where(
                        TaskRow.sample_id == sample,
                        TaskRow.status == "ready",
                        TaskRow.kind.not_in(("analyze", "report")),
                    )
                )
                if (
                    nxt is None
                    or task_type(nxt.kind)().destination(nxt.params or {}, self.cfg, None) == buffer
                ):
                    continue
                n = 1 + s.scalar(
                    select(func.count())
                    .select_from(TaskRow)
                    .where(TaskRow.experiment_id == nxt.experiment_id, TaskRow.kind == "park")
                )
                park = TaskRow(
                    id=f"{nxt.experiment_id}:park_{n}",
                    experiment_id=nxt.experiment_id,
                    node=f"park_{n}",
                    kind="park",
                    params={"group": buffer, "from": slot},
                    status="ready",
                    deps=list(nxt.deps or []),
                    successors=[nxt.id],
                    pending=0,
                    priority=nxt.priority + 1e6,
                    rank_min=nxt.rank_min,
                    duration_min=self.cfg.timing.move,
                    sample_id=sample,
                    ready_s=now,
                    holds={},
                    result={},
                )
                s.add(park)
                nxt.status = "blocked"
                nxt.pending = (nxt.pending or 0) + 1
                nxt.deps = [*(nxt.deps or []), park.id]
                emit(
                    s,
                    "task.ready",
                    park.id,
                    lab_t=now,
                    experiment=nxt.experiment_id,
                    kind="park",
                    reason=f"{group} is full and the lab is stalled",
                    sample=sample,
                )
                return True
        return False

    def _candidates(self, s: Session) -> list[Candidate]:
        """The best few ready tasks of every kind (all ready furnace loads), best first."""
        if self._cand_stmt is None and self.store.is_pg:
            # the queue pattern: each worker locks a different top slice of the ready tasks
            self._cand_stmt = (
                select(*_CANDIDATE_COLS)
                .where(TaskRow.status == "ready", TaskRow.kind != "heat")
                .order_by(TaskRow.priority.desc(), TaskRow.ready_s, TaskRow.id)
                .limit(self.per_kind * 4)
                .with_for_update(skip_locked=True)
            )
        if self._cand_stmt is None:
            rn = (
                func.row_number()
                .over(
                    partition_by=TaskRow.kind, order_by=(TaskRow.priority.desc(), TaskRow.ready_s, TaskRow.id)
                )
                .label("rn")
            )
            inner = (
                select(*_CANDIDATE_COLS, rn)
                .where(TaskRow.status == "ready", TaskRow.kind != "heat")
                .subquery()
            )
            self._cand_stmt = select(*(inner.c[c.key] for c in _CANDIDATE_COLS)).where(
                or_(inner.c.rn <= self.per_kind, inner.c.kind == "load")
            )
        out = [Candidate(*r) for r in s.execute(self._cand_stmt)]
        out.sort(key=lambda c: (-c.priority, c.ready_s or 0.0, c.id))
        return out

    def _feed_first(self, s: Session, cands: list[Candidate], now: float) -> list[Candidate]:
        """While the diffractometer would run dry, samples that reach it soonest go first (within
        the submitted priority and the tier); otherwise the longest remaining path goes first."""
        if not self.cfg.by_role("xrd") or not any(c.lead_min for c in cands):
            return cands
        horizon = min((c.lead_min for c in cands if c.lead_min), default=0.0)
        if self._xrd_backlog_min(s, now, horizon) >= horizon:
            return cands

        def key(c: Candidate):
            urgency, rest = divmod(c.priority, 1e7)
            tier = rest // 1e5
            lead = c.lead_min if c.lead_min is not None else float("inf")
            return (-urgency, -tier, lead, c.ready_s or 0.0, c.id)

        return sorted(cands, key=key)

    def _claim(self, s: Session, c: Candidate, chosen: dict[str, str], now: float) -> TaskInfo | None:
        """Book the chosen resources and mark the task running, both or neither.

        On PostgreSQL the candidate rows were read ``FOR UPDATE SKIP LOCKED`` (no other worker is
        looking at them); the conditional update on ``status = 'ready'`` is the final word."""
        if chosen and not book(s, c.id, list(chosen.values()), now):
            return None
        row = s.execute(
            update(TaskRow)
            .where(TaskRow.id == c.id, TaskRow.status == "ready")
            .values(
                status="running",
                worker=self.worker,
                holds=chosen,
                started_s=now,
                attempts=TaskRow.attempts + 1,
            )
            .returning(TaskRow.node, TaskRow.sample_id, TaskRow.attempts, TaskRow.successors, TaskRow.deps)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            release(s, c.id, None, now)
            return None
        node, sample_id, attempts, successors, deps = row
        return TaskInfo(
            id=c.id,
            experiment_id=c.experiment_id,
            node=node,
            kind=c.kind,
            params=c.params or {},
            sample_id=sample_id,
            holds=dict(chosen),
            run_id=c.run_id,
            attempts=attempts,
            successors=list(successors or []),
            deps=list(deps or []),
            started_s=now,
            fresh=attempts == 1,
        )

    # ---- furnace batching

    def _run_furnace(self, s: Session, run_id: str) -> str:
        if run_id not in self._furnace_of:
            self._furnace_of[run_id] = s.get(FurnaceRunRow, run_id).furnace
        return self._furnace_of[run_id]

    def _batch(
        self, s: Session, loads: list[Candidate], pool: FreePool, now: float, open_runs: list[FurnaceRunRow]
    ) -> None:
        if not loads:
            return
        groups: dict[str, list[Candidate]] = {}
        for t in loads:
            groups.setdefault(t.batch_key or t.id, []).append(t)
        for key, members in list(groups.items()):
            for run in open_runs:
                if not members:
                    break
                if run.profile_key != key or run.data.get("closed"):
                    continue
                room = run.capacity - len(run.members)
                if room > 0:
                    self._join(s, run, members[:room], now)
                    del members[:room]
        order = self._group_order(s, groups, now)
        for key in order:
            members = groups[key]
            while members:
                heat = HeatStep.model_validate(self._heat_row(s, members[0]).params["heat"])
                free = set(pool.devices_by_role.get("furnace", ()))
                cands = [f for f in compatible_furnaces(heat, self.cfg) if f in free]
                if not cands:
                    break
                # the smallest furnace that takes the whole group, else the largest
                cands.sort(key=lambda f: self.cfg.device(f).lab.slots)
                fit = [f for f in cands if self.cfg.device(f).lab.slots >= len(members)]
                furnace = fit[0] if fit else cands[-1]
                if pool.take([Need(name=furnace)]) is None:
                    break
                cap = self.cfg.device(furnace).lab.slots if self.cfg.batching.enabled else 1
                run = FurnaceRunRow(
                    id=new_id("run"),
                    furnace=furnace,
                    profile_key=key,
                    profile=heat.model_dump(mode="json"),
                    status="loading",
                    members=[],
                    capacity=cap,
                    duration_min=task_type("heat").estimate_min(
                        {"heat": heat.model_dump(mode="json")}, self.cfg
                    ),
                    created_s=now,
                    data={"loads": {}},
                )
                s.add(run)
                s.flush()
                if not book(s, f"run:{run.id}", [furnace], now):
                    s.delete(run)
                    break
                self._furnace_of[run.id] = furnace
                emit(
                    s,
                    "furnace_run.planned",
                    run.id,
                    lab_t=now,
                    furnace=furnace,
                    profile=key,
                    max_c=heat.max_temperature_c,
                    duration_min=round(run.duration_min, 1),
                )
                self._join(s, run, members[:cap], now)
                del members[:cap]

    def _group_order(self, s: Session, groups: dict[str, list[Candidate]], now: float) -> list[str]:
        """Which profile gets the next free furnace. Longest programme first (it decides the
        makespan), except while the diffractometer (the usual bottleneck after the furnaces)
        would run dry before even the shortest programme ends: then the shortest goes first."""
        keys = [k for k in groups if groups[k]]
        if len(keys) < 2:
            return keys
        dur = {
            k: task_type("heat").estimate_min(self._heat_row(s, groups[k][0]).params, self.cfg) for k in keys
        }
        urgency = {k: max(t.priority for t in groups[k]) // 1e7 for k in keys}  # submitted priority
        starving = self._xrd_backlog_min(s, now, min(dur.values())) < min(dur.values())
        return sorted(keys, key=lambda k: (-urgency[k], dur[k] if starving else -dur[k], -len(groups[k])))

    def _xrd_backlog_min(self, s: Session, now: float, horizon_min: float) -> float:
        """Minutes of diffraction work queued now or coming out of furnaces within ``horizon_min``."""
        n_xrd = max(1, len(self.cfg.by_role("xrd")))
        waiting = s.execute(
            select(func.count(), func.avg(TaskRow.duration_min)).where(
                TaskRow.kind == "xrd", TaskRow.status.in_(("ready", "running"))
            )
        ).one()
        scan = waiting[1] or 30.0
        soon = 0
        for members, start, duration in s.execute(
            select(FurnaceRunRow.members, FurnaceRunRow.heat_start_s, FurnaceRunRow.duration_min).where(
                FurnaceRunRow.status.in_(("heating", "cooled", "unloading"))
            )
        ):
            if start is None or start + duration * 60 <= now + horizon_min * 60:
                soon += len(members or [])
        return (waiting[0] + soon) * scan / n_xrd

    def _heat_row(self, s: Session, load: Candidate) -> TaskRow:
        return s.get(TaskRow, f"{load.experiment_id}:{load.params['heat_node']}")

    def _join(self, s: Session, run: FurnaceRunRow, loads: list[Candidate], now: float) -> None:
        members = list(run.members)
        mapping = dict(run.data.get("loads", {}))
        for load in loads:
            heat = self._heat_row(s, load)
            row = s.get(TaskRow, load.id)
            row.run_id = run.id
            load.run_id = run.id
            heat.run_id = run.id
            for sid in heat.successors or []:
                succ = s.get(TaskRow, sid)
                if succ is not None and succ.kind == "unload":
                    succ.run_id = run.id
            members.append(heat.id)
            mapping[heat.id] = load.id
            emit(s, "furnace_run.joined", run.id, lab_t=now, task=load.id, experiment=load.experiment_id)
        run.members = members
        run.data = {**run.data, "loads": mapping}

    def _start_runs(self, s: Session, now: float, out: Decisions, runs: list[FurnaceRunRow]) -> None:
        ids = [lid for run in runs if run.members for lid in run.data.get("loads", {}).values()]
        if not ids:
            return
        state = {
            i: (st, fin)
            for i, st, fin in s.execute(
                select(TaskRow.id, TaskRow.status, TaskRow.finished_s).where(TaskRow.id.in_(ids))
            )
        }
        for run in runs:
            if not run.members:
                continue
            loads = [state[lid] for lid in run.data.get("loads", {}).values() if lid in state]
            loads = [(st, fin) for st, fin in loads if st not in ("cancelled", "failed")]
            if not loads or any(st != "done" for st, _ in loads):
                continue
            if len(loads) < run.capacity and self.cfg.batching.enabled:
                limit = (
                    min(self.cfg.batching.max_wait_min, self.cfg.batching.wait_fraction * run.duration_min)
                    * 60
                )
                since = max(fin or now for _, fin in loads)
                deadline = since + limit
                if now < deadline:
                    eta = self._next_arrival(s, run.profile_key, now)
                    if eta is not None and eta <= deadline:
                        out.wake(min(max(eta, now + 1.0), deadline))
                        continue
            run.status = "heating"
            run.worker = self.worker
            run.data = {**run.data, "closed": True}
            out.runs.append(run.id)

    def _next_arrival(self, s: Session, key: str, now: float) -> float | None:
        """Earliest estimated time a not-yet-ready crucible of this profile is ready to load."""
        waiting = s.execute(
            select(TaskRow.experiment_id, TaskRow.rank_min).where(
                TaskRow.kind == "load",
                TaskRow.batch_key == key,
                TaskRow.run_id.is_(None),
                TaskRow.status.in_(("blocked", "ready")),
            )
        ).all()
        if not waiting:
            return None
        exps = {e: r for e, r in waiting}
        fronts = s.execute(
            select(TaskRow.experiment_id, func.max(TaskRow.rank_min))
            .where(TaskRow.experiment_id.in_(list(exps)), TaskRow.status.in_(("ready", "running", "resume")))
            .group_by(TaskRow.experiment_id)
        ).all()
        best = None
        for e, front in fronts:
            eta = now + max(0.0, (front or 0.0) - exps[e]) * 60.0
            best = eta if best is None else min(best, eta)
        return best

    # ---- racks that only the operator can empty

    def _maybe_rack_full(self, s: Session, needs: list[Need], pool: FreePool, now: float) -> None:
        for n in needs:
            if n.group != STORAGE or pool.free_slots(STORAGE):
                continue
            total = s.scalar(
                select(func.count())
                .select_from(ResourceRow)
                .where(ResourceRow.role == STORAGE, ResourceRow.kind == "slot")
            )
            full = s.scalar(
                select(func.count())
                .select_from(ResourceRow)
                .where(
                    ResourceRow.role == STORAGE, ResourceRow.kind == "slot", ResourceRow.occupant.is_not(None)
                )
            )
            if total and full == total:
                raise_intervention(
                    s,
                    EmptyRack(group=STORAGE),
                    lab_t=now,
                    escalate_after_s=self.cfg.faults.escalate_after_min * 60,
                )


def release_worker(s: Session, worker: str) -> int:
    """Hand the work of a dead worker back: its tasks resume elsewhere (keeping their bookings)."""
    n = s.execute(
        update(TaskRow)
        .where(TaskRow.worker == worker, TaskRow.status == "running", TaskRow.kind != "heat")
        .values(status="resume", worker=None)
    ).rowcount
    n += s.execute(
        update(FurnaceRunRow)
        .where(FurnaceRunRow.worker == worker, FurnaceRunRow.status == "heating")
        .values(worker=None)
    ).rowcount
    return n
