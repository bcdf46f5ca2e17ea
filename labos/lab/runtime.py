"""``Lab``: the lab OS in one object — configuration, database, devices, clock, engine, API.

lab = Lab(config, db_url, devices={"furnace_1": driver, ...}, analyzer=...)
exp_id = lab.submit(experiment)          # builds and stores its task graph
lab.on_outcome(planner_callback)         # the campaign's feedback
lab.run()                                # virtual time: until no work is left
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import networkx as nx
import simpy
from sqlalchemy import select

from labos.db.records import ExperimentRow
from labos.db.repository import load_outcomes, save_experiment
from labos.domain import Experiment, ExperimentStatus, Outcome
from labos.lab import inventory
from labos.lab.api import LabAPI
from labos.lab.config import LabConfig
from labos.lab.engine import Analyzer, Engine
from labos.lab.events import emit
from labos.lab.inventory import InventoryError
from labos.lab.metrics import LabMetrics, lab_metrics
from labos.lab.records import TaskRow
from labos.lab.resources import sync_resources
from labos.lab.store import Store
from labos.lab.tasks import task_type
from labos.lab.workflow import build_graph, check_runnable, prepare_graph, sample_id_for

_SAMPLE_FREE_KINDS = ("analyze", "report")


class Lab:
    def __init__(
        self,
        cfg: LabConfig,
        db: str | Store | None = None,
        devices: Mapping[str, Any] | None = None,
        *,
        env: simpy.Environment | None = None,
        analyzer: Analyzer | None = None,
        threaded: bool = False,
        worker_id: str | None = None,
        poll_s: float | None = None,
        lab_id: str = "lab",
        unload_below_c: float = 100.0,
    ):
        self.cfg = cfg
        self.store = db if isinstance(db, Store) else Store(db, lab_id)
        self.setup()
        self.engine = Engine(
            self.store,
            cfg,
            devices or {},
            env=env,
            analyzer=analyzer,
            threaded=threaded,
            worker_id=worker_id,
            poll_s=poll_s,
            unload_below_c=unload_below_c,
        )
        self.api = LabAPI(self.store, on_change=self.engine.notify_change)

    def setup(self) -> None:
        """Make the database know this lab's devices, slots and lots (idempotent)."""

        def fn(s):
            st = self.store.state(s)
            st.config = self.cfg.model_dump(mode="json")
            sync_resources(s, self.cfg)
            inventory.sync_inventory(s, self.cfg.inventory)

        self.store.run(fn)

    @property
    def env(self) -> simpy.Environment:
        return self.engine.env

    @property
    def now(self) -> float:
        return self.engine.now

    # ---- work in

    def submit(
        self,
        exp: Experiment,
        *,
        priority: float = 0.0,
        graph: nx.DiGraph | None = None,
        planner: str | None = None,
    ) -> str:
        """Queue an experiment (idempotent: submitting the same id again changes nothing)."""
        g = graph if graph is not None else build_graph(exp, self.cfg)
        g = prepare_graph(g, self.cfg, priority=priority)
        check_runnable(g, self.cfg)
        sid = exp.samples[0].id if exp.samples else sample_id_for(exp.id)
        now = self.now

        def fn(s):
            existing = s.get(ExperimentRow, exp.id)
            if existing is not None and s.scalar(
                select(TaskRow.id).where(TaskRow.experiment_id == exp.id).limit(1)
            ):
                return False
            stocked = inventory.stocked_formulas(s)
            for _node, attrs in g.nodes(data=True):
                for d in attrs["params"].get("doses", []):
                    if inventory._key(d["precursor"]) not in stocked:
                        raise InventoryError(
                            f"experiment {exp.id}: precursor {d['precursor']} is not in the lab's inventory"
                        )
            row_exp = exp.model_copy(update={"samples": [], "status": ExperimentStatus.QUEUED})
            save_experiment(s, row_exp, planner=planner)
            s.flush()
            for node, attrs in g.nodes(data=True):
                preds = [f"{exp.id}:{p}" for p in g.predecessors(node)]
                succs = [f"{exp.id}:{q}" for q in g.successors(node)]
                touches = attrs["kind"] not in _SAMPLE_FREE_KINDS and (
                    task_type(attrs["kind"]).moves_to is not None
                    or attrs["kind"] in ("heat", "load", "unload")
                )
                s.add(
                    TaskRow(
                        id=f"{exp.id}:{node}",
                        experiment_id=exp.id,
                        node=node,
                        kind=attrs["kind"],
                        params=attrs["params"],
                        status="ready" if not preds else "blocked",
                        deps=preds,
                        successors=succs,
                        pending=len(preds),
                        priority=attrs["priority"],
                        rank_min=attrs["rank_min"],
                        lead_min=attrs.get("lead_min"),
                        duration_min=attrs["duration_min"],
                        batch_key=attrs["params"].get("batch_key") if attrs["kind"] == "load" else None,
                        sample_id=sid if touches or attrs["kind"] in _SAMPLE_FREE_KINDS else None,
                        ready_s=now if not preds else None,
                        holds={},
                        result={},
                    )
                )
            emit(
                s,
                "experiment.submitted",
                exp.id,
                lab_t=now,
                target=exp.target.formula,
                tasks=g.number_of_nodes(),
                priority=priority,
                campaign=exp.campaign_id,
            )
            return True

        self.store.run(fn)
        self.engine.kick()
        return exp.id

    def cancel(self, experiment_id: str, user: str) -> None:
        """Stop an experiment; its sample (if any) is left for the operator to remove."""
        from labos.lab.transitions import abort_experiment

        now = self.now
        self.store.run(
            lambda s: abort_experiment(
                s,
                experiment_id,
                reason=f"cancelled by {user}",
                now_s=now,
                sample_to=None,
                sample_status="stranded",
                status="cancelled",
            )
        )
        self.engine.kick()

    # ---- outcomes out

    def on_outcome(self, callback: Callable[[Outcome], None]) -> None:
        """Call ``callback(outcome)`` each time an experiment reports (the campaign's feedback)."""
        self.engine.outcome_callbacks.append(callback)

    def outcome_event(self) -> simpy.Event:
        """A SimPy event that fires with the next reported outcome (for campaign processes)."""
        return self.engine.outcome_event

    def outcomes(self, experiment_id: str) -> list[Outcome]:
        with self.store.factory() as s:
            return load_outcomes(s, experiment_id)

    # ---- running

    def run(self, until: float | None = None) -> None:
        self.engine.run(until=until)

    def run_until_settled(
        self, experiment_ids: list[str], *, check_every_s: float = 300.0, limit_s: float | None = None
    ) -> dict[str, str]:
        """Run (virtual or real time) until every given experiment has completed, failed, been
        cancelled or waits for the operator, or ``limit_s`` lab seconds passed; returns their status."""
        settled = {"completed", "failed", "cancelled", "waiting_operator"}
        end = None if limit_s is None else self.now + limit_s

        def watch():
            while True:
                statuses = {e: self.api.experiment_status(e) for e in experiment_ids}
                if set(statuses.values()) <= settled or (end is not None and self.now >= end):
                    return statuses
                yield self.env.timeout(check_every_s)

        self.engine.start()
        proc = self.env.process(watch())
        return self.env.run(until=proc)

    def process(self, generator) -> simpy.Process:
        """Run a generator (e.g. a campaign loop) as a process on the lab clock."""
        return self.env.process(generator)

    def metrics(self, experiment_ids: list[str] | None = None) -> LabMetrics:
        return lab_metrics(
            self.store,
            self.cfg,
            experiment_ids,
            dispatch_s=self.engine.dispatch_s,
            tasks_started=self.engine.tasks_started,
        )

    def close(self) -> None:
        self.engine.close()
