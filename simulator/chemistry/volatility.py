"""Evaporation of volatile oxides (Li, Na, K, Bi, Pb, Mo, V, …) from a hot powder.

Facts (which oxide evaporates, from what temperature, with sources) are in
``simulator/data/volatility.toml``. Rate model: a phase loses the share
``r = 2e-5/min · exp((T − T_onset)/80 K)`` of its volatile element per minute (≈0.1 %/h at the
onset), times a hidden per-world factor, × 0.3 when the element is bound in a multi-cation phase,
× 3 above the phase's melting point; the step loss is capped at 50 %.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .phases import OPEN_ELEMENT_GAS, Phase

RATE_AT_ONSET_PER_MIN = 2.0e-5
E_FOLD_K = 80.0
BOUND_FACTOR = 0.3
LIQUID_FACTOR = 3.0
MAX_STEP_LOSS = 0.5


@dataclass(frozen=True)
class VolatileOxide:
    element: str
    species: str
    onset_k: float
    source: str


@lru_cache(maxsize=1)
def volatile_oxides() -> dict[str, VolatileOxide]:
    text = resources.files("labos.simulator.data").joinpath("volatility.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return {
        el: VolatileOxide(el, row["species"], float(row["onset_c"]) + 273.15, row["source"])
        for el, row in data.items()
    }


def loss_fraction(
    phase: Phase, temperature_k: float, dt_min: float, liquid: bool, scale: float
) -> tuple[str, float]:
    """(volatile element, share of it lost in this step) for ``phase``; share 0 if none."""
    table = volatile_oxides()
    best: tuple[str, float] = ("", 0.0)
    cations = [e for e in phase.elements if e not in OPEN_ELEMENT_GAS]
    for el in cations:
        vo = table.get(el)
        if vo is None or temperature_k < vo.onset_k - 200.0:
            continue
        rate = RATE_AT_ONSET_PER_MIN * math.exp((temperature_k - vo.onset_k) / E_FOLD_K) * scale
        if len(cations) > 1:
            rate *= BOUND_FACTOR
        if liquid:
            rate *= LIQUID_FACTOR
        share = min(1.0 - math.exp(-rate * dt_min), MAX_STEP_LOSS)
        if share > best[1]:
            best = (el, share)
    return best
