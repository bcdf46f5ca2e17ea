"""Melting points the world uses: tabulated ones from the thermodynamics package, else an estimate.

For the Tammann-like onset of a reaction the world needs a "softening" temperature of each phase:
- a tabulated melting point (``labos.models.thermo.properties``, with its literature source);
- a phase that decomposes before it melts (carbonates, hydroxides, nitrates) reacts around its
  decomposition temperature, so its effective melting point is T_dec / 0.8 (the reaction then starts
  near 0.45–0.6 of that, i.e. a little below T_dec, as observed for BaCO3 + TiO2 at ~700 °C);
- a common ternary oxide takes its melting point from ``simulator/data/ternary_melting.toml``
  (with sources);
- any other untabulated phase (usually a ternary product) gets 0.9 × the geometric mean, weighted by cation
  atoms, of the melting points of the binary oxides of its cations *in their oxidation states in
  the compound* (pymatgen's oxidation-state guess; V5+ → V2O5, not V2O3), or 1800 K when none is
  known. A documented estimate: compounds melt below the mean of their components (e.g. it gives
  1650 K for CaMoO4 against 1718 K measured, 1870 K for BaTiO3 against 1898 K, 2320 K for
  MgAl2O4 against 2408 K, 1565 K for Ca2V2O7 against 1288 K; CRC Handbook, 97th ed.).
"""

from __future__ import annotations

import math
import tomllib
from functools import lru_cache
from importlib import resources

from .phases import OPEN_ELEMENT_GAS, make_phase

DEFAULT_MELTING_K = 1800.0
DECOMPOSITION_FACTOR = 0.8


@lru_cache(maxsize=1)
def _oxide_melting_by_cation() -> dict[str, dict[float, float]]:
    """Tabulated melting points (K) of binary oxides per cation element and its oxidation state."""
    from labos.models.thermo.properties import known_formulas, melting_info

    out: dict[str, dict[float, float]] = {}
    for f in known_formulas():
        info = melting_info(f)
        p = make_phase(f)
        if info is None or info.kind != "melts" or len(p.elements) != 2 or "O" not in p.elements:
            continue
        (cation,) = p.elements - {"O"}
        state = round(2.0 * p.amount("O") / p.amount(cation), 2)
        per = out.setdefault(cation, {})
        per[state] = max(per.get(state, 0.0), info.temperature_k)
    return out


def _oxidation_states(key: str) -> dict[str, float]:
    """Mean oxidation state of each cation in an oxide (pymatgen's most likely guess; {} if none)."""
    from pymatgen.core import Composition

    try:
        guesses = Composition(key).oxi_state_guesses(max_sites=-50)
    except Exception:  # noqa: BLE001 - pymatgen raises various errors for odd compositions
        return {}
    return {str(e): float(v) for e, v in guesses[0].items()} if guesses else {}


@lru_cache(maxsize=8192)
def tabulated_melting_k(key: str) -> float | None:
    """Tabulated melting point (K) of a phase, None when it decomposes first or is not tabulated."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is None or info.kind != "melts":
        return None
    return info.temperature_k


@lru_cache(maxsize=1)
def ternary_melting_k() -> dict[str, float]:
    """Melting points (K) of common ternary oxides (``simulator/data/ternary_melting.toml``)."""
    text = (
        resources.files("labos.simulator.data").joinpath("ternary_melting.toml").read_text(encoding="utf-8")
    )
    return {
        make_phase(name).key: float(row["melting_c"]) + 273.15 for name, row in tomllib.loads(text).items()
    }


@lru_cache(maxsize=8192)
def effective_melting_k(key: str) -> float:
    """Melting point (K) for Tammann's rule, tabulated or estimated (see module docstring)."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is not None:
        if info.kind == "melts":
            return info.temperature_k
        return info.temperature_k / DECOMPOSITION_FACTOR
    known_ternary = ternary_melting_k().get(key)
    if known_ternary is not None:
        return known_ternary
    p = make_phase(key)
    table = _oxide_melting_by_cation()
    states = _oxidation_states(key) if "O" in p.elements else {}
    known: list[tuple[float, float]] = []
    for e, a in p.amounts:
        if e in OPEN_ELEMENT_GAS or e not in table:
            continue
        per = table[e]
        want = states.get(e)
        state = min(per, key=lambda s: abs(s - want)) if want is not None else max(per, key=per.get)
        known.append((per[state], a))
    if not known:
        return DEFAULT_MELTING_K
    total = sum(a for _, a in known)
    return 0.9 * math.exp(sum(a * math.log(t) for t, a in known) / total)


@lru_cache(maxsize=8192)
def decomposition_k(key: str) -> float | None:
    """Tabulated decomposition temperature (K) of a phase that decomposes before melting."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is None or info.kind != "decomposes":
        return None
    return info.temperature_k
