"""Sources: the MP summary file, GNoME-format CSVs, CIF folders, the MP2020 corrections."""

from __future__ import annotations

import pytest
from labos.models.thermo import ThermoDB
from labos.models.thermo.corrections import mp2020_correction
from labos.models.thermo.sources import MPAPISource, SourceError, SummarySource

from labos.errors import DataMissingError, NotImplementedYet

MP = "thermo/mp_materials_summary.csv"


@pytest.fixture
def mp_db(shared_data):
    shared_data(MP)
    return ThermoDB.with_mp()  # cached per process


def test_mp2020_corrections_from_composition():
    assert mp2020_correction("CaO") == pytest.approx(-0.687)
    assert mp2020_correction("NiO") == pytest.approx(-0.687 - 2.541)  # oxide + GGA+U mixing
    assert mp2020_correction("Li2O2") == pytest.approx(2 * -0.465)  # peroxide
    assert mp2020_correction("KO2") == pytest.approx(2 * -0.161)  # superoxide
    assert mp2020_correction("Na2SO4") == pytest.approx(4 * -0.687)  # sulfate S is not an anion
    assert mp2020_correction("LiOH") == pytest.approx(-0.687)  # hydroxide H is not a hydride
    assert mp2020_correction("LiH") == pytest.approx(-0.179)
    assert mp2020_correction("BiOCl") == pytest.approx(-0.687 - 0.614)
    assert mp2020_correction("Fe") == 0.0


def test_mp_summary_loads_and_matches_experiment(mp_db):
    assert len(mp_db) > 31_000
    e = mp_db.entry("BaTiO3")
    assert e.source == "mp" and e.entry_id.startswith("mp-")
    # corrected MP2020 energies sit within ~0.15 eV/atom of experiment for simple oxides
    exp = ThermoDB.default()
    for f in ("CaO", "Li2O", "BaTiO3", "NiO", "Fe2O3"):
        assert mp_db.formation_enthalpy_per_atom(f) == pytest.approx(
            exp.formation_enthalpy_per_atom(f), abs=0.25
        )


def test_mp_hull_entries_are_on_the_hull(mp_db):
    for f in ("LiMn2O4", "BaTiO3", "Li2MnO3", "LiFePO4", "Ba2TiO4"):
        assert mp_db.e_above_hull(f) == pytest.approx(0.0, abs=1e-6)
    # a made-up composition between stable phases, given an energy 0.1 eV/atom above their mix
    hull = mp_db.phase_diagram(["Ba", "Ti", "O"]).get_hull_energy_per_atom(
        __import__("pymatgen.core", fromlist=["Composition"]).Composition("Ba3Ti2O7")
    )
    assert mp_db.e_above_hull("Ba3Ti2O7", formation_energy_per_atom=hull + 0.1) == pytest.approx(
        0.1, abs=1e-6
    )


def test_five_element_diagram_uses_the_index(mp_db):
    pd = mp_db.phase_diagram(["Li", "Mn", "Ti", "O", "F"])
    assert len(pd.all_entries) > 30
    assert all(
        {str(el) for el in e.composition.elements} <= {"Li", "Mn", "Ti", "O", "F"} for e in pd.all_entries
    )


def test_combined_db_anchors_dft_phases_to_experiment(shared_data):
    shared_data(MP)
    db = ThermoDB.combined()
    assert db.entry("BaTiO3").source == "exp"
    lmo = db.entry("LiMn2O4")
    assert lmo.source == "mp" and "anchor_correction_per_atom" in lmo.data
    # Ba4Ti13O30 only exists in MP: its anchored energy follows the TiO2/BaTiO3 experiment offsets
    b = db.entry("Ba4Ti13O30")
    assert b.data["anchor_correction_per_atom"] > 0.1
    # planner-relevant: LiMn2O4 from carbonate + MnO2 becomes favourable on heating
    assert db.reaction_energy(["Li2CO3", "MnO2"], ["LiMn2O4"], 1100).per_atom < 0


def test_gnome_format_with_formation_energy(tmp_path):
    path = tmp_path / "stable_materials_summary.csv"
    path.write_text(
        "Composition,MaterialId,Reduced Formula,NSites,Volume,Formation Energy Per Atom,"
        "Decomposition Energy Per Atom\n"
        "Ba2Ti2O6,gnome-1,BaTiO3,10,128.0,-3.49,-0.01\n"
        "Li2Mn4O8,gnome-2,LiMn2O4,14,140.0,-2.05,0.0\n"
    )
    db = ThermoDB.from_sources([path, "exp"])
    e = db.entry("BaTiO3")
    assert e.source == "gnome" and e.entry_id == "gnome-1"
    assert e.volume_per_atom == pytest.approx(12.8)
    assert db.volume_per_atom("BaTiO3") == (pytest.approx(12.8), False)
    assert db.entry("TiO2").source == "exp"


def test_summary_csv_with_missing_columns_is_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("Formula,Energy\nBaTiO3,-3\n")
    with pytest.raises(SourceError, match="Composition"):
        SummarySource(path).load()
    path.write_text("Composition,MaterialId\nBaTiO3,x\n")
    with pytest.raises(SourceError, match="Corrected Energy"):
        SummarySource(path).load()
    with pytest.raises(DataMissingError, match="labos data fetch"):
        SummarySource(tmp_path / "absent.csv").load()


def test_cif_folder_gives_volumes(shared_data, tmp_path):
    import shutil

    src = shared_data("xrd/cifs")
    for name in ("Al2O3_167.cif", "BaTiO3_160.cif"):
        shutil.copy(src / name, tmp_path / name)
    db = ThermoDB.from_sources(["exp", tmp_path])
    vol, estimated = db.volume_per_atom("Al2O3")
    assert not estimated and 8.0 < vol < 9.5  # corundum: 254.8 Å3 / 30 atoms
    assert db.gibbs("Al2O3", 1000).volume_estimated is False


def test_optional_mp_api_says_how_to_install():
    try:
        import mp_api  # noqa: F401
    except ImportError:
        with pytest.raises(NotImplementedYet, match=r"labos\[mp\]"):
            MPAPISource(["Li-O"]).load()
    else:  # pragma: no cover - the extra is installed
        pytest.skip("mp-api installed; the API itself is never called in tests")


def test_chgnet_energies_for_structures(shared_data):
    pytest.importorskip("chgnet", reason="optional extra labos[chgnet] not installed")
    from labos.models.thermo.chgnet import chgnet_entries
    from pymatgen.core import Structure

    shared_data(MP)
    s = Structure.from_file(shared_data("xrd/cifs") / "BaTiO3_160.cif")
    (e,) = chgnet_entries([s])
    assert e.source == "chgnet" and e.is_estimate
    assert e.formation_enthalpy_per_atom == pytest.approx(-3.45, abs=0.15)  # MP2020: -3.49, exp: -3.42
