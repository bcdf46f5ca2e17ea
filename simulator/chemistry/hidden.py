"""The world's hidden kinetic parameters, drawn deterministically from its seed.

Nothing here is visible to a planner (the planner sees only XRD results). Every parameter is a
pure function of (seed, what it belongs to), through a hash, so that a pair's behaviour does not
depend on the order in which experiments discover it, and the same seed always gives the same
world. Ranges are chosen so that typical oxide syntheses behave as in the literature: reactions
become noticeable at 0.38–0.68 (0.45–0.56 on average) of the lower melting point in kelvin
(Tammann's rule; Huo et al., Chem. Mater. 2022 place typical synthesis temperatures at 0.5–0.75 of
it, i.e. above the onset), apparent activation energies of 180–380 kJ/mol (typical of
cation interdiffusion in oxides), and a driving-force threshold of 6–56 meV/atom (10–35 on average) below which a
reaction stalls (the sluggish low-driving-force steps of Szymanski et al., Nature 2023).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
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
class WorldParams:
    """World-wide hidden parameters."""

    tammann_mean: float  # onset / lower melting point (K/K)
    threshold_mean: float  # eV/atom: driving force below which reactions stall
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
    threshold: float  # eV/atom
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


@lru_cache(maxsize=256)
def world_params(seed: int) -> WorldParams:
    rng = rng_for("world", seed)
    return WorldParams(
        tammann_mean=float(rng.uniform(0.45, 0.56)),
        threshold_mean=float(rng.uniform(0.010, 0.035)),
        kinetic_product_probability=float(rng.uniform(0.10, 0.35)),
        unmixed_fraction=float(rng.uniform(0.01, 0.05)),
        dosing_sigma=float(rng.uniform(0.003, 0.012)),
        volatility_scale=_log_uniform(rng, 0.5, 2.0),
        rate_scale=_log_uniform(rng, 0.5, 2.0),
        batch_sigma=float(rng.uniform(0.05, 0.2)),
    )


@lru_cache(maxsize=100_000)
def pair_params(seed: int, a: str, b: str) -> PairParams:
    wp = world_params(seed)
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
def phase_params(seed: int, phase: str) -> PhaseParams:
    wp = world_params(seed)
    rng = rng_for("phase", seed, phase)
    return PhaseParams(
        threshold=float(rng.uniform(0.004, 0.02)),
        k_ref=wp.rate_scale * _log_uniform(rng, 0.01, 0.04),
        release_onset_k=float(rng.uniform(560.0, 660.0)),
        uptake_tammann=float(rng.uniform(0.3, 0.45)),
        bulk_tammann=float(rng.uniform(0.45, 0.6)),
    )
