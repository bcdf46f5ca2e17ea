"""Melting points the world uses: tabulated ones from the thermodynamics package, else an estimate.

For the Tammann-like onset of a reaction the world needs a "softening" temperature of each phase:
- a tabulated melting point (``labos.models.thermo.properties``, with its literature source);
- a phase that decomposes before it melts (carbonates, hydroxides, nitrates) reacts around its
  decomposition temperature, so its effective melting point is T_dec / 0.8 (the reaction then starts
  near 0.45–0.6 of that, i.e. a little below T_dec, as observed for BaCO3 + TiO2 at ~700 °C);
- an untabulated phase (usually a ternary product) gets 0.95 × the atom-weighted mean melting
  point of the binary oxides of its cations (a documented estimate: compounds melt below their
  most refractory component), or 1800 K when none is known.
"""

from __future__ import annotations

from functools import lru_cache

from .phases import OPEN_ELEMENT_GAS, make_phase

DEFAULT_MELTING_K = 1800.0
DECOMPOSITION_FACTOR = 0.8


@lru_cache(maxsize=1)
def _oxide_melting_by_element() -> dict[str, float]:
    """Highest tabulated melting point of a binary oxide per cation element (K)."""
    from labos.models.thermo.properties import known_formulas, melting_info

    out: dict[str, float] = {}
    for f in known_formulas():
        info = melting_info(f)
        p = make_phase(f)
        if info is None or info.kind != "melts" or len(p.elements) != 2 or "O" not in p.elements:
            continue
        (cation,) = p.elements - {"O"}
        out[cation] = max(out.get(cation, 0.0), info.temperature_k)
    return out


@lru_cache(maxsize=8192)
def tabulated_melting_k(key: str) -> float | None:
    """Tabulated melting point (K) of a phase, None when it decomposes first or is not tabulated."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is None or info.kind != "melts":
        return None
    return info.temperature_k


@lru_cache(maxsize=8192)
def effective_melting_k(key: str) -> float:
    """Melting point (K) for Tammann's rule, tabulated or estimated (see module docstring)."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is not None:
        if info.kind == "melts":
            return info.temperature_k
        return info.temperature_k / DECOMPOSITION_FACTOR
    p = make_phase(key)
    table = _oxide_melting_by_element()
    cations = [(e, a) for e, a in p.amounts if e not in OPEN_ELEMENT_GAS]
    known = [(table[e], a) for e, a in cations if e in table]
    if not known:
        return DEFAULT_MELTING_K
    return 0.95 * sum(t * a for t, a in known) / sum(a for _, a in known)


@lru_cache(maxsize=8192)
def decomposition_k(key: str) -> float | None:
    """Tabulated decomposition temperature (K) of a phase that decomposes before melting."""
    from labos.models.thermo.properties import melting_info

    info = melting_info(key)
    if info is None or info.kind != "decomposes":
        return None
    return info.temperature_k
