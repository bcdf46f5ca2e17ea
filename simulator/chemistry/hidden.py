"""The world's hidden kinetic parameters, drawn deterministically from its seed and difficulty.

Nothing here is visible to a planner (the planner sees only XRD results). Every parameter is a
pure function of (seed, what it belongs to), through a hash, so that a pair's behaviour does not
depend on the order in which experiments discover it, and the same seed always gives the same
world. Ranges (the "alab" difficulty, the default; see :data:`DIFFICULTIES`) follow the literature:

- reactions become noticeable at τ ≈ 0.50–0.58 (per pair 0.38–0.68) of the melting point of the
  product layer the cations diffuse through, in kelvin (a Tammann-type rule; observed onsets of
  classic syntheses lie at 0.43–0.53 of the product's melting point, see :data:`DIFFICULTIES`;
  Huo et al., Chem. Mater. 2022 place typical synthesis temperatures at 0.5–0.75 of the
  precursors' melting points, i.e. above the onset);
- apparent activation energies of 180–380 kJ/mol (cation interdiffusion in oxides);
- a product nucleates only with enough driving force: below ~25–45 meV/atom (per pair ×0.6–1.6)
  it stalls at any temperature (the A-Lab's sluggish low-driving-force steps, < ~50 meV/atom;
  Szymanski et al., Nature 2023);
- commercial powders differ in particle size, so in reactivity (GB rate ∝ 1/r²: σ(ln k) = 1.2);
  powder formed in the furnace (decomposition products, intermediates) is fine and reactive.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np


def stable_hash(*parts: Any) -> int:
    """64-bit hash of JSON-serialisable parts, stable across processes and Python versions."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(stable_hash(*parts))


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@dataclass(frozen=True)
class Difficulty:
    """Ranges of the hidden parameters for one difficulty level (see :data:`DIFFICULTIES`).

    ``nucleation_threshold``: range of a world's mean "trap" driving force (eV/atom) below which a
    product cannot nucleate at a useful rate (per pair it scatters ×0.6–1.6 around that mean).
    ``product_layer_weight``: how much the product layer, rather than the lower-melting reactant,
    sets the Tammann onset of a pair's diffusion (0: the reactant alone, as in Tammann's rule for
    the onset; 1: the product layer alone). ``reactivity_sigma``: log-normal spread of each
    powder's reactivity (particle size: the diffusion rate constant scales with 1/r^2);
    ``fresh_reactivity``: that of powder formed in the furnace. ``tammann``: range of the world's
    mean onset / melting point. ``rate_scale``: multiplies every rate constant.
    ``kinetic_product_probability``: share of pairs that form a kinetically preferred product.
    """

    name: str
    tammann: tuple[float, float]
    nucleation_threshold: tuple[float, float]
    product_layer_weight: tuple[float, float]
    reactivity_sigma: float
    fresh_reactivity: tuple[float, float]
    rate_scale: tuple[float, float]
    kinetic_product_probability: tuple[float, float]


#: The difficulty levels. "alab" (the default) is calibrated so that, over the A-Lab-like benchmark
#: targets, a typical target succeeds (target > 50 wt%) in a minority of its (precursor set,
#: temperature) cells, some in none — see ``labos bench sim-world --json`` and the README.
DIFFICULTIES: dict[str, Difficulty] = {
    # about as forgiving as the first version of this world: early onsets, little nucleation stall
    "easy": Difficulty(
        name="easy",
        tammann=(0.40, 0.47),
        nucleation_threshold=(0.004, 0.012),
        product_layer_weight=(0.3, 0.6),
        reactivity_sigma=0.3,
        fresh_reactivity=(1.0, 1.5),
        rate_scale=(1.0, 3.0),
        kinetic_product_probability=(0.05, 0.15),
    ),
    # onsets at ~0.54 of the product layer's melting point (first detections in finely milled lab
    # powders: CaMoO4 ~500 °C, Li2TiO3 ~500, ZnFe2O4 ~600, BaTiO3 ~700, CaTiO3 and SrTiO3 ~800,
    # MgAl2O4 ~1000 °C, i.e. 0.43-0.53 of the product's melting point; a robot's dry-mixed
    # powders react somewhat later), the A-Lab's "< ~50 meV/atom is sluggish", commercial powders
    # of different particle size (GB: k ∝ 1/r², σ(ln k) = 1.2). With these, ~80 % of the 58
    # benchmark targets can be made in some cell at <= 1100 °C (the A-Lab made 41 of 58).
    "alab": Difficulty(
        name="alab",
        tammann=(0.50, 0.58),
        nucleation_threshold=(0.025, 0.045),
        product_layer_weight=(0.8, 1.0),
        reactivity_sigma=1.2,
        fresh_reactivity=(1.5, 3.0),
        rate_scale=(0.5, 2.0),
        kinetic_product_probability=(0.10, 0.35),
    ),
    "hard": Difficulty(
        name="hard",
        tammann=(0.54, 0.62),
        nucleation_threshold=(0.040, 0.060),
        product_layer_weight=(0.9, 1.0),
        reactivity_sigma=1.8,
        fresh_reactivity=(1.5, 3.0),
        rate_scale=(0.3, 1.0),
        kinetic_product_probability=(0.25, 0.45),
    ),
}
DEFAULT_DIFFICULTY = "alab"


