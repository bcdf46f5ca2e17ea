"""Partial pressures of the gases a furnace atmosphere holds (Pa), and the gas chemical potential.

Choice for ``"air"`` (documented because PLANNING.md quotes p_CO2 = 4 050 Pa): dry air holds
20.95 % O2 (→ 21 200 Pa at 101 325 Pa, the value PLANNING.md uses) and about 420 ppm CO2
(NOAA global mean 2023: 419 ppm) → 42.6 Pa. 4 050 Pa is 4 % CO2 — 100× ambient, a percent/fraction
slip in the reference code's 0.04 — so it is offered only as the explicit preset ``"air_co2_rich"``
for a crucible where a decomposing carbonate keeps the local CO2 high. H2O in air: 1 000 Pa
(~30 % relative humidity at 25 °C; saturation 3 170 Pa). Any gas an atmosphere does not list is
at ``TRACE_PA`` (1 Pa ≈ 10 ppm: the impurity level of bottled gas, and the partial pressure of a
product gas swept away by the furnace flow).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from labos.errors import LabosError

P_STANDARD_PA = 1.0e5  # p° of the NIST-JANAF tables (1 bar)
P_ATM_PA = 101_325.0
TRACE_PA = 1.0

ATMOSPHERES: dict[str, dict[str, float]] = {
    "air": {"O2": 21_200.0, "N2": 79_000.0, "CO2": 42.6, "H2O": 1_000.0},
    "air_co2_rich": {"O2": 21_200.0, "N2": 75_000.0, "CO2": 4_050.0, "H2O": 1_000.0},
    "dry_air": {"O2": 21_200.0, "N2": 79_000.0, "CO2": 42.6, "H2O": TRACE_PA},
    "O2": {"O2": P_ATM_PA},
    "N2": {"N2": P_ATM_PA},
    "Ar": {},
    "H2/Ar": {"H2": 5_066.0},  # 5 % H2 forming gas
    "CO2": {"CO2": P_ATM_PA},
    "vacuum": {"O2": 1.0e-3, "N2": 1.0e-3},
    "standard": {},  # every gas at p° (handled below)
}


class AtmosphereError(LabosError, ValueError):
    """An atmosphere name or partial pressure that cannot be used."""


def partial_pressures(atmosphere: str | Mapping[str, float]) -> dict[str, float]:
    """Partial pressures (Pa) for a named atmosphere or an explicit {gas: Pa} mapping."""
    if isinstance(atmosphere, Mapping):
        out = {}
        for gas, p in atmosphere.items():
            p = float(p)
            if not math.isfinite(p) or p <= 0:
                raise AtmosphereError(f"partial pressure of {gas} must be a positive number of Pa, got {p}")
            out[str(gas)] = p
        return out
    name = str(getattr(atmosphere, "value", atmosphere))
    if name not in ATMOSPHERES:
        raise AtmosphereError(
            f"unknown atmosphere {name!r}; known: {', '.join(ATMOSPHERES)} or a {{gas: Pa}} map"
        )
    return dict(ATMOSPHERES[name])


def atmosphere_key(atmosphere: str | Mapping[str, float]) -> tuple:
    """Hashable form of an atmosphere (for caches)."""
    if isinstance(atmosphere, Mapping):
        return tuple(sorted(partial_pressures(atmosphere).items()))
    return (str(getattr(atmosphere, "value", atmosphere)),)


def pressure_of(gas: str, atmosphere: str | Mapping[str, float]) -> float:
    """Partial pressure (Pa) of ``gas`` (reduced formula) in the atmosphere."""
    name = None if isinstance(atmosphere, Mapping) else str(getattr(atmosphere, "value", atmosphere))
    if name == "standard":
        return P_STANDARD_PA
    return partial_pressures(atmosphere).get(gas, TRACE_PA)
