"""The lab OS as the console (and scripts) see it: read the state, answer interventions,
pause/resume/stop, follow the event stream. Works from any process on the lab's database."""

from __future__ import annotations

from typing import Any

import networkx as nx
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from labos.db.records import ExperimentRow, SampleRow
from labos.errors import LabosError
from labos.lab import inventory as inv
from labos.lab.events import Event, emit, follow_events, read_events
from labos.lab.interventions import InterventionView, answer_intervention, view
from labos.lab.records import FurnaceRunRow, InterventionRow, LabStateRow, ResourceRow, TaskRow
from labos.lab.resources import ResourceView, list_resources
from labos.lab.samples import SampleView, lineage, move_sample, sample_view, set_sample_status
from labos.lab.store import Store
from labos.lab.workflow import graph_from_rows


class LabStateView(BaseModel):
    desired: str
    clock_s: float
    updated_by: str | None
    experiments: dict[str, int]
    tasks: dict[str, int]
    open_interventions: int


class TaskView(BaseModel):
    id: str
    experiment_id: str
    node: str
    kind: str
    status: str
    holds: dict[str, str]
    run_id: str | None
    attempts: int
    duration_min: float
    ready_s: float | None
    started_s: float | None
    finished_s: float | None
    error: str | None


class FurnaceRunView(BaseModel):
    id: str
    furnace: str
    status: str
    members: list[str]
    capacity: int
    max_c: float
    duration_min: float
    created_s: float
    heat_start_s: float | None
    heat_end_s: float | None
    finished_s: float | None


