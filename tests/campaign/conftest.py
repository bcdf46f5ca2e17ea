"""Shared, expensive pieces for the campaign tests: thermodynamic data and the demo world (built once)."""

from __future__ import annotations

import pytest

from labos.domain import Outcome  # noqa: F401  (re-exported for tests)


@pytest.fixture(scope="session")
def thermo():
    from labos.models.thermo import ThermoDB

    return ThermoDB.default()


@pytest.fixture(scope="session")
def demo_world(thermo):
    from labos.simulator.world import World

    return World.demo(0, thermo=thermo)


class ScriptedWorld:
    """A chemistry whose outcome the test decides: ``rule(precursors, max_temperature_c)`` returns the
    products as {phase: weight fraction}; what is left is the precursors, by mass."""

    structures: dict = {}

    def __init__(self, rule):
        self.rule = rule
        self.calls: list[tuple[dict, float]] = []

    def synthesize(self, precursors_mg, heat, atmosphere=None, *, replicate=0, dosing_error=True):
        from labos.simulator.world import TrueOutcome

        t = max(s.target_c for s in heat.segments)
        self.calls.append((dict(precursors_mg), t))
        products = {k: float(v) for k, v in self.rule(sorted(precursors_mg), t).items() if v > 0}
        rest = 1.0 - sum(products.values())
        total = sum(precursors_mg.values())
        phases = dict(products)
        for p, mg in precursors_mg.items():
            if rest > 1e-9:
                phases[p] = phases.get(p, 0.0) + rest * mg / total
        return TrueOutcome(phases=phases, mass_mg=total)


@pytest.fixture
def scripted_world():
    return ScriptedWorld
