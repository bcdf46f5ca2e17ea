"""Hand-checked thermodynamics on the embedded database (no shared data needed)."""

from __future__ import annotations

import math

import pytest
from labos.models.thermo import ReactionError, TemperatureError, ThermoDB, balance, parse_reaction
from labos.models.thermo import gibbs as g
from labos.models.thermo.atmosphere import AtmosphereError

from labos.errors import DataMissingError, FormulaError


@pytest.fixture(scope="module")
def db() -> ThermoDB:
    return ThermoDB.default()


def test_default_is_embedded_and_cached(db):
    assert ThermoDB.default() is db
    assert len(db) > 2000
    assert db.has("BaTiO3") and db.has("CO2") and db.has("Ba")
    assert not db.has("Ba7Ti3O11")
    e = db.entry("BaCO3")
    assert e.source == "exp" and not e.is_estimate


def test_formation_enthalpy_matches_handbook(db):
    # BaCO3: ΔHf(298) = -1216 kJ/mol (NIST-JANAF) = -12.60 eV per formula unit, 5 atoms
    assert db.formation_enthalpy_per_atom("BaCO3") * 5 == pytest.approx(-1216.3 / 96.485, abs=0.05)
    # CO2 (gas) from data/gases.csv
    assert db.formation_enthalpy_per_atom("CO2") * 3 == pytest.approx(-393.522 / 96.485332, rel=1e-9)
    assert db.formation_enthalpy_per_atom("O2") == 0.0


def test_barium_titanate_from_carbonate_becomes_favourable_with_temperature(db):
    energies = [db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], t).per_atom for t in (300, 700, 1100, 1400)]
    assert energies[0] > 0  # not at room temperature
    assert all(b < a for a, b in zip(energies, energies[1:], strict=False))  # -TΔS of released CO2
    assert energies[-1] < -0.1
    r = db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], 1373.15)
    assert r.equation == "BaCO3 + TiO2 -> BaTiO3 + CO2"
    assert r.coefficients == {"BaCO3": -1.0, "TiO2": -1.0, "BaTiO3": 1.0, "CO2": 1.0}
    assert r.per_formula_unit == pytest.approx(r.per_atom * 8)  # 5 + 3 atoms on the product side
    assert r.volume_estimated and not r.estimated


def test_lithium_oxide_takes_up_co2_at_room_temperature(db):
    r = db.reaction_energy(["Li2O", "CO2"], ["Li2CO3"], 298.15)
    # ΔH = -1216.0 - (-597.9 - 393.5) ≈ -224.6 kJ/mol = -2.33 eV; ΔG a bit less negative
    assert -2.4 < r.per_formula_unit < -1.2
    assert r.per_atom < 0


def test_higher_co2_pressure_shifts_carbonate_decomposition(db):
    low = db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], 1100, atmosphere="air").per_atom
    high = db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], 1100, atmosphere="CO2").per_atom
    # one CO2 released per 8 atoms: kT ln(101325 / 42.6) / 8
    assert high - low == pytest.approx(g.K_B_EV * 1100 * math.log(101325 / 42.6) / 8, rel=1e-6)


def test_wustite_is_above_the_hull_at_low_temperature(db):
    # FeO is metastable below 843 K: 4 FeO -> Fe3O4 + Fe
    assert db.e_above_hull("FeO") > 0.01
    assert set(db.decomposition("FeO")) == {"Fe", "Fe3O4"}
    assert db.e_above_hull("Fe2O3") == pytest.approx(0.0, abs=1e-9)
    assert db.decomposition("Fe2O3") == {"Fe2O3": 1.0}


def test_hypothetical_energy_above_hull(db):
    # BaTiO3 made 0.2 eV/atom less stable than measured sits above BaO + TiO2 (and Ba2TiO4 ...)
    real = db.formation_enthalpy_per_atom("BaTiO3")
    assert db.e_above_hull("BaTiO3", formation_energy_per_atom=real + 0.3) > 0.1
    assert db.e_above_hull("BaTiO3", formation_energy_per_atom=real) < 0  # below the others' hull


def test_gibbs_of_gases_at_partial_pressure(db):
    t = 1000.0
    o2 = db.gibbs_formation("O2", t)
    assert o2 == pytest.approx(g.K_B_EV * t * math.log(21_200 / 1e5))
    assert db.gibbs_formation_per_atom("O2", t) == pytest.approx(o2 / 2)
    assert db.gibbs_formation("O2", t, atmosphere="standard") == 0.0
    assert db.gibbs_formation("CO2", t, atmosphere={"CO2": 1e5}) == pytest.approx(
        3 * g.gas_gibbs_formation_per_atom("CO2", t)
    )
    assert db.gibbs("CO2", t).phase == "gas"


