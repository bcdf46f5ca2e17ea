"""The closed loop: screen targets, plan, keep the furnaces fed, analyse, learn, stop, report.

One SimPy process on the lab's clock drives a campaign:

* **Feeding.** Furnaces are the expensive resource, so the loop feeds them *just in time*: whenever a
  furnace is free, or its programme ends within ``lead_min``, and too few crucibles are waiting to be
  loaded, it asks planners for more experiments — round-robin over the active targets (fewest in
  the lab first, then fewest used), each target's share taken in one ``ask_batch`` so the planner
  spreads its picks. How many crucibles one furnace gets is set by the diffractometer: feeding faster
  than it can measure only grows its queue and delays every result the planners wait for.
* **Learning.** Every analysed XRD pattern comes back through the lab's ``on_outcome``; the target's
  planner is told, and the target stops at success (target fraction above the threshold) — its
  experiments that have not started yet are cancelled — or when its budget is spent.
* **Time.** Nothing is started that cannot finish before the campaign's virtual deadline.
* **Restarts.** A decision is written before its experiment is submitted; a new process rebuilds
  every planner from the decisions and outcomes in the database, resubmits (idempotently) what was
  decided but maybe not submitted, and the lab OS resumes the experiments that were in progress.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from labos.campaign import persist
from labos.campaign.config import CampaignConfig
from labos.campaign.records import CampaignDecisionRow
from labos.campaign.tracks import (
    ACTIVE,
    INFEASIBLE,
    REJECTED,
    SUCCEEDED,
    TargetTrack,
    load_priors,
    make_planner,
)
from labos.domain import Experiment, Outcome, Target, parse_formula
from labos.errors import LabosError
from labos.lab.events import emit

log = logging.getLogger(__name__)

TICK_S = 20 * 60.0  # longest the loop sleeps between looks at the furnaces (lab seconds)
MARGIN_MIN = 120.0  # dosing, mixing, grinding and XRD around a heat programme (for the deadline)


@dataclass
class Progress:
    """A snapshot for progress displays (the CLI's rich view, the console)."""

    campaign_id: str
    lab_days: float
    days: float
    targets: int
    active: int
    succeeded: int
    finished: int
    experiments: int
    reported: int
    in_flight: int
    message: str = ""
    last: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]


