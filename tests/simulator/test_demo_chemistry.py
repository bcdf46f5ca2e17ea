"""The built-in demo chemistry: structures written from published facts, usable offline."""

from __future__ import annotations

import numpy as np
import pytest
from labos.simulator.demo_chemistry import (
    DEMO_PHASES,
    DEMO_PRECURSORS,
    DEMO_TARGETS,
    demo_inventory,
    demo_phase_facts,
    demo_structures,
)

from labos.domain import parse_formula

# Demo phase -> CIF of the same phase in ../shared/data/xrd/cifs for a cross-check of peak positions
CIF_OF = {
    "CaCO3": "CaCO3_167.cif",
    "CaTiO3": "CaTiO3_62.cif",
    "MgAl2O4": "MgAl2O4_227.cif",
    "Li2CO3": "Li2CO3_15.cif",
    "Li2TiO3": "Li2TiO3_15.cif",
    "SrTiO3": "SrTiO3_221.cif",
    "TiO2": "TiO2_136.cif",
    "MgO": "MgO_225.cif",
    "ZnO": "ZnO_186.cif",
    "Fe2O3": "Fe2O3_167_2.cif",
    "ZnFe2O4": "ZnFe2O4_121.cif",  # magnetic supercell (I-42m, c doubled): same nuclear peaks
    "Li2O": "Li2O_225_2.cif",  # Li2O_225.cif is Wyckoff's 1963 cell (a = 4.619 Å)
}
#: Checked against a CIF outside the shared folder (its Al2O3_167.cif is the 1925 cell of Pauling & Hendricks,
#: whose lines lie ~0.12° off at 58° 2θ).
CIF_ELSEWHERE = {"Al2O3"}


@pytest.fixture(scope="module")
def structures():
    return demo_structures()


def test_every_phase_has_a_structure_with_a_source(structures):
    facts = demo_phase_facts()
    assert set(structures) == set(DEMO_PHASES) == set(facts)
    for name, s in structures.items():
        assert s.composition.reduced_formula == parse_formula(name), name
        assert facts[name]["source"].strip(), name
        assert facts[name]["checked"] in {"cif", "density", "bvs"}, name
        assert 1.5 < s.density < 7.0, (name, s.density)
        if facts[name]["checked"] == "cif":
            assert name in CIF_OF or name in CIF_ELSEWHERE, f"{name} is marked checked against a CIF"


def test_x_ray_density_matches_the_reference_density(structures):
    """A wrong lattice parameter, Z or site multiplicity shows up as a wrong density."""
    facts = demo_phase_facts()
    with_ref = [n for n in structures if "density" in facts[n]]
    assert len(with_ref) >= 10
    for name in with_ref:
        ref = facts[name]["density"]
        assert ref["source"].strip(), name
        assert structures[name].density == pytest.approx(ref["g_cm3"], rel=0.02), name
    for name in structures:
        if facts[name]["checked"] == "density":
            assert "density" in facts[name], name


def test_structures_are_chemically_sensible(structures):
    """No two atoms closer than a bond allows; cation–oxygen distances as in oxides (Li–O ~1.9 Å
    to 12-coordinated Sr–O 2.76 Å)."""
    for name, s in structures.items():
        dm = s.distance_matrix + 10.0 * np.eye(len(s))
        assert dm.min() > 0.9, name  # O–H in brucite is ~0.96 Å
        for site in s:
            el = site.species.elements[0].symbol
            if el in ("O", "H", "C"):
                continue
            nn = s.get_neighbors(site, 3.0)
            d_o = [n.nn_distance for n in nn if n.species.elements[0].symbol == "O"]
            assert d_o and 1.75 < min(d_o) < 2.9, (name, el, min(d_o) if d_o else None)


def test_targets_and_inventory_are_demo_phases():
    assert set(DEMO_TARGETS) <= set(DEMO_PHASES)
    inv = demo_inventory()
    assert [p.formula for p in inv] == list(DEMO_PRECURSORS)
    assert {p.formula for p in inv} <= set(DEMO_PHASES)
    assert len({p.inventory_id for p in inv}) == len(inv)


def test_every_demo_phase_is_in_the_embedded_thermo_data():
    from labos.models.thermo import ThermoDB

    db = ThermoDB.default()
    missing = [p for p in DEMO_PHASES if not db.has(p)]
    assert not missing


@pytest.mark.parametrize("name", sorted(CIF_OF))
def test_peak_positions_match_a_published_cif(structures, shared_data, name):
    """The strongest lines of the demo structure are where a CIF of the same phase puts them."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Structure

    cif = shared_data(f"xrd/cifs/{CIF_OF[name]}")
    calc = XRDCalculator()
    ours = calc.get_pattern(structures[name], two_theta_range=(10, 80))
    ref = calc.get_pattern(Structure.from_file(cif), two_theta_range=(10, 80))
    strongest = [x for x, y in sorted(zip(ref.x, ref.y, strict=True), key=lambda t: -t[1])[:5]]
    for x in strongest:
        assert min(abs(ours.x - x)) < 0.1, (name, x)
