"""Temperature-dependent Gibbs energies of formation (kelvin, eV).

Solids: Bartel et al. (2018) machine-learned descriptor G^δ(T) (Nat. Commun. 9, 4168,
doi:10.1038/s41467-018-06682-4), exactly as pymatgen's ``GibbsComputedStructureEntry`` evaluates it:
ΔG_f(T) = N·(ΔH_f,per atom + G^δ(T)) − Σ n_i G_i(T), with the elemental G_i(T) table shipped with
pymatgen (``g_els.json``). Gases: NIST-JANAF ΔG_f(T) (pymatgen's ``nist_gas_gf.json``, standard
pressure) plus k_B·T·ln(p/p°) at the partial pressure of the atmosphere (see :mod:`.atmosphere`).
The tables cover 300–2000 K; below 300 K the 300 K values are used (documented, not extrapolated).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np

from labos.errors import DataMissingError, LabosError

K_B_EV = 8.617333262e-5  # Boltzmann constant, eV/K (CODATA 2018)
T_MIN_TABLE_K = 300.0
T_MAX_TABLE_K = 2000.0

# Elemental gases: ΔG_f = 0 at standard pressure by definition.
ELEMENTAL_GASES = {"O2": "O", "N2": "N", "H2": "H", "F2": "F", "Cl2": "Cl"}


class TemperatureError(LabosError, ValueError):
    """A temperature outside the range the thermodynamic tables cover."""


def check_temperature(temperature_k: float) -> float:
    """Validate a temperature in kelvin; raise a clear error outside 0 < T ≤ 2000 K."""
    try:
        t = float(temperature_k)
    except (TypeError, ValueError):
        raise TemperatureError(f"temperature {temperature_k!r} K is not a number") from None
    if not math.isfinite(t) or t <= 0:
        raise TemperatureError(f"temperature {t:.2f} K ({t - 273.15:.2f} °C) is not above absolute zero")
    if t > T_MAX_TABLE_K:
        raise TemperatureError(
            f"temperature {t:.0f} K ({t - 273.15:.0f} °C) is above {T_MAX_TABLE_K:.0f} K, "
            "the upper limit of the Gibbs-energy tables"
        )
    return t


def _pymatgen_data_dir() -> Path:
    import pymatgen.core as core

    path = Path(core.__file__).parent / "data"
    if not (path / "g_els.json").exists():  # older layouts
        import pymatgen.entries as entries

        path = Path(entries.__file__).parent / "data"
    return path


@lru_cache(maxsize=1)
def _element_table() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    raw = json.loads((_pymatgen_data_dir() / "g_els.json").read_text())
    temps = np.array(sorted(float(t) for t in raw))
    elements = set().union(*(set(v) for v in raw.values()))
    table = {el: np.array([raw[str(int(t))].get(el, np.nan) for t in temps]) for el in elements}
    return temps, table


@lru_cache(maxsize=1)
def _gas_table() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    raw = json.loads((_pymatgen_data_dir() / "nist_gas_gf.json").read_text())
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for formula, values in raw.items():
        pts = sorted((float(t), v) for t, v in values.items() if float(t) >= T_MIN_TABLE_K)
        out[formula] = (np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
    return out


def _table_t(temperature_k: float) -> float:
    return min(max(check_temperature(temperature_k), T_MIN_TABLE_K), T_MAX_TABLE_K)


@lru_cache(maxsize=65536)
def element_g(element: str, temperature_k: float) -> float:
    """G_i(T) of an element in its standard state (eV/atom), the Bartel reference term."""
    temps, table = _element_table()
    if element not in table or np.isnan(table[element]).any():
        raise DataMissingError(
            f"no elemental Gibbs energy G(T) for {element} in pymatgen's g_els.json; "
            f"temperature-dependent energies of {element} compounds cannot be computed"
        )
    return float(np.interp(_table_t(temperature_k), temps, table[element]))


def gas_key(formula: str) -> str | None:
    """The key of a gas in the NIST table (pymatgen's integer formula), or None if not a gas."""
    from pymatgen.core import Composition

    comp = Composition(formula)
    integer, _ = comp.get_integer_formula_and_factor()
    if comp.reduced_formula in ELEMENTAL_GASES:
        return comp.reduced_formula
    return integer if integer in _gas_table() else None


@lru_cache(maxsize=1)
def _gas_reduced_formulas() -> frozenset[str]:
    from pymatgen.core import Composition

    names = set(ELEMENTAL_GASES)
    for key in _gas_table():
        names.add(Composition(key).reduced_formula)
        names.add(key)
    return frozenset(names)


def is_gas(formula: str) -> bool:
    """True for a tabulated gas. ``formula`` must be a reduced formula (labos.domain.parse_formula):
    this is a set lookup, called for every entry of every database."""
    return formula in _gas_reduced_formulas()


@lru_cache(maxsize=65536)
def gas_gibbs_formation_per_atom(formula: str, temperature_k: float) -> float:
    """ΔG_f°(T) of a gas at 1 bar (p° of the NIST-JANAF tables), eV per atom."""
    from pymatgen.core import Composition

    key = gas_key(formula)
    if key is None:
        raise DataMissingError(f"{formula} is not a gas in the NIST-JANAF table shipped with pymatgen")
    if key in ELEMENTAL_GASES:
        return 0.0
    temps, values = _gas_table()[key]
    per_key = float(np.interp(_table_t(temperature_k), temps, values))
    return per_key / Composition(key).num_atoms


def reduced_mass(composition) -> float:
    """Reduced mass (amu) of Bartel et al. (2018), Eq. 6 (same as pymatgen)."""
    from pymatgen.core import Composition, Element

    comp = Composition(composition).reduced_composition
    amounts = comp.get_el_amt_dict()
    if len(amounts) < 2:
        return float(Element(next(iter(amounts))).atomic_mass)
    denominator = (len(amounts) - 1) * comp.num_atoms
    total = 0.0
    for (el_i, a_i), (el_j, a_j) in combinations(amounts.items(), 2):
        m_i, m_j = float(Element(el_i).atomic_mass), float(Element(el_j).atomic_mass)
        total += (a_i + a_j) * m_i * m_j / (m_i + m_j)
    return total / denominator


def g_delta(volume_per_atom: float, reduced_mass_amu: float, temperature_k: float) -> float:
    """Bartel G^δ(T) in eV/atom (Eq. 4 of the paper): G(T) − ΔH_f(298 K)."""
    t = _table_t(temperature_k)
    v = float(volume_per_atom)
    return (-2.48e-4 * math.log(v) - 8.94e-5 * reduced_mass_amu / v) * t + 0.181 * math.log(t) - 0.882


def solid_gibbs_formation(
    composition, formation_enthalpy_per_atom: float, volume_per_atom: float, temperature_k: float
) -> float:
    """ΔG_f(T) of a solid in eV per formula unit of ``composition`` (Bartel descriptor)."""
    from pymatgen.core import Composition

    comp = Composition(composition)
    if comp.is_element:
        return 0.0
    n = comp.num_atoms
    gd = g_delta(volume_per_atom, reduced_mass(comp), temperature_k)
    sum_g = sum(amt * element_g(str(el), temperature_k) for el, amt in comp.get_el_amt_dict().items())
    return n * (formation_enthalpy_per_atom + gd) - sum_g