class CampaignRunner:
    """Runs (or resumes) one campaign on a simulated lab; see the module docstring."""

    def __init__(
        self,
        cfg: CampaignConfig | None = None,
        *,
        db_url: str | None = None,
        campaign_id: str | None = None,
        thermo=None,
        world=None,
        inventory=None,
        priors: Any = "auto",
        progress: ProgressFn | None = None,
        home: Path | None = None,
    ):
        from labos.config import get_settings
        from labos.lab.store import Store

        if cfg is None and campaign_id is None:
            raise LabosError("give a campaign configuration, or the id of a campaign to resume")
        self.store = Store(db_url)
        self.progress = progress
        self._thermo, self._world, self._inventory, self._priors = thermo, world, inventory, priors
        self.home = Path(home) if home else get_settings().home
        self.resumed = False
        with self.store.factory() as s:
            row = s.get(persist.CampaignRow, campaign_id) if campaign_id else None
            if row is not None:
                stored = persist.config_of(row)
                if cfg is not None and cfg.model_dump() != stored.model_dump():
                    raise LabosError(
                        f"campaign {campaign_id} exists with a different configuration; resume it without "
                        "changing targets, budget, planner or lab (or use a new campaign id)"
                    )
                self.cfg = stored
                self.resumed = bool(persist.decisions(s, row.id)) or row.status not in (
                    "submitted",
                    "created",
                )
            elif campaign_id and cfg is None:
                raise persist.CampaignNotFound(f"no campaign {campaign_id!r} in this database")
            else:
                self.cfg = cfg
        if row is None:
            self.campaign_id = self.store.run(lambda s: persist.create_campaign(s, self.cfg, campaign_id).id)
        else:
            self.campaign_id = row.id
        self.threshold = self.cfg.success_threshold
        self.tracks: dict[str, TargetTrack] = {}
        self.by_experiment: dict[str, TargetTrack] = {}
        self.seq = 0
        self.notes: list[str] = []
        self._run_mins: list[float] = []  # programme lengths proposed so far (feeding pace)
        # decided before a crash, maybe never submitted: handed to the lab again (idempotent)
        self.resubmit: list[tuple[CampaignDecisionRow, Any]] = []

    # ------------------------------------------------------------------ set-up

    def _setup(self) -> None:
        from labos.campaign.simulation import build_chemistry, build_simlab, lab_config, shelf_from_lab

        cfg = self.cfg
        self.chem = build_chemistry(cfg, self._thermo, self._world, self._inventory)
        self.lab_cfg = lab_config(cfg.lab, self.chem.inventory)
        self.shelf = shelf_from_lab(self.lab_cfg, self.chem.inventory)
        folder = self.home / "campaigns" / self.campaign_id
        folder.mkdir(parents=True, exist_ok=True)
        if not self.lab_cfg.xrd_dir:  # diffraction files next to the campaign's other files
            self.lab_cfg = self.lab_cfg.model_copy(update={"xrd_dir": str(folder / "xrd")})
        state_path = folder / "world.json" if cfg.lab.persist_world else None
        self.sim = build_simlab(
            cfg.lab,
            self.chem,
            self.lab_cfg,
            self.store,
            threshold=self.threshold,
            seed=cfg.hidden_seed,
            state_path=state_path,
        )
        self.lab = self.sim.lab
        self.operator = None
        if cfg.lab.simulated_operator and getattr(self.sim, "physics", None) is not None:  # not on hardware
            from labos.campaign.operator import SimulatedOperator

            self.operator = SimulatedOperator(self.sim)
        self.furnaces = [f.name for f in self.lab_cfg.furnaces()]
        self.furnace_max_c = min((f.lab.max_c or 1200.0) for f in self.lab_cfg.furnaces())
        self.slots = max(f.lab.slots for f in self.lab_cfg.furnaces())
        if self._priors == "auto":
            self.priors, self.priors_note = load_priors(cfg.use_priors)
        else:
            self.priors = self._priors
            self.priors_note = "not used" if self._priors is None else "given by the caller"
        self.pair_store = self._pair_store()
        with self.store.factory() as s:
            st = self.store.state(s)
            self.start_s = float(
                (persist.load_campaign(s, self.campaign_id).config or {}).get("lab_start_s", st.clock_s)
            )
        self.deadline_s = self.start_s + cfg.days * 86400.0

    def _pair_store(self):
        from labos.planners.pairwise import PairwiseStore

        if not self.cfg.reuse_knowledge:
            return PairwiseStore("air")
        from labos.planners.store import load_store

        with self.store.factory() as s:
            return load_store(s, "air")

    def _screen(self) -> dict[str, Any]:
        """Screening verdicts per target (key: reduced formula)."""
        if not self.cfg.screen:
            return {}
        from labos.models.thermo import screen

        results = screen(
            self.cfg.targets,
            self.shelf,
            db=self.chem.thermo,
            air_db=self.chem.thermo,
            max_ehull=self.cfg.max_ehull,
        )
        return {parse_formula(r.formula): r for r in results}

    def _build_tracks(self) -> None:
        from labos.planners.errors import PlannerError

        verdicts = self._screen()
        updates: list[tuple[str, str, dict]] = []
        for i, formula in enumerate(self.cfg.targets):
            key = parse_formula(formula)
            track = TargetTrack(formula=formula, order=i, budget=self.cfg.budget_per_target)
            info: dict[str, Any] = {}
            v = verdicts.get(key)
            if v is not None:
                info = {
                    "e_above_hull": v.e_above_hull,
                    "screening": v.reasons or ["accepted"],
                    "thermo_source": v.source,
                }
                if not v.accepted:
                    track.status, track.reason = REJECTED, "; ".join(v.reasons)
            if track.active:
                try:
                    track.planner = make_planner(
                        self.cfg.planner,
                        formula,
                        self.shelf,
                        self.chem.thermo,
                        self.priors,
                        seed=self.cfg.seed,
                        store=self.pair_store,
                        threshold=self.threshold,
                        furnace_max_c=self.furnace_max_c,
                    )
                except PlannerError as exc:
                    track.status, track.reason = INFEASIBLE, str(exc)
            self.tracks[key] = track
            updates.append(
                (formula, _db_status(track), {**info, "reason": track.reason, "budget": track.budget})
            )

        def fn(s):
            for formula, status, data in updates:
                persist.update_target(s, self.campaign_id, formula, status, **data)
            row = persist.load_campaign(s, self.campaign_id)
            cfgd = dict(row.config or {})
            cfgd.setdefault("lab_start_s", self.start_s)
            cfgd["priors"] = self.priors_note
            row.config = cfgd
            row.status = "running"
            emit(
                s,
                "campaign.started",
                self.campaign_id,
                lab_t=self.lab.now,
                planner=self.cfg.planner,
                targets=len(updates),
                resumed=self.resumed,
                priors=self.priors_note,
            )

        self.store.run(fn)

    def _replay(self) -> None:
        """Rebuild planners and tracks from the decisions and outcomes already in the database."""
        from labos.planners.errors import PlannerError
        from labos.planners.proposal import Proposal

        with self.store.factory() as s:
            rows = persist.decisions(s, self.campaign_id)
            ids = [r.experiment_id for r in rows]
            outcomes = persist.last_outcomes(s, ids)
            status = persist.experiment_status(s, ids)
        fixes: dict[str, dict] = {}
        for r in rows:
            self.seq = max(self.seq, r.seq + 1)
            track = self.tracks.get(parse_formula(r.target))
            if track is None or r.status == "cancelled":
                continue
            prop = Proposal.model_validate(r.proposal)
            track.used += 1
            out = outcomes.get(r.experiment_id)
            if out is not None:
                if track.planner is not None:
                    try:
                        track.planner.observe(prop.precursors, prop.temperature_c, out, prop.dwell_min)
                    except PlannerError as exc:
                        self.notes.append(f"{r.experiment_id}: planner could not learn from it ({exc})")
                track.record(r.experiment_id, out, self.threshold)
                if r.status != "reported":
                    fixes[r.experiment_id] = {
                        "status": "reported",
                        "target_fraction": out.target_fraction,
                        "success": out.target_fraction > self.threshold,
                    }
                continue
            st = status.get(r.experiment_id)
            if st in ("failed", "cancelled"):
                if r.status != st:
                    fixes[r.experiment_id] = {"status": "failed" if st == "failed" else "cancelled"}
                if st == "cancelled":
                    track.used -= 1
                continue
            # still in the lab (or decided but never submitted): wait for it
            track.in_flight[r.experiment_id] = prop
            self.by_experiment[r.experiment_id] = track
            if track.planner is not None:
                track.planner.pending[prop.id] = track.planner.cell_for(
                    prop.precursors, prop.temperature_c, prop.dwell_min
                )
            if st is None:
                self.resubmit.append((r, prop))
        for track in self.tracks.values():
            track.settle()
        if fixes:

            def fn(s):
                for eid, vals in fixes.items():
                    row = s.get(CampaignDecisionRow, eid)
                    for k, v in vals.items():
                        setattr(row, k, v)

            self.store.run(fn)
        if rows:  # the target rows were just reset by _build_tracks: write what the history says
            self._save_targets()

    # ------------------------------------------------------------------ running

    def run(self):
        """Run until every target is done or the virtual time is up; return the report."""
        from labos.campaign.report import build_report

        t0 = time.perf_counter()
        self._setup()
        self._build_tracks()
        self._replay()
        lab = self.lab
        now = lab.now
        sid = self.store.run(
            lambda s: persist.start_session(
                s,
                self.campaign_id,
                now,
                {"resumed": self.resumed, "planner": self.cfg.planner, "priors": self.priors_note},
            )
        )
        for r, prop in self.resubmit:
            self._submit(self.tracks[parse_formula(r.target)], prop, r.experiment_id)
        lab.on_outcome(self._on_outcome)
        self._wake = lab.env.event()
        status = "failed"
        try:
            proc = lab.process(self._loop())
            lab.engine.start()
            lab.env.run(until=proc)
            if self._finished():  # let the last samples reach storage before the lab stops
                lab.env.run(until=lab.process(self._drain()))
            status = "completed" if self._finished() else "time_up"
        except BaseException as exc:
            status = "interrupted" if not isinstance(exc, Exception) else "failed"
            raise
        finally:
            wall = time.perf_counter() - t0
            end = lab.now

            def fin(s):
                persist.end_session(s, sid, wall, end, status)
                if status in ("completed", "time_up"):
                    row = persist.load_campaign(s, self.campaign_id)
                    row.status = status
                ts = self.tracks.values()
                emit(
                    s,
                    "campaign.finished" if status in ("completed", "time_up") else "campaign.stopped",
                    self.campaign_id,
                    lab_t=end,
                    status=status,
                    wall_s=round(wall, 2),
                    succeeded=sum(t.status == SUCCEEDED for t in ts),
                    experiments=sum(t.used for t in ts),
                )

            try:
                self.store.run(fin)
            finally:
                lab.close()
        return build_report(self.campaign_id, self.store.url)

    def _finished(self) -> bool:
        """No target left to work on and nothing of this campaign still in the lab."""
        return not any(t.active or t.in_flight for t in self.tracks.values())

    def _loop(self):
        env = self.lab.env
        soon = self._fill()
        while not self._finished():
            now = env.now
            if now >= self.deadline_s:
                return
            wake = min(now + TICK_S, self.deadline_s)
            if soon is not None and soon > now:
                wake = min(wake, soon)
            timeout = env.timeout(max(1.0, wake - now))
            yield env.any_of([timeout, self._wake])
            if self._wake.triggered:
                self._wake = env.event()
            if self.operator is not None:
                self.operator.answer_open()
            self._check_failed()
            soon = self._fill()

    def _drain(self):
        """Wait (on the lab clock) until no task of this campaign's experiments is left, or the deadline."""
        from labos.lab.records import TaskRow

        env = self.lab.env
        until = min(self.deadline_s, env.now + 6 * 3600.0)  # storing a sample takes minutes, not hours
        while env.now < until:
            with self.store.factory() as s:
                left = s.scalar(
                    select(_count())
                    .select_from(TaskRow)
                    .join(persist.ExperimentRow, persist.ExperimentRow.id == TaskRow.experiment_id)
                    .where(
                        persist.ExperimentRow.campaign_id == self.campaign_id,
                        TaskRow.status.in_(("blocked", "ready", "running", "resume")),
                    )
                )
            if not left:
                return
            yield env.timeout(min(60.0, max(1.0, until - env.now)))

    def _poke(self) -> None:
        if not self._wake.triggered:
            self._wake.succeed()

    # ------------------------------------------------------------------ feeding the furnaces

    def _furnace_view(self, now: float) -> tuple[int, int, float | None]:
        """(furnaces that need crucibles, crucibles waiting to be loaded, next time one will)."""
        from labos.lab.records import FurnaceRunRow, TaskRow

        lead = self.cfg.lead_min * 60.0
        with self.store.factory() as s:
            runs = list(
                s.execute(
                    select(
                        FurnaceRunRow.furnace,
                        FurnaceRunRow.status,
                        FurnaceRunRow.heat_start_s,
                        FurnaceRunRow.duration_min,
                    ).where(FurnaceRunRow.status.in_(("loading", "heating", "cooled", "unloading")))
                )
            )
            waiting = (
                s.scalar(
                    select(_count())
                    .select_from(TaskRow)
                    .where(
                        TaskRow.kind == "heat",
                        TaskRow.run_id.is_(None),
                        TaskRow.status.in_(("blocked", "ready")),
                    )
                )
                or 0
            )
        busy_until: dict[str, float] = {}
        for furnace, st, start, dur in runs:
            if st == "loading":
                end = math.inf  # filling now; it will run its programme next
            elif st == "heating":
                end = (start if start is not None else now) + dur * 60.0
            else:
                end = now  # cooled / unloading: free within minutes
            busy_until[furnace] = max(busy_until.get(furnace, now), end)
        need, later = 0, None
        for f in self.furnaces:
            end = busy_until.get(f, now)
            if end - lead <= now:
                need += 1
            elif end != math.inf:
                t = end - lead
                later = t if later is None else min(later, t)
        return need, int(waiting), later

    def _per_furnace(self) -> float:
        """Crucibles to feed one free furnace: the diffractometer's pace over the furnaces' pace."""
        if self.cfg.crucibles_per_run:
            return float(self.cfg.crucibles_per_run)
        from labos.domain import XRDStep
        from labos.lab.tasks import Diffraction

        xrd_min = Diffraction.estimate_min(XRDStep().model_dump(), self.lab_cfg) + self.lab_cfg.timing.move
        n_xrd = max(1, len(self.lab_cfg.by_role("xrd")))
        recent = self._run_mins[-50:]
        run_min = statistics.median(recent) if recent else 480.0
        pace = 0.9 * run_min * n_xrd / xrd_min / max(1, len(self.furnaces))
        return max(1.0, min(float(self.slots), pace))

    def _parallel_cap(self, n_active: int) -> int:
        if self.cfg.max_parallel_per_target:
            return self.cfg.max_parallel_per_target
        feed = len(self.furnaces) * self._per_furnace()
        return int(max(2, min(self.slots, math.ceil(feed / max(1, n_active)))))

    def _fill(self) -> float | None:
        """Ask for experiments if furnaces will lack crucibles; returns when to look again."""
        env = self.lab.env
        now = float(env.now)
        if now + MARGIN_MIN * 60.0 >= self.deadline_s:
            return None
        active = [t for t in self.tracks.values() if t.active]
        if not active:
            return None
        need, waiting, later = self._furnace_view(now)
        deficit = math.ceil(need * self._per_furnace()) - waiting
        if deficit <= 0:
            return later
        cap = self._parallel_cap(len(active))
        shares: dict[str, int] = {}
        load = {id(t): len(t.in_flight) for t in active}
        left = {id(t): t.room for t in active}
        for _ in range(deficit):
            cands = [t for t in active if left[id(t)] > 0 and load[id(t)] < cap]
            if not cands:
                break
            t = min(cands, key=lambda t: (load[id(t)], t.used + shares.get(t.formula, 0), t.order))
            shares[t.formula] = shares.get(t.formula, 0) + 1
            load[id(t)] += 1
            left[id(t)] -= 1
        for formula, k in shares.items():
            self._propose(self.tracks[parse_formula(formula)], k, now)
        return later

    def _propose(self, track: TargetTrack, k: int, now: float) -> None:
        from labos.planners.errors import PlannerError, PlannerExhaustedError

        try:
            proposals = track.planner.ask_batch(k)
        except PlannerExhaustedError:
            track.space_exhausted = True
            track.settle()
            self._save_targets([track])
            return
        except PlannerError as exc:
            track.space_exhausted = True
            track.reason = f"planner stopped: {exc}"
            track.settle()
            self._save_targets([track])
            return
        rows = []
        for prop in proposals:
            duration = sum(h.duration_min() for h in prop.recipe.heats)
            if now + (duration + MARGIN_MIN) * 60.0 > self.deadline_s:
                track.planner.pending.pop(prop.id, None)
                continue
            self._run_mins.append(prop.recipe.heats[0].duration_min())
            # ordered within the campaign: the scheduler breaks ties by id, so runs are reproducible
            exp_id = f"exp-{self.campaign_id.removeprefix('cmp-')}-{self.seq:05d}"
            rows.append(
                CampaignDecisionRow(
                    experiment_id=exp_id,
                    campaign_id=self.campaign_id,
                    target=track.formula,
                    seq=self.seq,
                    planner=self.cfg.planner,
                    status="proposed",
                    proposal=prop.model_dump(mode="json"),
                    proposed_s=now,
                )
            )
            self.seq += 1
            track.used += 1
            track.in_flight[exp_id] = prop
            self.by_experiment[exp_id] = track
        if not rows:
            return

        def fn(s):
            for r in rows:
                s.add(r)
            persist.update_target(s, self.campaign_id, track.formula, track.status, used=track.used)

        self.store.run(fn)
        for r in rows:
            self._submit(track, track.in_flight[r.experiment_id], r.experiment_id)
        self._report_progress(f"{track.formula}: {len(rows)} new experiment(s)")

    def _submit(self, track: TargetTrack, prop, exp_id: str) -> None:
        exp = Experiment(
            id=exp_id,
            target=Target(formula=track.formula, source="campaign"),
            recipe=prop.recipe,
            explanation=prop.explanation,
            campaign_id=self.campaign_id,
        )
        self.lab.submit(exp, planner=self.cfg.planner)

    # ------------------------------------------------------------------ outcomes

    def _on_outcome(self, outcome: Outcome) -> None:
        track = self.by_experiment.get(outcome.experiment_id)
        if track is None or outcome.experiment_id not in track.in_flight:
            return  # another campaign's experiment, or one already counted
        try:
            self._learn(track, outcome)
        except Exception:  # a planner bug must not stop the lab's report task
            log.exception(
                "campaign %s: could not take in outcome %s", self.campaign_id, outcome.experiment_id
            )
            track.in_flight.pop(outcome.experiment_id, None)
            track.settle()
        self._poke()

    def _learn(self, track: TargetTrack, outcome: Outcome) -> None:
        from labos.planners.errors import PlannerError

        exp_id = outcome.experiment_id
        prop = track.in_flight[exp_id]
        note = None
        try:
            track.planner.tell(prop, outcome)
        except PlannerError as exc:
            note = f"planner could not learn from it: {exc}"
            track.planner.pending.pop(prop.id, None)
        was_active = track.active
        succeeded = track.record(exp_id, outcome, self.threshold)
        now = self.lab.now
        frac = float(outcome.target_fraction)

        def fn(s):
            row = s.get(CampaignDecisionRow, exp_id)
            if row is not None:
                row.status = "reported"
                row.target_fraction = frac
                row.success = frac > self.threshold
                row.reported_s = now
                row.note = note
            self._write_target(s, track)
            if self.cfg.reuse_knowledge and track.planner is not None:
                from labos.planners.store import save_store

                save_store(s, self.pair_store)

        self.store.run(fn)
        if succeeded:
            self._cancel_queued(track)
        elif was_active and not track.active:
            self._cancel_queued(track)
        self._report_progress(
            f"{track.formula}: {frac:.0%} target ({' + '.join(prop.precursors)}, {prop.temperature_c:.0f} °C)"
            + (" — success" if succeeded else ""),
            last={"target": track.formula, "experiment": exp_id, "fraction": frac, "success": succeeded},
        )

    def _cancel_queued(self, track: TargetTrack) -> None:
        """Experiments of a finished target that have not started are cancelled (budget given back)."""
        if not track.in_flight:
            return
        with self.store.factory() as s:
            status = persist.experiment_status(s, list(track.in_flight))
        cancelled = [e for e, st in status.items() if st == "queued"]
        for exp_id in cancelled:
            self.lab.cancel(exp_id, "campaign")
            prop = track.in_flight.pop(exp_id)
            track.planner.pending.pop(prop.id, None)
            track.used -= 1
        if cancelled:

            def fn(s):
                for exp_id in cancelled:
                    row = s.get(CampaignDecisionRow, exp_id)
                    if row is not None:
                        row.status = "cancelled"
                        row.note = f"target {track.status} before it started"
                self._write_target(s, track)

            self.store.run(fn)

    def _check_failed(self) -> None:
        """Experiments the lab gave up on (failed, cancelled by the operator) leave the target's queue."""
        in_flight = {e: t for t in self.tracks.values() for e in t.in_flight}
        if not in_flight:
            return
        with self.store.factory() as s:
            status = persist.experiment_status(s, list(in_flight))
        gone = {e: st for e, st in status.items() if st in ("failed", "cancelled")}
        if not gone:
            return
        touched = []
        for exp_id, st in gone.items():
            track = in_flight[exp_id]
            prop = track.in_flight.pop(exp_id)
            track.planner.pending.pop(prop.id, None)
            if st == "cancelled":
                track.used -= 1
            track.settle()
            touched.append(track)

        def fn(s):
            for exp_id, st in gone.items():
                row = s.get(CampaignDecisionRow, exp_id)
                if row is not None:
                    row.status = "failed" if st == "failed" else "cancelled"
                    row.note = f"the lab reported the experiment {st}"
            for t in touched:
                self._write_target(s, t)

        self.store.run(fn)

    # ------------------------------------------------------------------ bookkeeping

    def _write_target(self, s, track: TargetTrack) -> None:
        status = _db_status(track)
        if status != track.written:
            track.written = status
            emit(
                s,
                "campaign.target",
                self.campaign_id,
                lab_t=self.lab.now,
                target=track.formula,
                status=status,
                used=track.used,
                best_fraction=round(track.best_fraction, 4),
                reason=track.reason,
            )
        persist.update_target(
            s,
            self.campaign_id,
            track.formula,
            _db_status(track),
            reason=track.reason,
            used=track.used,
            best_fraction=round(track.best_fraction, 4),
            best_experiment=track.best_experiment,
            success_experiment=track.success_experiment,
        )

    def _save_targets(self, tracks: list[TargetTrack] | None = None) -> None:
        tracks = tracks if tracks is not None else list(self.tracks.values())

        def fn(s):
            for t in tracks:
                self._write_target(s, t)

        self.store.run(fn)

    def _report_progress(self, message: str, last: dict | None = None) -> None:
        if self.progress is None:
            return
        ts = list(self.tracks.values())
        self.progress(
            Progress(
                campaign_id=self.campaign_id,
                lab_days=(self.lab.now - self.start_s) / 86400.0,
                days=self.cfg.days,
                targets=len(ts),
                active=sum(t.active for t in ts),
                succeeded=sum(t.status == SUCCEEDED for t in ts),
                finished=sum(not t.active for t in ts),
                experiments=sum(t.used for t in ts),
                reported=sum(t.reported for t in ts),
                in_flight=sum(len(t.in_flight) for t in ts),
                message=message,
                last=last or {},
            )
        )


