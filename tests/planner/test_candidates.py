"""Balancing and candidate precursor sets."""

from __future__ import annotations

import pytest
from labos.planners.balance import balance, balance_any
from labos.planners.candidates import enumerate_sets, make_candidate
from labos.planners.chemistry import canonical, composition, molar_mass, same_phase
from labos.planners.errors import InfeasibleTargetError

from labos.domain import Precursor


def _conserved(rxn) -> bool:
    total: dict[str, float] = {}
    for f, c in rxn.signed().items():
        for el, n in composition(f).items():
            total[el] = total.get(el, 0.0) + c * n
    return all(abs(v) < 1e-9 for v in total.values())


@pytest.mark.parametrize(
    "reactants,product,gases",
    [
        (["Li2CO3", "MnO2"], "LiMn2O4", {"CO2", "O2"}),
        (["BaCO3", "Y2O3", "CuO"], "YBa2Cu3O6.5", {"CO2"}),
        (["NH4H2PO4", "Li2CO3", "Fe2O3"], "LiFePO4", {"NH3", "H2O", "CO2", "O2"}),
        (["LiNO3", "MnO2"], "LiMn2O4", {"N2", "O2"}),
    ],
)
def test_balance_conserves_elements(reactants, product, gases):
    rxn = balance(reactants, product)
    assert rxn is not None
    assert _conserved(rxn)
    assert set(rxn.gases) == gases
    assert all(c > 0 for c in rxn.reactants.values())


def test_interchangeable_sources_have_no_unique_balance():
    assert balance(["MnO", "MnO2"], "Mn2O3") is None  # with free O2 any ratio works
    assert balance(["Li2CO3", "TiO2"], "LiMn2O4") is None  # Mn missing
    some = balance_any(["Li2CO3", "LiOH", "MnO2"], "LiMn2O4")
    assert some is not None and _conserved(some) and min(some.reactants.values()) > 0


def test_inert_atmosphere_forbids_oxygen_uptake():
    assert balance(["Li2CO3", "MnO"], "LiMn2O4", atmosphere="Ar") is None  # needs O2 from air
    assert balance(["Li2CO3", "MnO2"], "LiMn2O4", atmosphere="Ar") is not None  # releases O2


def test_enumerate_sets_and_masses(inventory):
    sets = enumerate_sets("LiMn2O4", inventory, batch_mg=1000)
    keys = {c.key for c in sets}
    assert (canonical("Li2CO3"), canonical("MnO2")) in keys
    assert len(sets) == len(keys) == 4 * 5  # one Li source x one Mn source, every pair balances
    cand = next(c for c in sets if c.key == ("Li2CO3", "MnO2"))
    # 1000 mg LiMn2O4 = 5.53 mmol: 2.77 mmol Li2CO3 and 11.06 mmol MnO2, at the default 99 % purity
    n = 1000 / molar_mass("LiMn2O4")
    assert cand.masses_mg["Li2CO3"] == pytest.approx(0.5 * n * molar_mass("Li2CO3") / 0.99, rel=1e-3)
    assert cand.masses_mg["MnO2"] == pytest.approx(2 * n * molar_mass("MnO2") / 0.99, rel=1e-3)


def test_purity_and_stock_are_respected():
    inv = [
        Precursor(formula="Li2CO3", purity=0.5),
        Precursor(formula="MnO2", available_mg=10.0),
        Precursor(formula="Mn2O3"),
    ]
    sets = enumerate_sets("LiMn2O4", inv, batch_mg=1000)
    assert [c.key for c in sets] == [("Li2CO3", "Mn2O3")]  # not enough MnO2 on the shelf
    pure = make_candidate("LiMn2O4", ["Li2CO3", "Mn2O3"], 1000)  # no purity given: 100 %
    assert sets[0].masses_mg["Li2CO3"] == pytest.approx(2 * pure.masses_mg["Li2CO3"], rel=1e-3)


def test_missing_element_is_named():
    with pytest.raises(InfeasibleTargetError, match="Mn"):
        enumerate_sets("LiMn2O4", ["Li2CO3", "TiO2"])


def test_inventory_without_usable_set():
    with pytest.raises(InfeasibleTargetError, match="no set"):
        enumerate_sets("LiMn2O4", ["MnCl2", "LiCl"])  # chlorine cannot leave as an allowed gas


def test_compositions_not_strings():
    assert same_phase("La(OH)3", "LaH3O3")
    assert same_phase("Mg(NO3)2·6H2O", "MgN2O12H12")
    assert canonical("Ca3(PO4)2") == canonical("Ca3P2O8")
