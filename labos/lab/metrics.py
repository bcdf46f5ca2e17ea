"""How well the lab used its time: makespan, furnace utilisation, batching, and a lower bound.

The lower bound on the makespan of a set of experiments is the largest of
* the longest single experiment (its critical path),
* for each bottleneck role (furnaces, dosers, diffractometers): the shortest lead-in before that
  role's first possible job + the total work on it / the number of devices + the shortest tail
  after its last job. Furnace work assumes perfect batching (⌈n/slots⌉ runs per profile).
"""

from __future__ import annotations

import math
from collections import defaultdict

from pydantic import BaseModel
from sqlalchemy import select

from labos.lab.config import LabConfig
from labos.lab.records import FurnaceRunRow, TaskRow
from labos.lab.store import Store


class LabMetrics(BaseModel):
    experiments: int
    completed: int
    failed: int
    start_s: float | None
    end_s: float | None
    makespan_h: float
    lower_bound_h: float
    makespan_over_bound: float | None
    furnaces: int
    furnace_runs: int
    mean_batch: float
    furnace_heating_h: float
    furnace_utilisation: float  # heating time / (furnaces x makespan)
    slot_utilisation: float  # crucible-hours heated / (furnace slots x makespan)
    furnace_occupancy: float  # booked (loading, heating, unloading) / (furnaces x makespan)
    tasks_started: int
    scheduling_ms_per_task: float | None


def lab_metrics(
    store: Store,
    cfg: LabConfig,
    experiment_ids: list[str] | None = None,
    *,
    dispatch_s: float = 0.0,
    tasks_started: int = 0,
) -> LabMetrics:
    with store.factory() as s:
        stmt = select(TaskRow)
        if experiment_ids is not None:
            stmt = stmt.where(TaskRow.experiment_id.in_(experiment_ids))
        tasks = list(s.scalars(stmt))
        run_ids = {t.run_id for t in tasks if t.run_id}
        runs = [r for r in s.scalars(select(FurnaceRunRow)) if r.id in run_ids]
    by_exp: dict[str, list[TaskRow]] = defaultdict(list)
    for t in tasks:
        by_exp[t.experiment_id].append(t)
    starts = [t.ready_s for t in tasks if not t.deps and t.ready_s is not None]
    ends = [t.finished_s for t in tasks if t.finished_s is not None]
    start, end = (min(starts) if starts else None), (max(ends) if ends else None)
    makespan = (end - start) / 3600 if start is not None and end is not None else 0.0
    done = sum(1 for ts in by_exp.values() if ts and all(t.status == "done" for t in ts))
    failed = sum(1 for ts in by_exp.values() if any(t.status == "failed" for t in ts))
    n_f = len(cfg.furnaces())
    heating = sum((r.heat_end_s - r.heat_start_s) for r in runs if r.heat_end_s and r.heat_start_s) / 3600
    crucible_hours = (
        sum((r.heat_end_s - r.heat_start_s) * len(r.members) for r in runs if r.heat_end_s and r.heat_start_s)
        / 3600
    )
    booked = 0.0
    if start is not None and end is not None:
        for r in runs:
            a = r.created_s
            b = r.finished_s or end
            booked += max(0.0, min(b, end) - max(a, start))
    booked /= 3600
    denom = n_f * makespan
    slot_denom = sum(f.lab.slots for f in cfg.furnaces()) * makespan
    lb = lower_bound_h(cfg, by_exp)
    return LabMetrics(
        experiments=len(by_exp),
        completed=done,
        failed=failed,
        start_s=start,
        end_s=end,
        makespan_h=round(makespan, 4),
        lower_bound_h=round(lb, 4),
        makespan_over_bound=round(makespan / lb, 4) if lb > 0 and makespan > 0 else None,
        furnaces=n_f,
        furnace_runs=len(runs),
        mean_batch=round(sum(len(r.members) for r in runs) / len(runs), 3) if runs else 0.0,
        furnace_heating_h=round(heating, 4),
        furnace_utilisation=round(heating / denom, 4) if denom else 0.0,
        slot_utilisation=round(crucible_hours / slot_denom, 4) if slot_denom else 0.0,
        furnace_occupancy=round(booked / denom, 4) if denom else 0.0,
        tasks_started=tasks_started,
        scheduling_ms_per_task=round(1000 * dispatch_s / tasks_started, 4) if tasks_started else None,
    )


def lower_bound_h(cfg: LabConfig, by_exp: dict[str, list[TaskRow]]) -> float:
    """See the module docstring (hours)."""
    if not by_exp:
        return 0.0
    chain = max(max(t.rank_min for t in ts) for ts in by_exp.values() if ts)
    bounds = [chain]
    slots = max((f.lab.slots for f in cfg.furnaces()), default=1) or 1
    roles = {
        "heat": ("furnace", len(cfg.furnaces())),
        "dose": ("doser", len(cfg.by_role("doser"))),
        "xrd": ("xrd", len(cfg.by_role("xrd"))),
    }
    for kind, (_, n_dev) in roles.items():
        if not n_dev:
            continue
        lead, tail, work = math.inf, math.inf, 0.0
        per_key: dict[str, list[float]] = defaultdict(list)
        for ts in by_exp.values():
            top = max(t.rank_min for t in ts)
            for t in ts:
                if t.kind != kind:
                    continue
                lead = min(lead, top - t.rank_min)
                tail = min(tail, t.rank_min - t.duration_min)
                if kind == "heat":
                    per_key[t.params.get("batch_key", t.id)].append(t.duration_min)
                else:
                    work += t.duration_min
        if lead is math.inf:
            continue
        if kind == "heat":
            work = sum(math.ceil(len(d) / slots) * max(d) for d in per_key.values())
        bounds.append(lead + work / n_dev + tail)
    return max(bounds) / 60.0
