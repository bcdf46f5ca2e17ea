"""A small built-in chemistry that works offline on a fresh machine.

Six ternary-oxide targets made in air from common precursors. Every phase the demo world can
produce (precursors, their decomposition products, intermediates and targets) has a crystal
structure written from published crystallographic facts in ``simulator/data/demo_phases.toml``
(space group, lattice, Wyckoff positions, literature source), so the demo lab can synthesise XRD
patterns without any downloaded CIF. ``DEMO_PHASES`` is the closed list of phases the demo world is
allowed to form (see ``labos.simulator.world.World.demo``).
"""

from __future__ import annotations

import tomllib
import warnings
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from labos.domain import Precursor
from labos.errors import DataMissingError

if TYPE_CHECKING:  # pymatgen is imported lazily: it is slow to import
    from pymatgen.core import Structure

#: Targets of the demo chemistry (ternary oxides, all made in air).
DEMO_TARGETS: tuple[str, ...] = ("SrTiO3", "CaTiO3", "MgAl2O4", "ZnFe2O4", "Li2TiO3", "MgTiO3")

#: Precursors on the demo shelf: carbonates, a hydroxide and binary oxides.
DEMO_PRECURSORS: tuple[str, ...] = (
    "SrCO3",
    "CaCO3",
    "MgO",
    "MgCO3",
    "Mg(OH)2",
    "Al2O3",
    "ZnO",
    "Fe2O3",
    "Li2CO3",
    "TiO2",
)

#: Elements the demo chemistry spans (O, C, H come with the precursors and the air).
DEMO_ELEMENTS: tuple[str, ...] = ("Sr", "Ca", "Mg", "Al", "Zn", "Fe", "Li", "Ti", "O", "C", "H")

_DATA_FILE = "demo_phases.toml"


@lru_cache(maxsize=1)
def demo_phase_facts() -> dict[str, dict[str, Any]]:
    """The crystallographic facts (with sources) of every demo phase, keyed by phase name."""
    try:
        text = resources.files("labos.simulator.data").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    except FileNotFoundError as exc:  # pragma: no cover - packaging error
        raise DataMissingError(
            f"demo structure data {_DATA_FILE} is missing from labos.simulator.data"
        ) from exc
    return tomllib.loads(text)


#: Every phase the demo world may form: the keys of the structure data.
DEMO_PHASES: tuple[str, ...] = tuple(demo_phase_facts())


def demo_inventory() -> list[Precursor]:
    """The demo precursor shelf (100 g of each, 99 % purity)."""
    return [Precursor(formula=f, inventory_id=f"demo-{f}", purity=0.99) for f in DEMO_PRECURSORS]


def structure_from_facts(name: str, facts: dict[str, Any]) -> Structure:
    """Build a pymatgen Structure from space group, lattice and asymmetric unit."""
    from pymatgen.core import Lattice, Structure

    lat = facts["lattice"]
    lattice = Lattice.from_parameters(lat["a"], lat["b"], lat["c"], lat["alpha"], lat["beta"], lat["gamma"])
    species = [s["species"] for s in facts["sites"]]
    coords = [s["xyz"] for s in facts["sites"]]
    with warnings.catch_warnings():  # pymatgen warns that non-standard settings have no full symbol
        warnings.simplefilter("ignore", UserWarning)
        structure = Structure.from_spacegroup(facts["spacegroup"], lattice, species, coords, tol=1e-3)
    structure.properties = {"name": name, "source": facts["source"], "spacegroup": facts["spacegroup"]}
    return structure


@lru_cache(maxsize=1)
def _demo_structures() -> dict[str, Structure]:
    return {name: structure_from_facts(name, facts) for name, facts in demo_phase_facts().items()}


def demo_structures() -> dict[str, Structure]:
    """Crystal structures of every demo phase, keyed by phase name (built once per process; copy a
    Structure before modifying it)."""
    return dict(_demo_structures())
