"""MP2020 energy corrections from the composition alone (fast; no structure, no oxidation-state search).

Why: the ``Corrected Energy`` column of GNoME's ``mp_materials_summary.csv`` turns out to hold
energies *without* the MP2020 anion and GGA/GGA+U mixing corrections — CaO, MgO-type oxides sit
0.69 eV per O above experiment (the oxide correction), NiO 3.2 eV per formula unit (U + oxide).
We add them back with the values of pymatgen's ``MP2020Compatibility.yaml`` (Wang et al.,
Sci. Rep. 11, 15496, 2021), deciding which elements are anions by charge capacity: an anion
candidate less electronegative than O (S, N, Cl, ..., H, Si, Sb) counts as an anion only when the
cations can balance it together with O; O is peroxide/superoxide when the cations' maximum
oxidation states cannot balance O²⁻. The GGA+U mixing correction applies per V, Cr, Mn, Fe, Co,
Ni, Mo, W atom in oxides and fluorides (the compounds MP computes with +U).
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _table() -> dict:
    from ruamel.yaml import YAML

    from .sources import compat_dir

    text = (compat_dir() / "MP2020Compatibility.yaml").read_text()
    # parse only the "Corrections" block: the whole file takes seconds with ruamel
    start = text.index("Corrections:")
    end = text.index("\nUncertainties:", start) if "\nUncertainties:" in text[start:] else len(text)
    return YAML(typ="safe").load(text[start:end])["Corrections"]


ANION_CHARGE = {"F": 1, "Cl": 1, "Br": 1, "I": 1, "H": 1, "S": 2, "Se": 2, "Te": 2, "N": 3, "Sb": 3, "Si": 4}


@lru_cache(maxsize=256)
def _el(symbol: str):
    from pymatgen.core import Element

    return Element(symbol)


def _max_ox(symbol: str) -> int:
    el = _el(symbol)
    states = el.common_oxidation_states or el.oxidation_states
    pos = [s for s in states if s > 0]
    return max(pos) if pos else 0


def _x(symbol: str) -> float:
    import math

    x = _el(symbol).X
    return x if x is not None and not math.isnan(x) else 0.0


@lru_cache(maxsize=131072)
def mp2020_correction(formula: str) -> float:
    """MP2020 correction (eV per formula unit of ``formula``'s reduced composition)."""
    from pymatgen.core import Composition

    comp = Composition(formula).reduced_composition
    amounts = {str(e): float(a) for e, a in comp.items()}
    if len(amounts) < 2:
        return 0.0
    table = _table()
    comp_corr = table["CompositionCorrections"]
    x_o = _x("O")
    anion_candidates = {el for el in amounts if el in ANION_CHARGE or el == "O"}
    most_en = max(amounts, key=_x)
    # anions that are always anions when present: O, and candidates more electronegative than O (F)
    anions = {el for el in anion_candidates if el == "O" or _x(el) >= x_o}
    if "O" not in amounts and anion_candidates:
        # no oxygen: the most electronegative candidate is the anion; others too if cations allow
        anions = {most_en} if most_en in anion_candidates else set()
    cations = [el for el in amounts if el not in anion_candidates]
    capacity = sum(amounts[el] * _max_ox(el) for el in cations)
    demand = sum(amounts[a] * (2 if a == "O" else ANION_CHARGE[a]) for a in anions)
    for cand in sorted(anion_candidates - anions, key=_x, reverse=True):
        if capacity >= demand + amounts[cand] * ANION_CHARGE[cand] - 1e-9:
            anions.add(cand)
            demand += amounts[cand] * ANION_CHARGE[cand]
    # candidates that are not anions act as cations
    capacity += sum(amounts[el] * _max_ox(el) for el in anion_candidates - anions)
    corr = 0.0
    if "O" in amounts:
        other = demand - 2 * amounts["O"]
        per_o = (capacity - other) / amounts["O"]
        if per_o >= 2 - 1e-6 or not cations:
            kind = "oxide"
        elif per_o >= 1 - 1e-6:
            kind = "peroxide"
        elif per_o >= 0.5 - 1e-6:
            kind = "superoxide"
        else:
            kind = "ozonide"
        corr += amounts["O"] * comp_corr[kind]
    for a in anions - {"O"}:
        corr += amounts[a] * comp_corr.get(a, 0.0)
    for anion in ("O", "F"):
        if anion in amounts:
            u = table["GGAUMixingCorrections"][anion]
            corr += sum(amounts[el] * u[el] for el in amounts if el in u)
            break
    return corr
