"""Rate laws of the world: how far a reaction goes in a given time at a given temperature.

- Pairwise solid-state reactions are diffusion-controlled through the growing product layer:
  Ginstling–Brounshtein (1950), F(α) = 1 − 2α/3 − (1 − α)^(2/3) = k·t, F(1) = 1/3.
- Decompositions (carbonates, hydroxides, …) follow the contracting-volume law
  G(α) = 1 − (1 − α)^(1/3) = k·t.
- Rate constants are Arrhenius, referenced to a (hidden) onset temperature where the reaction
  becomes noticeable, and scaled by the thermodynamic driving force through a gate: a reaction
  whose driving force is below a (hidden) threshold barely proceeds (the A-Lab's "low driving force"
  failure mode).

Progress is tracked as an accumulated "kinetic time" τ = ∫ k dt per reaction channel, so that a
channel interrupted by cooling or competition resumes on the same curve.
"""

from __future__ import annotations

import math

R_KJ = 8.314462618e-3  # kJ/(mol K)

#: F(α=1) of Ginstling–Brounshtein.
GB_MAX = 1.0 / 3.0


def gb_tau(alpha: float) -> float:
    """Ginstling–Brounshtein F(α) = 1 − 2α/3 − (1 − α)^(2/3)."""
    a = min(max(alpha, 0.0), 1.0)
    return 1.0 - 2.0 * a / 3.0 - (1.0 - a) ** (2.0 / 3.0)


def gb_alpha(tau: float) -> float:
    """Inverse of :func:`gb_tau` (monotone; solved by bisection to 1e-10)."""
    if tau <= 0.0:
        return 0.0
    if tau >= GB_MAX:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if gb_tau(mid) < tau:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def cv_alpha(tau: float) -> float:
    """Contracting volume: α = 1 − (1 − τ)^3 for τ < 1, else 1."""
    if tau <= 0.0:
        return 0.0
    if tau >= 1.0:
        return 1.0
    return 1.0 - (1.0 - tau) ** 3


def step_fraction(alpha_of, tau_before: float, tau_after: float) -> float:
    """Fraction of what is still unreacted that reacts between two kinetic times."""
    a0, a1 = alpha_of(tau_before), alpha_of(tau_after)
    if a0 >= 1.0:
        return 1.0
    return min(max((a1 - a0) / (1.0 - a0), 0.0), 1.0)


def arrhenius(k_onset: float, ea_kj: float, onset_k: float, temperature_k: float) -> float:
    """k(T) = k_onset · exp(−Ea/R · (1/T − 1/T_onset))."""
    return k_onset * math.exp(-ea_kj / R_KJ * (1.0 / temperature_k - 1.0 / onset_k))


def driving_force_gate(
    drive: float, threshold: float, width: float = 0.004, reference: float = 0.05
) -> float:
    """Rate multiplier from the driving force (eV/atom): a logistic step at ``threshold`` times
    an affinity factor drive/reference capped at 3 (more driving force, faster growth)."""
    if drive <= 0.0:
        return 0.0
    z = (drive - threshold) / width
    gate = 1.0 / (1.0 + math.exp(-z)) if z > -50 else 0.0
    return gate * min(drive / reference, 3.0)
