"""Literature priors for the planner: trained once per dataset version, cached, loaded in a second.

Training (recommender with its re-ranker + condition model) takes about two minutes on two cores;
the result is pickled under ``get_settings().cache_dir / "literature"`` keyed by the dataset's SHA-256, so a new
dataset (or a new model version) retrains automatically and an unchanged one never does.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from labos.models.literature.dataset import (
    SynthesisRecord,
    checksum,
    dataset_path,
    load_records,
    target_fractions,
)
from labos.models.literature.recommender import PrecursorRecommender, Recommendation
from labos.models.literature.temperature import ConditionModel, ConditionPrediction

from labos.config import get_settings
from labos.errors import DataMissingError

MODEL_VERSION = 5  # 2: two-stage recommender (pool + re-ranker); 3: targets carry their dopants; 4: route-aware completion, dot hydrates; 5: second neighbour view


def _reduced(formula: str) -> str:
    from pymatgen.core import Composition

    return Composition(formula.replace("·", "")).reduced_formula


class LiteraturePriors:
    """Precursor recommender + temperature/dwell model trained on the text-mined dataset."""

    def __init__(self, recommender: PrecursorRecommender, conditions: ConditionModel, info: dict[str, Any]):
        self.recommender = recommender
        self.conditions = conditions
        self.info = info

    @classmethod
    def train(
        cls, records: Sequence[SynthesisRecord], info: dict[str, Any] | None = None
    ) -> LiteraturePriors:
        t0 = time.perf_counter()
        rec = PrecursorRecommender().fit(records)
        cond = ConditionModel().fit(records)
        meta = dict(info or {})
        meta.update(
            records=len(records), train_seconds=round(time.perf_counter() - t0, 1), version=MODEL_VERSION
        )
        return cls(rec, cond, meta)

    def recommend(
        self, target: str, k: int = 5, inventory: Iterable[str] | None = None
    ) -> list[Recommendation]:
        """Top-k precursor sets for ``target`` (reduced formulas), limited to ``inventory`` if given.

        Dopants follow a colon: ``"SrAl2O4:Eu,Dy"`` (see :meth:`PrecursorRecommender.recommend`).
        """
        inv = None if inventory is None else [_reduced(p) for p in inventory]
        return self.recommender.recommend(target, k=k, inventory=inv)

    def predict_conditions(self, target: str, precursors: Sequence[str]) -> ConditionPrediction:
        """Firing temperature (°C) and dwell (h) the literature would use for this target and set."""
        return self.predict_conditions_many(target, [precursors])[0]

    def predict_conditions_many(
        self, target: str, precursor_sets: Sequence[Sequence[str]]
    ) -> list[ConditionPrediction]:
        """The same for many sets of one target at once (one call into the model)."""
        fr = target_fractions(target)
        return self.conditions.predict_many([(fr, [_reduced(p) for p in s]) for s in precursor_sets])


def cache_path(digest: str) -> Path:
    return get_settings().cache_dir / "literature" / f"priors-v{MODEL_VERSION}-{digest[:16]}.pkl"


def _write_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_LOADED: dict[str, LiteraturePriors] = {}


def get_priors(path: Path | None = None, retrain: bool = False) -> LiteraturePriors:
    """The trained priors for the dataset at ``path`` (default: the configured one); trains if needed.

    Raises DataMissingError when the dataset is absent.
    """
    path = path or dataset_path()
    digest = checksum(path)
    if digest in _LOADED and not retrain:
        return _LOADED[digest]
    cached = cache_path(digest)
    priors = None
    if cached.is_file() and not retrain:
        try:
            with cached.open("rb") as fh:
                priors = pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            priors = None  # a stale or broken cache is retrained, not trusted
    if priors is None:
        records = load_records(path)
        priors = LiteraturePriors.train(records, {"dataset_sha256": digest, "dataset": str(path)})
        _write_atomic(priors, cached)
        for stale in cached.parent.glob(f"priors-v*-{digest[:16]}.pkl"):  # earlier model versions
            if stale != cached:
                stale.unlink(missing_ok=True)
    _LOADED[digest] = priors
    return priors


def load_priors() -> tuple[LiteraturePriors | None, str]:
    """(priors, note) or (None, why): the planner runs on thermodynamics alone without them."""
    try:
        priors = get_priors()
    except DataMissingError as exc:
        return None, f"unavailable: {exc}"
    return priors, f"trained on {priors.info.get('records')} literature reactions"