def difficulty_of(name: str | Difficulty) -> Difficulty:
    """The difficulty preset called ``name`` (a clear error naming the choices otherwise); a
    :class:`Difficulty` passes through (custom worlds)."""
    if isinstance(name, Difficulty):
        return name
    try:
        return DIFFICULTIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, not {name!r}") from None


@dataclass(frozen=True)
class WorldParams:
    """World-wide hidden parameters."""

    difficulty: str
    tammann_mean: float  # onset / lower melting point (K/K)
    threshold_mean: float  # eV/atom: driving force below which a product cannot nucleate
    product_layer_weight: float  # share of the product layer in a pair's Tammann onset
    reactivity_sigma: float  # log-normal spread of a dosed powder's reactivity (particle size)
    fresh_reactivity: float  # reactivity of powder formed in the furnace (fine grained)
    kinetic_product_probability: float  # share of pairs that form a kinetically preferred product
    unmixed_fraction: float  # mean share of each powder that never touches the others
    dosing_sigma: float  # relative standard deviation of a dosed mass
    volatility_scale: float  # multiplies every volatilisation rate
    rate_scale: float  # multiplies every reaction rate
    batch_sigma: float  # log-normal synthesis-to-synthesis rate scatter


@dataclass(frozen=True)
class PairParams:
    """Hidden kinetics of one reactant pair (symmetric in the pair)."""

    tammann: float
    onset_offset_k: float
    ea_kj: float
    k_onset: float  # 1/min, GB kinetic time per minute at the onset temperature
    threshold: float  # eV/atom: the product's nucleation stalls below about this driving force
    kinetic_product: bool  # forms a kinetically preferred product instead of the most exergonic
    kinetic_ratio: float  # ... if that product keeps at least this share of the driving force


@dataclass(frozen=True)
class PhaseParams:
    """Hidden kinetics of single-phase changes (decomposition, oxidation) of one phase."""

    threshold: float  # eV/atom of overshoot before decomposition starts
    k_ref: float  # 1/min contracting-volume kinetic time at 50 meV/atom driving force
    release_onset_k: float  # no gas-releasing decomposition is fast below this (K)
    uptake_tammann: float  # onset of gas uptake (oxidation) / melting point
    bulk_tammann: float  # onset of a gas-free single-phase change (exsolution) / melting point
    reactivity: float  # of this phase dosed as a powder: multiplies its pairs' diffusion rates


@lru_cache(maxsize=256)
def world_params(seed: int, difficulty: str | Difficulty = DEFAULT_DIFFICULTY) -> WorldParams:
    d = difficulty_of(difficulty)
    rng = rng_for("world", seed)
    base = WorldParams(
        difficulty=d.name,
        tammann_mean=0.0,
        threshold_mean=0.0,
        product_layer_weight=0.0,
        reactivity_sigma=d.reactivity_sigma,
        fresh_reactivity=1.0,
        kinetic_product_probability=0.0,
        unmixed_fraction=float(rng.uniform(0.01, 0.05)),
        dosing_sigma=float(rng.uniform(0.003, 0.012)),
        volatility_scale=_log_uniform(rng, 0.5, 2.0),
        rate_scale=0.0,
        batch_sigma=float(rng.uniform(0.05, 0.2)),
    )
    # the difficulty-dependent draws come from their own stream, so that the shared ones above are
    # the same world in every difficulty
    drng = rng_for("world-difficulty", seed, d.name)
    return replace(
        base,
        tammann_mean=float(drng.uniform(*d.tammann)),
        threshold_mean=float(drng.uniform(*d.nucleation_threshold)),
        product_layer_weight=float(drng.uniform(*d.product_layer_weight)),
        kinetic_product_probability=float(drng.uniform(*d.kinetic_product_probability)),
        rate_scale=_log_uniform(drng, *d.rate_scale),
        fresh_reactivity=_log_uniform(drng, *d.fresh_reactivity),
    )


@lru_cache(maxsize=100_000)
def pair_params(seed: int, a: str, b: str, difficulty: str | Difficulty = DEFAULT_DIFFICULTY) -> PairParams:
    wp = world_params(seed, difficulty)
    rng = rng_for("pair", seed, sorted((a, b)))
    return PairParams(
        tammann=float(np.clip(wp.tammann_mean + rng.normal(0.0, 0.04), 0.38, 0.68)),
        onset_offset_k=float(rng.normal(0.0, 35.0)),
        ea_kj=float(rng.uniform(180.0, 380.0)),
        k_onset=wp.rate_scale * _log_uniform(rng, 2.5e-6, 1.0e-5),
        threshold=wp.threshold_mean * _log_uniform(rng, 0.6, 1.6),
        kinetic_product=bool(rng.uniform() < wp.kinetic_product_probability),
        kinetic_ratio=float(rng.uniform(0.4, 0.8)),
    )


@lru_cache(maxsize=100_000)
def phase_params(seed: int, phase: str, difficulty: str | Difficulty = DEFAULT_DIFFICULTY) -> PhaseParams:
    wp = world_params(seed, difficulty)
    rng = rng_for("phase", seed, phase)
    return PhaseParams(
        threshold=float(rng.uniform(0.004, 0.02)),
        k_ref=wp.rate_scale * _log_uniform(rng, 0.01, 0.04),
        release_onset_k=float(rng.uniform(560.0, 660.0)),
        uptake_tammann=float(rng.uniform(0.3, 0.45)),
        bulk_tammann=float(rng.uniform(0.45, 0.6)),
        reactivity=float(math.exp(wp.reactivity_sigma * rng.normal())),
    )