def test_solid_gibbs_follows_bartel_and_pymatgen(db):
    from pymatgen.core import Lattice, Structure
    from pymatgen.entries.computed_entries import GibbsComputedStructureEntry

    structure = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ref = GibbsComputedStructureEntry(structure, formation_enthalpy_per_atom=-3.0, temp=900)
    ours = g.solid_gibbs_formation("MgO", -3.0, structure.volume / 2, 900)
    assert ours == pytest.approx(ref.energy, abs=1e-9)


def test_balance_with_open_gases():
    r = balance(["Li2CO3", "MnO2"], ["LiMn2O4"])
    assert r.coefficients == pytest.approx(
        {"Li2CO3": -0.5, "MnO2": -2.0, "LiMn2O4": 1.0, "O2": 0.25, "CO2": 0.5}
    )
    r = balance(["NaNO3", "Fe2O3"], ["NaFeO2"])
    assert r.products["NO2"] == pytest.approx(1.0)
    r = balance(["Mn", "Li2CO3"], ["LiMnO2"])
    assert r.reactants["O2"] > 0  # oxygen taken up from the air
    with pytest.raises(ReactionError, match="cannot be balanced"):
        balance(["BaO"], ["BaTiO3"])
    with pytest.raises(ReactionError, match="no part"):
        balance(["BaO", "TiO2", "ZrO2"], ["BaTiO3"])
    with pytest.raises(FormulaError):
        balance(["BaXx"], ["BaO"])


def test_parse_reaction_and_errors(db):
    assert parse_reaction("2 Li2CO3 + MnO2 -> LiMn2O4") == (["Li2CO3", "MnO2"], ["LiMn2O4"])
    with pytest.raises(ReactionError):
        parse_reaction("BaCO3 TiO2")
    with pytest.raises(TemperatureError, match="absolute zero"):
        db.reaction_energy(["BaCO3", "TiO2"], ["BaTiO3"], -5)
    with pytest.raises(TemperatureError, match="upper limit"):
        db.gibbs_formation("BaO", 2500)
    with pytest.raises(AtmosphereError, match="unknown atmosphere"):
        db.gibbs_formation("CO2", 900, atmosphere="martian")
    with pytest.raises(DataMissingError, match="Ba7Ti3O11"):
        db.formation_enthalpy_per_atom("Ba7Ti3O11")
    with pytest.raises(FormulaError):
        db.phase_diagram(["Ba", "Qq"])


def test_interface_reactions(db):
    rx = db.interface_reactions("BaCO3", "TiO2", 1200)
    assert rx and all(a.energy_per_atom <= b.energy_per_atom for a, b in zip(rx, rx[1:], strict=False))
    best = rx[0]
    assert best.energy_per_atom < 0
    assert set(best.products) == {"BaTiO3", "CO2"}
    assert best.x == pytest.approx(5 / 8)  # 1 BaCO3 (5 atoms) : 1 TiO2 (3 atoms)
    assert sum(best.products.values()) == pytest.approx(1.0)
    # inert pair: two oxides of the same cation do not react... MgO + CaO has no compound
    assert db.interface_reactions("MgO", "CaO", 1000) == []
    # at room temperature nothing happens between BaCO3 and TiO2
    assert db.interface_reactions("BaCO3", "TiO2", 300) == []


def test_stable_phases_at_temperature(db):
    low = db.stable_phases(["Ba", "C", "O"], 400)
    high = db.stable_phases(["Ba", "C", "O"], 1500)
    assert "BaCO3" in low and "BaCO3" not in high and "BaO" in high


def test_phase_diagram_cached_and_indexed(db):
    pd = db.phase_diagram(["Li", "Mn", "O"])
    assert db.phase_diagram(["O", "Mn", "Li"]) is pd
    names = {e.name for e in pd.stable_entries}
    assert {"Li2O", "MnO", "Mn3O4"} <= names
    assert all({str(el) for el in e.composition.elements} <= {"Li", "Mn", "O"} for e in pd.all_entries)


def test_melting_points_with_sources():
    from labos.models.thermo.properties import melting_info, melting_point_k

    assert melting_point_k("Bi2O3") == pytest.approx(825 + 273.15)
    assert melting_point_k("Li2CO3") == pytest.approx(723 + 273.15)
    assert melting_info("CaCO3").kind == "decomposes"
    assert "CRC" in melting_info("TiO2").source
    assert melting_point_k("BaTiO3") is None
