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


#: Cap of the affinity factor (diffusion flux grows with the driving force, Wagner).
AFFINITY_MAX = 3.0
AFFINITY_REFERENCE = 0.05  # eV/atom


def affinity(drive: float) -> float:
    """Diffusion flux through a product layer is proportional to the chemical-potential difference
    across it (Wagner): rate multiplier drive/50 meV per atom, capped at 3."""
    return min(max(drive, 0.0) / AFFINITY_REFERENCE, AFFINITY_MAX)


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


#: Fastest interface (nucleation and growth) rate, 1/min: never limiting for a large driving force.
INTERFACE_RATE_MAX = 0.05
#: Steepness of the nucleation stall: at the threshold the interface rate is e^-6 of its maximum.
NUCLEATION_STEEPNESS = 6.0
NUCLEATION_REFERENCE_K = 1273.15


def nucleation_rate(drive: float, threshold: float, temperature_k: float) -> float:
    """Interface-controlled rate (1/min) of a product that must nucleate with driving force
    ``drive`` (eV/atom). Classical nucleation theory: the barrier ΔG* ∝ γ³/Δg², so the rate goes as
    exp(−ΔG*/kT) = exp(−c·(threshold/Δg)²·T_ref/T). Below the threshold the step stalls at any
    furnace temperature (the A-Lab's low-driving-force failures, Szymanski et al., Nature 2023);
    well above it the interface is never the slow step."""
    if drive <= 0.0:
        return 0.0
    exponent = NUCLEATION_STEEPNESS * (threshold / drive) ** 2 * NUCLEATION_REFERENCE_K / temperature_k
    if exponent > 200.0:
        return 0.0
    return INTERFACE_RATE_MAX * math.exp(-exponent)


def mixed_control(k_diffusion: float, k_interface: float) -> float:
    """Rate of two steps in series (diffusion through the product layer, then growth at the
    interface): 1/k = 1/k_diff + 1/k_int — the slower one controls."""
    if k_diffusion <= 0.0 or k_interface <= 0.0:
        return 0.0
    return 1.0 / (1.0 / k_diffusion + 1.0 / k_interface)
