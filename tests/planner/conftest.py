"""Fixtures for the planner tests: a tiny illustrative thermodynamic table and a synthetic replay.

The energies below are *illustrative numbers for tests*, not data: they only need to be internally
consistent (carbonates decompose when heated, the target is the most stable Li–Mn–O phase) so that
the planner's reasoning can be checked without loading the real thermodynamic database.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from labos.planners.chemistry import canonical

# formula -> (ΔG_f per atom at 300 K in eV, slope in eV/atom/K) — illustrative, see module docstring
_SOLIDS = {
    "Li2CO3": (-2.10, 0.00040),
    "LiOH": (-1.60, 0.00035),
    "Li2O": (-2.05, 0.00020),
    "LiNO3": (-0.95, 0.00045),
    "MnO2": (-1.80, 0.00025),
    "Mn2O3": (-1.95, 0.00022),
    "Mn3O4": (-2.00, 0.00020),
    "MnO": (-1.95, 0.00018),
    "MnCO3": (-1.85, 0.00040),
    "Li2MnO3": (-2.10, 0.00022),
    "LiMn2O4": (-2.02, 0.00021),
    "LiMnO2": (-2.00, 0.00021),
}
_GASES = {"O2": (0.0, -0.0006), "CO2": (-1.38, -0.0003), "H2O": (-0.80, -0.0003), "N2": (0.0, -0.0006)}


class FakeThermo:
    """The part of ThermoDB the planner uses, over the illustrative table above."""

    def __init__(self):
        self.table = {canonical(k): v for k, v in {**_SOLIDS, **_GASES}.items()}
        self.calls = 0

    def has(self, formula: str) -> bool:
        return canonical(formula) in self.table

    def gibbs_formation_per_atom(self, formula: str, temperature_k: float, atmosphere: str = "air") -> float:
        self.calls += 1
        a, b = self.table[canonical(formula)]
        return a + b * (temperature_k - 300.0) + (0.0 if b > 0 else 1e-5 * math.log(0.21) * temperature_k)

    def interface_reactions(self, a: str, b: str, temperature_k: float):
        """Li2O + MnO2 has a strongly exergonic side reaction to Li2MnO3 (illustrative)."""
        if {canonical(a), canonical(b)} == {"Li2O", "MnO2"}:
            return [SimpleNamespace(x=0.5, products={"Li2MnO3": 0.8, "O2": 0.2}, energy_per_atom=-0.9)]
        return []

    def stable_phases(self, elements, temperature_k: float):
        els = set(elements)
        return [f for f in self.table if _elements(f) <= els]


def _elements(formula: str) -> set[str]:
    from labos.planners.chemistry import elements

    return set(elements(formula))


LI_SOURCES = ("Li2CO3", "LiOH", "Li2O", "LiNO3")
MN_SOURCES = ("MnO2", "Mn2O3", "Mn3O4", "MnCO3", "MnO")
TEMPERATURES = (600.0, 700.0, 800.0, 900.0)


def synthetic_products(li: str, mn: str, temperature_c: float) -> dict[str, float]:
    """A hidden pairwise chemistry for LiMn2O4 (made up for tests, deterministic).

    Li2O and MnO lead into a Li2MnO3 + Mn3O4 dead end; MnO2 and Mn2O3 with a carbonate or
    hydroxide make the target above 700 °C; everything else gives a partial yield at 900 °C.
    """
    if temperature_c < 650:
        return {li: 0.3, mn: 0.7}
    if li == "Li2O" or mn == "MnO":
        return {"Li2MnO3": 0.45, "Mn3O4": 0.55}
    good = mn in ("MnO2", "Mn2O3") and li in ("Li2CO3", "LiOH")
    if good and temperature_c >= 800:
        return {"LiMn2O4": 0.85, "Mn2O3": 0.15}
    if good:
        return {"LiMn2O4": 0.35, "Li2MnO3": 0.25, "Mn2O3": 0.4}
    if temperature_c >= 900:
        return {"LiMn2O4": 0.3, "Li2MnO3": 0.3, "Mn3O4": 0.4}
    return {"Li2MnO3": 0.4, "Mn3O4": 0.6}


def synthetic_dataset() -> dict:
    return {
        "target": "LiMn2O4",
        "atmosphere": "air",
        "hold_time_h": 4,
        "success": {"target_fraction_at_least": 0.5},
        "experiments": [
            {"precursors": [li, mn], "temperature_c": t, "products": synthetic_products(li, mn, t)}
            for li in LI_SOURCES
            for mn in MN_SOURCES
            for t in TEMPERATURES
        ],
    }


@pytest.fixture
def fake_thermo():
    return FakeThermo()


@pytest.fixture
def inventory():
    return [*LI_SOURCES, *MN_SOURCES]


@pytest.fixture
def replay_dict():
    return synthetic_dataset()
