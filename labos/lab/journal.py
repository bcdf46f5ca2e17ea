"""The step journal: a write-ahead record of every hardware step and the state change it causes.

Before a step touches hardware an ``intent`` row is committed (with what the step will do and
any reading taken just before); after it, a ``done`` row is committed *in the same transaction
as the step's effect* (the sample moved, the dose booked against a lot, the furnace run marked
started). On restart a step is therefore in one of four states:

* done: skipped, its recorded result replayed;
* failed / abandoned: run again as a new attempt;
* open (intent without outcome): the hardware may or may not have acted. The task verifies it
  from the device (a balance reading, the furnace's programme state) or, when that cannot
  decide, asks the operator — it never guesses and never repeats a dose or a heat.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from labos.db.base import utcnow
from labos.lab.records import JournalRow

# effect name -> fn(session, owner, data, result, lab_t, cause) applying the state change
Effect = Callable[[Session, str, dict, Any, float, str], None]
EFFECTS: dict[str, Effect] = {}


def effect(name: str) -> Callable[[Effect], Effect]:
    def deco(fn: Effect) -> Effect:
        EFFECTS[name] = fn
        return fn

    return deco


def apply_effect(
    session: Session, name: str | None, owner: str, data: dict, result: Any, lab_t: float, cause: str
) -> None:
    if name:
        if name not in EFFECTS:
            import labos.lab.effects  # noqa: F401  (registers the built-in effects)
        EFFECTS[name](session, owner, data, result, lab_t, cause)


@dataclass
class StepState:
    state: str  # new | done | open | failed | abandoned
    attempt: int = 0
    data: dict = field(default_factory=dict)  # the intent's data
    effect: str | None = None
    result: Any = None


class StepLog:
    """The journal of one owner (task or furnace run), read once when its process starts."""

    def __init__(self, rows: list[JournalRow]):
        self.steps: dict[str, dict[int, dict[str, JournalRow]]] = {}
        for r in rows:
            self.steps.setdefault(r.step, {}).setdefault(r.attempt, {})[r.phase] = r

    @classmethod
    def load(cls, session: Session, owner: str) -> StepLog:
        rows = session.scalars(select(JournalRow).where(JournalRow.owner == owner).order_by(JournalRow.id))
        return cls(list(rows))

    def state(self, step: str) -> StepState:
        attempts = self.steps.get(step)
        if not attempts:
            return StepState("new")
        n = max(attempts)
        phases = attempts[n]
        intent = phases.get("intent")
        data = intent.data if intent is not None else {}
        eff = intent.effect if intent is not None else None
        for phase in ("done", "failed", "abandoned"):
            if phase in phases:
                res = phases[phase].data.get("result") if phase == "done" else None
                return StepState(phase, n, data, eff, res)
        return StepState("open", n, data, eff)

    def open_steps(self) -> list[tuple[str, StepState]]:
        return [(s, st) for s in self.steps if (st := self.state(s)).state == "open"]

    def record(self, row: JournalRow) -> None:
        self.steps.setdefault(row.step, {}).setdefault(row.attempt, {})[row.phase] = row


def write(
    session: Session,
    owner: str,
    step: str,
    attempt: int,
    phase: str,
    *,
    effect: str | None = None,
    data: dict | None = None,
    lab_t: float = 0.0,
) -> JournalRow:
    """Insert one journal row (a Core insert: cheaper than the unit of work) and return it detached."""
    values = {
        "owner": owner,
        "step": step,
        "attempt": attempt,
        "phase": phase,
        "effect": effect,
        "data": data or {},
        "lab_t": lab_t,
        "at": utcnow(),
    }
    session.execute(insert(JournalRow.__table__), [values])
    return JournalRow(**values)


def count_done(session: Session, effect_name: str) -> int:
    """How many steps with this effect completed (tests: no dose or heat happened twice)."""
    intents = select(JournalRow.owner, JournalRow.step, JournalRow.attempt).where(
        JournalRow.effect == effect_name, JournalRow.phase == "intent"
    )
    keys = {tuple(r) for r in session.execute(intents)}
    done = select(JournalRow.owner, JournalRow.step, JournalRow.attempt).where(JournalRow.phase == "done")
    return sum(1 for r in session.execute(done) if tuple(r) in keys)