def _db_status(track: TargetTrack) -> str:
    """The target row's status: pending / running while active, else the track's verdict."""
    if track.status == ACTIVE:
        return "running" if track.used else "pending"
    return track.status


def _count():
    from sqlalchemy import func

    return func.count()


def run_campaign(
    targets: list[str] | None = None,
    lab_config: str | None = None,
    budget_per_target: int = 8,
    days: float = 17.0,
    planner: str = "labos",
    seed: int = 0,
    db_url: str | None = None,
    progress: ProgressFn | None = None,
    *,
    campaign_id: str | None = None,
    config: CampaignConfig | None = None,
    **options: Any,
):
    """Run a campaign (or resume ``campaign_id``) and return its :class:`CampaignReport`.

    ``options`` are further :class:`CampaignConfig` fields (``chemistry``, ``threshold``, ``name``,
    ``use_priors``, ...) and ``lab`` settings (``furnaces``, ``furnace_slots``, ``xrd``) plus the
    injectable ``thermo``, ``world``, ``inventory``, ``priors`` (tests and benchmarks share them).
    """
    inject = {k: options.pop(k) for k in ("thermo", "world", "inventory", "priors", "home") if k in options}
    lab_keys = {"furnaces", "furnace_slots", "xrd", "measurement_sigma", "detection_limit", "persist_world"}
    lab_opts = {k: options.pop(k) for k in list(options) if k in lab_keys}
    cfg = config
    if cfg is None and targets is not None:
        cfg = CampaignConfig(
            targets=list(targets),
            budget_per_target=budget_per_target,
            days=days,
            planner=planner,
            seed=seed,
            lab={"config_path": lab_config, **lab_opts},
            **options,
        )
    runner = CampaignRunner(cfg, db_url=db_url, campaign_id=campaign_id, progress=progress, **inject)
    return runner.run()
