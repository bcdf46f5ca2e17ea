"""A-Lab-like benchmark target sets drawn from the thermodynamic data, with a matching inventory.

The A-Lab (Szymanski et al., Nature 2023) chose predicted-stable ternary and quaternary oxides
that are stable in air and whose elements its precursor shelf covers. ``benchmark_targets``
does the same over whatever the thermodynamic database holds: oxides of 2–3 cations, every
cation supplied by the inventory, and no decomposition in air at the check temperature (grand-
potential hull with O2/CO2/H2O at their air partial pressures; see
:mod:`labos.simulator.chemistry.equilibrium`). The draw is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterable

from labos.domain import Precursor
from labos.errors import LabosError

from .chemistry.equilibrium import ThermoView
from .chemistry.hidden import rng_for
from .chemistry.phases import OPEN_ELEMENT_GAS, make_phase

#: A solid-state lab's precursor shelf, after the A-Lab's: carbonates, hydroxides and nitrates of
#: the alkali and alkaline-earth metals, several oxides (and carbonates) of the transition metals in
#: different oxidation states, so that a planner has real choices. Entries the thermodynamic data do
#: not cover (e.g. NH4H2PO4 in the embedded table) are dropped by :func:`benchmark_inventory`.
BENCHMARK_PRECURSORS: tuple[str, ...] = (
    "Li2CO3", "LiOH", "LiNO3", "Li2O", "Na2CO3", "NaNO3", "K2CO3", "KNO3",
    "MgO", "MgCO3", "Mg(OH)2", "CaCO3", "CaO", "Ca(OH)2", "SrCO3", "Sr(OH)2",
    "BaCO3", "Ba(OH)2", "Ba(NO3)2", "BaO2",
    "Al2O3", "SiO2", "TiO2", "Ti2O3", "ZrO2", "HfO2", "V2O5", "VO2", "Nb2O5", "Ta2O5",
    "Cr2O3", "CrO3", "MoO3", "MoO2", "WO3", "MnO", "Mn2O3", "Mn3O4", "MnO2", "MnCO3",
    "Fe2O3", "Fe3O4", "FeO", "Co3O4", "CoO", "CoCO3", "NiO", "NiCO3", "CuO", "Cu2O",
    "ZnO", "ZnCO3", "Ga2O3", "GeO2", "In2O3", "SnO2", "SnO", "Sb2O3", "Bi2O3",
    "Y2O3", "La2O3", "CeO2", "Nd2O3", "Gd2O3", "B2O3", "H3BO3", "NH4H2PO4", "PbO",
)  # fmt: skip

#: Elements never chosen as target cations (toxic, radioactive or not dosable as powders).
EXCLUDED_ELEMENTS = frozenset({"U", "Th", "Pu", "Np", "Hg", "Cd", "Tl", "As", "Be", "Se", "Os", "Cs", "Rb"})

AIR_CHECK_K = 1073.15


class TargetSelectionError(LabosError, ValueError):
    """A benchmark target request that the data cannot satisfy."""


def benchmark_inventory(thermo=None, precursors: Iterable[str] = BENCHMARK_PRECURSORS) -> list[Precursor]:
    """The benchmark shelf as Precursor objects, limited to what the thermodynamic data covers."""
    db = thermo if thermo is not None else _default_db()
    return [Precursor(formula=f, inventory_id=f"bench-{f}") for f in precursors if db.has(f)]


def _default_db():
    from labos.models.thermo import ThermoDB

    return ThermoDB.default()


def _cations(formula: str) -> frozenset[str]:
    return make_phase(formula).elements - set(OPEN_ELEMENT_GAS)


def eligible_targets(thermo=None, inventory: Iterable[Precursor | str] | None = None) -> list[str]:
    """Every oxide of 2–3 cations that the inventory covers and that is stable in air at 800 °C."""
    db = thermo if thermo is not None else _default_db()
    inv = list(inventory) if inventory is not None else benchmark_inventory(db)
    covered = frozenset().union(*(_cations(p.formula if isinstance(p, Precursor) else p) for p in inv))
    view = ThermoView(db)
    out = []
    for entry in db.entries:
        phase = make_phase(entry.formula)
        cations = phase.elements - {"O"}
        if "O" not in phase.elements or not 2 <= len(cations) <= 3:
            continue
        if not cations <= covered or cations & EXCLUDED_ELEMENTS:
            continue
        if getattr(entry, "is_estimate", False):
            continue
        if view.best_reaction((phase.key,), AIR_CHECK_K, "air") is not None:
            continue  # decomposes (or oxidises) in air: not a target an air furnace can make
        out.append(phase.name)
    return sorted(set(out))


def benchmark_targets(
    n: int, seed: int = 0, thermo=None, inventory: Iterable[Precursor | str] | None = None
) -> list[str]:
    """``n`` distinct A-Lab-like targets, drawn deterministically for ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise TargetSelectionError(f"number of targets must be a positive integer, got {n!r}")
    pool = eligible_targets(thermo, inventory)
    if n > len(pool):
        raise TargetSelectionError(
            f"only {len(pool)} eligible targets in the thermodynamic data for this inventory, {n} asked; "
            "use a larger database (e.g. ThermoDB.with_mp()) or a larger inventory"
        )
    rng = rng_for("benchmark-targets", seed)
    picks = rng.choice(len(pool), size=n, replace=False)
    return [pool[int(i)] for i in sorted(picks)]