class LabAPI:
    """Read and control a lab through its database (no engine needed in this process)."""

    def __init__(self, db: str | Store | None = None, *, lab_id: str = "lab", on_change=None):
        self.store = db if isinstance(db, Store) else Store(db, lab_id)
        self._on_change = on_change  # an in-process engine's kick(), when there is one

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _clock(self, s: Session) -> float:
        return self.store.state(s).clock_s

    # ---- samples

    def samples(self, *, status: str | None = None, experiment_id: str | None = None) -> list[SampleView]:
        with self.store.factory() as s:
            stmt = select(SampleRow).order_by(SampleRow.created_at, SampleRow.id)
            if experiment_id:
                stmt = stmt.where(SampleRow.experiment_id == experiment_id)
            out = [sample_view(s, r.id, detail=False) for r in s.scalars(stmt)]
        return [v for v in out if status is None or v.status == status]

    def sample(self, sample_id: str) -> SampleView:
        """One sample with its full move history and provenance (lots, masses, heat, XRD, analysis)."""
        with self.store.factory() as s:
            return sample_view(s, sample_id)

    def lineage(self, sample_id: str) -> list[SampleView]:
        with self.store.factory() as s:
            return lineage(s, sample_id)

    def remove_sample(self, sample_id: str, user: str, *, reason: str = "removed by operator") -> SampleView:
        """The operator took a sample off the deck (e.g. one stranded by a failed experiment)."""

        def fn(s):
            now = self._clock(s)
            move_sample(s, sample_id, "removed", cause=f"{reason} ({user})", lab_t=now)
            set_sample_status(s, sample_id, "removed")
            emit(s, "sample.removed", sample_id, lab_t=now, user=user, reason=reason)
            return sample_view(s, sample_id)

        out = self.store.run(fn)
        self._changed()
        return out

    # ---- devices, positions, inventory

    def devices(self) -> list[ResourceView]:
        """Devices with their state (ok/fault/offline), who has them booked, and busy time."""
        with self.store.factory() as s:
            return list_resources(s, "device")

    def positions(self) -> list[ResourceView]:
        with self.store.factory() as s:
            return list_resources(s, "slot")

    def inventory(self) -> list[inv.LotView]:
        with self.store.factory() as s:
            return inv.list_lots(s)

    def refill(self, formula: str, lot: str, mg: float, user: str) -> None:
        self.store.run(lambda s: inv.refill(s, formula, lot, mg, user=user, lab_t=self._clock(s)))
        self._changed()

    def set_device_state(self, name: str, state: str, user: str) -> None:
        """Take a device offline (or back into service)."""
        if state not in ("ok", "offline"):
            raise LabosError(f"device state must be 'ok' or 'offline', not {state!r}")

        def fn(s):
            row = s.get(ResourceRow, name)
            if row is None or row.kind != "device":
                raise LabosError(f"no device {name}")
            row.state = state
            row.detail = {"by": user}
            emit(s, "device.state", name, lab_t=self._clock(s), state=state, by=user)

        self.store.run(fn)
        self._changed()

    # ---- experiments, tasks, runs

    def tasks(self, experiment_id: str | None = None, *, status: str | None = None) -> list[TaskView]:
        with self.store.factory() as s:
            stmt = select(TaskRow).order_by(TaskRow.experiment_id, TaskRow.rank_min.desc())
            if experiment_id:
                stmt = stmt.where(TaskRow.experiment_id == experiment_id)
            if status:
                stmt = stmt.where(TaskRow.status == status)
            return [
                TaskView(
                    id=t.id,
                    experiment_id=t.experiment_id,
                    node=t.node,
                    kind=t.kind,
                    status=t.status,
                    holds=dict(t.holds or {}),
                    run_id=t.run_id,
                    attempts=t.attempts,
                    duration_min=t.duration_min,
                    ready_s=t.ready_s,
                    started_s=t.started_s,
                    finished_s=t.finished_s,
                    error=t.error,
                )
                for t in s.scalars(stmt)
            ]

    def graph(self, experiment_id: str) -> nx.DiGraph:
        """The experiment's task graph with each node's live status."""
        with self.store.factory() as s:
            rows = list(s.scalars(select(TaskRow).where(TaskRow.experiment_id == experiment_id)))
        if not rows:
            raise LabosError(f"no tasks for experiment {experiment_id}")
        return graph_from_rows(rows)

    def furnace_runs(self, status: str | None = None) -> list[FurnaceRunView]:
        with self.store.factory() as s:
            stmt = select(FurnaceRunRow).order_by(FurnaceRunRow.created_s)
            if status:
                stmt = stmt.where(FurnaceRunRow.status == status)
            return [
                FurnaceRunView(
                    id=r.id,
                    furnace=r.furnace,
                    status=r.status,
                    members=list(r.members),
                    capacity=r.capacity,
                    max_c=max(sg["target_c"] for sg in r.profile["segments"]),
                    duration_min=r.duration_min,
                    created_s=r.created_s,
                    heat_start_s=r.heat_start_s,
                    heat_end_s=r.heat_end_s,
                    finished_s=r.finished_s,
                )
                for r in s.scalars(stmt)
            ]

    def experiment_status(self, experiment_id: str) -> str:
        with self.store.factory() as s:
            row = s.get(ExperimentRow, experiment_id)
            if row is None:
                raise LabosError(f"no experiment {experiment_id}")
            return row.status

    # ---- interventions

    def interventions(self, status: str | None = "open") -> list[InterventionView]:
        with self.store.factory() as s:
            stmt = select(InterventionRow).order_by(InterventionRow.created_at)
            if status:
                stmt = stmt.where(InterventionRow.status == status)
            return [view(r) for r in s.scalars(stmt)]

    def answer(
        self, intervention_id: str, option: str, user: str, *, values: dict[str, Any] | None = None
    ) -> InterventionView:
        """Answer an open intervention; the lab state follows the answer in the same transaction."""
        out = self.store.run(
            lambda s: view(
                answer_intervention(s, intervention_id, option, user, values=values, lab_t=self._clock(s))
            )
        )
        self._changed()
        return out

    # ---- control

    def state(self) -> LabStateView:
        from sqlalchemy import func

        with self.store.factory() as s:
            st = s.get(LabStateRow, self.store.lab_id)
            exps = dict(
                s.execute(select(ExperimentRow.status, func.count()).group_by(ExperimentRow.status)).all()
            )
            tasks = dict(s.execute(select(TaskRow.status, func.count()).group_by(TaskRow.status)).all())
            n_int = s.scalar(
                select(func.count()).select_from(InterventionRow).where(InterventionRow.status == "open")
            )
            return LabStateView(
                desired=st.desired if st else "running",
                clock_s=st.clock_s if st else 0.0,
                updated_by=st.updated_by if st else None,
                experiments=exps,
                tasks=tasks,
                open_interventions=n_int or 0,
            )

    def _set(self, desired: str, user: str) -> None:
        def fn(s):
            st = self.store.state(s)
            st.desired = desired
            st.updated_by = user
            kind = {"running": "lab.resumed", "paused": "lab.paused", "stopped": "lab.stopped"}[desired]
            emit(s, kind, self.store.lab_id, lab_t=st.clock_s, user=user)

        self.store.run(fn)
        self._changed()

    def pause(self, user: str) -> None:
        """No new task starts; running steps finish (furnaces keep their programmes)."""
        self._set("paused", user)

    def resume(self, user: str) -> None:
        self._set("running", user)

    def stop(self, user: str) -> None:
        """Like pause, and engines exit once their running tasks have finished."""
        self._set("stopped", user)

    # ---- events

    def events(
        self,
        after_id: int = 0,
        *,
        limit: int = 1000,
        kinds: list[str] | None = None,
        prefix: str | None = None,
        subject: str | None = None,
    ) -> list[Event]:
        return read_events(
            self.store.factory, after_id, kinds=kinds, prefix=prefix, subject=subject, limit=limit
        )

    def follow(self, after_id: int = 0, **kw):
        return follow_events(self.store.factory, after_id, **kw)
