"""A simulated operator for simulated labs: answers the lab OS's "confirm what happened" requests by
looking at the simulated deck, as a person at the bench would.

After a crash the lab OS never guesses whether an interrupted hardware step happened (a move, a
dose, a fresh vial, a furnace start): it asks the operator (:class:`labos.lab.interventions.ConfirmStep`)
and the task waits. In a simulated lab nobody is watching, so without this a campaign would stall
until its deadline. The answers come from the fakes' physical state (:class:`labos.lab.fakes.Physics`),
never from the lab's database, and only for the questions the deck can settle; anything else stays
open for a person.
"""

from __future__ import annotations

from typing import Any

USER = "sim-operator"


class SimulatedOperator:
    def __init__(self, sim, user: str = USER):
        self.sim = sim
        self.user = user
        self.answered: list[tuple[str, str]] = []  # (intervention id, option)

    def answer_open(self) -> int:
        """Answer every open confirm-step request the simulated deck can settle; returns how many."""
        api = self.sim.lab.api
        n = 0
        for iv in api.interventions("open"):
            if iv.kind != "confirm_step":
                continue
            option, values = self.judge(iv.data)
            if option is None or option not in iv.options:
                continue
            api.answer(iv.id, option, self.user, values=values or None)
            self.answered.append((iv.id, option))
            n += 1
        return n

    def judge(self, spec: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """(option, values) for a ConfirmStep, or (None, {}) when the deck cannot tell."""
        ph = self.sim.physics
        effect = spec.get("effect")
        d = spec.get("data") or {}
        if effect == "move":
            src, dst = d.get("source"), d.get("destination")
            if src == dst:
                return "at_destination", {}
            at_dst, at_src = ph.at(dst) if dst else None, ph.at(src) if src else None
            if at_dst is not None and at_src is None:
                return "at_destination", {}
            if at_src is not None and at_dst is None:
                return "at_source", {}
            if at_dst is not None and src == "vial_supply":
                return "at_destination", {}
            return None, {}
        if effect == "create_sample":
            return ("placed" if ph.at(d.get("position", "")) is not None else "not_placed"), {}
        if effect == "dose":
            oid = ph.at(d.get("position", ""))
            if oid is None:
                return None, {}
            doses = [mg for powder, mg in ph.obj(oid).get("doses", []) if powder == d.get("precursor")]
            if doses:
                return "dosed", {"dosed_mg": float(doses[-1])}
            return "not_dosed", {}
        if effect == "heat_start":
            furnace = ph.state.get("devices", {}).get(d.get("furnace", ""), {})
            if furnace.get("program") is not None and furnace.get("state") == "run":
                return "running_or_ran", {}
            return "not_started", {}
        return None, {}
