"""Benchmark of the literature priors on a publication-year split (``labos bench priors --json``).

Train on reactions published up to ``split_year``, test on later ones:

* precursor recommendation: for every test target not seen in training, is one of the top-k
  proposals exactly a reported precursor set? (He et al. report ≥ 82 % at k = 5 on their split.)
  ``learned_embedding`` (all unseen test targets) is the number to compare with theirs. Compared
  with the first stage alone (``learned_embedding_vote_only``: neighbour votes, no re-ranker), the
  first stage on raw element fractions and "most common precursor per element".
  ``feasible_ceiling`` is the share of test targets with at least one reported set made only of
  precursors seen in training (at least 3 times) that supply exactly the target's elements, dopants
  included (elements the text-mined target lacks, unseen or misspelt precursors make the rest
  impossible to hit). Targets are keyed with their dopants (``Ca2SnO4:Eu`` is not ``Ca2SnO4``; see
  :mod:`.dataset`), so a doped target is unseen unless that host with those dopants was in training; ``learned_embedding_on_feasible_targets`` is the same top-k on that subset only (a
  restricted test set, labelled as such). ``learned_embedding_up_to_hydrate_water`` counts a proposal
  as a match when it equals a reported set up to water of crystallisation (``Ce(NO3)3·6H2O`` ≡
  ``Ce(NO3)3``; :func:`.features.anhydrous`): supplementary, also labelled.
* firing temperature: MAE (°C) of the condition model vs the median-per-element baseline; dwell MAE (h)
  vs the training median.
* second check: the curated ternary oxides (Chung et al.) published after the split year.
"""

from __future__ import annotations

import copy
import csv
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
from labos.models.literature.dataset import (
    SynthesisRecord,
    compound_formula,
    dataset_path,
    load_records,
    reduced_formula,
    target_fractions,
)
from labos.models.literature.features import amounts, anhydrous, nonvolatile
from labos.models.literature.recommender import PrecursorRecommender
from labos.models.literature.temperature import ConditionModel

from labos.config import get_settings

KS = (1, 3, 5, 10)
CURATED = "literature/manually_curated_ternary_oxides.csv"


@lru_cache(maxsize=2)
def _records(path: str) -> tuple[SynthesisRecord, ...]:
    return tuple(load_records())


def _ranks(
    model: PrecursorRecommender,
    truth: dict[str, set[tuple[str, ...]]],
    hydrates: dict[str, int | None] | None = None,
) -> dict[str, int | None]:
    """Per target: the 0-based rank of the first proposal that is a reported set (None: not in top 10).

    ``hydrates``, when given, is filled with the same ranks counting sets equal up to water of
    crystallisation as a match (a supplementary, labelled metric).
    """
    out: dict[str, int | None] = {}
    known = frozenset(model.labels)

    def dry(s: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted({anhydrous(p, known) for p in s}))

    for target, sets in truth.items():
        recs = model.recommend(target, k=max(KS))
        out[target] = next((i for i, r in enumerate(recs) if r.precursors in sets), None)
        if hydrates is not None:
            dry_sets = {dry(s) for s in sets}
            hydrates[target] = next((i for i, r in enumerate(recs) if dry(r.precursors) in dry_sets), None)
    return out


def _topk_of(ranks: dict[str, int | None], targets: Iterable[str] | None = None) -> dict[str, float]:
    names = list(ranks if targets is None else targets)
    n = max(len(names), 1)
    return {
        f"top{k}": round(sum(1 for t in names if ranks[t] is not None and ranks[t] < k) / n, 4) for k in KS
    }


def _topk(model: PrecursorRecommender, truth: dict[str, set[tuple[str, ...]]]) -> dict[str, float]:
    return _topk_of(_ranks(model, truth))


def _most_common(model: PrecursorRecommender, truth: dict[str, set[tuple[str, ...]]]) -> dict[str, float]:
    hits = 0
    probs = model.freq / model.freq.max()
    for target, sets in truth.items():
        need = frozenset(target_fractions(target)) - {"O", "C", "H", "N"}
        if model._complete((), need, probs, None) in sets:
            hits += 1
    return {"top1": round(hits / max(len(truth), 1), 4)}


def _curated(split_year: int, rec: PrecursorRecommender, cond: ConditionModel) -> dict[str, Any]:
    path = get_settings().dataset(CURATED)
    if not path.is_file():
        return {"available": False, "note": f"{path} is absent"}
    hits5 = n_rec = 0
    err_model: list[float] = []
    err_base: list[float] = []
    with path.open(encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            if row.get("solid_state_synthesized_composition") != "y":
                continue
            try:
                year = int(float(row.get("reference_year") or "nan"))
            except ValueError:
                continue
            if year <= split_year:
                continue
            try:
                target = reduced_formula(amounts(row["composition"]))
            except Exception:  # unreadable composition in the curated file: skip the row
                continue
            sets = set()
            for group in (row.get("sss_precursor") or "").split(";"):
                names = [p.strip() for p in group.split(",") if p.strip()]
                try:
                    sets.add(tuple(sorted({compound_formula(amounts(p)) for p in names})))
                except Exception:  # a precursor name that is not a formula
                    continue
            sets.discard(())
            if sets:
                n_rec += 1
                recs = rec.recommend(target, k=5)
                hits5 += any(r.precursors in sets for r in recs)
            t_k = row.get("sss_highest_temperature(K)")
            if t_k and sets:
                precursors = sorted(next(iter(sets)))
                pred = cond.predict(target_fractions(target), precursors)
                true_c = float(t_k) - 273.15
                err_model.append(abs(pred.temperature_c - true_c))
                err_base.append(abs(pred.baseline_temperature_c - true_c))
    return {
        "available": True,
        "targets_with_precursors": n_rec,
        "top5": round(hits5 / max(n_rec, 1), 4),
        "temperature_n": len(err_model),
        "temperature_mae_c": round(float(np.mean(err_model)), 1) if err_model else None,
        "baseline_mae_c": round(float(np.mean(err_base)), 1) if err_base else None,
    }


def evaluate(split_year: int = 2016, seeds: int = 1) -> dict[str, Any]:
    """Train on ≤ ``split_year``, test on later papers; see the module docstring for the metrics.

    ``seeds`` > 1 retrains the learned recommender with seeds 1.. as well and reports the spread
    (``learned_embedding_over_seeds``); the headline figures stay those of seed 0.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    t0 = time.perf_counter()
    records = _records(str(dataset_path()))
    load_s = time.perf_counter() - t0
    train = [r for r in records if r.year is not None and r.year <= split_year]
    test = [r for r in records if r.year is not None and r.year > split_year]
    if not train or not test:
        raise ValueError(f"split year {split_year} leaves an empty train or test set")
    seen = {r.target for r in train}
    truth: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for r in test:
        if r.target not in seen:
            truth[r.target].add(r.precursors)
    out: dict[str, Any] = {
        "split_year": split_year,
        "train_reactions": len(train),
        "test_reactions": len(test),
        "unseen_test_targets": len(truth),
        "load_seconds": round(load_s, 1),
    }
    t = time.perf_counter()
    learned = PrecursorRecommender("learned").fit(train)
    out["recommender_train_seconds"] = round(time.perf_counter() - t, 1)
    raw = PrecursorRecommender("raw", rerank=False).fit(train)
    vote_only = copy.copy(learned)
    vote_only.reranker = None  # the first stage alone: neighbour votes (the earlier pipeline)
    vocab = set(learned.labels)

    def feasible(target: str, s: tuple[str, ...]) -> bool:
        need = frozenset(target_fractions(target)) - {"O", "C", "H", "N"}
        return (
            all(p in vocab and nonvolatile(p) and nonvolatile(p) <= need for p in s)
            and bool(s)
            and (frozenset().union(*(nonvolatile(p) for p in s)) == need)
        )

    t = time.perf_counter()
    dry_ranks: dict[str, int | None] = {}
    ranks = _ranks(learned, truth, dry_ranks)
    recommend_s = time.perf_counter() - t
    feasible_targets = [tg for tg, ss in truth.items() if any(feasible(tg, s) for s in ss)]
    out["recommender"] = {
        "learned_embedding": _topk_of(ranks),
        "learned_embedding_vote_only": _topk(vote_only, truth),
        "element_fraction_similarity": _topk(raw, truth),
        "most_common_per_element": _most_common(raw, truth),
        "feasible_ceiling": round(len(feasible_targets) / max(len(truth), 1), 4),
        "feasible_targets": len(feasible_targets),
        "learned_embedding_on_feasible_targets": _topk_of(ranks, feasible_targets),
        "learned_embedding_up_to_hydrate_water": _topk_of(dry_ranks),
        "ms_per_target": round(1000 * recommend_s / max(len(truth), 1), 1),
        "reference": "He et al., Sci. Adv. 2023: >= 0.82 top-5 on their own year split",
        "compare_with_reference": "learned_embedding (all unseen test targets)",
    }
    if seeds > 1:
        runs = [out["recommender"]["learned_embedding"]]
        for seed in range(1, seeds):
            runs.append(_topk(PrecursorRecommender("learned", seed=seed).fit(train), truth))
        out["recommender"]["learned_embedding_over_seeds"] = {
            "seeds": seeds,
            "per_seed": runs,
            "mean": {key: round(float(np.mean([r[key] for r in runs])), 4) for key in runs[0]},
            "min": {key: min(r[key] for r in runs) for key in runs[0]},
            "max": {key: max(r[key] for r in runs) for key in runs[0]},
        }
    t = time.perf_counter()
    cond = ConditionModel().fit(train)
    out["condition_train_seconds"] = round(time.perf_counter() - t, 1)
    test_t = [r for r in test if r.temperature_c is not None and 200 <= r.temperature_c <= 1800]
    pred = cond.predict_many([(r.elements, r.precursors) for r in test_t])
    err = np.array([abs(p.temperature_c - r.temperature_c) for p, r in zip(pred, test_t, strict=True)])
    base = np.array(
        [abs(p.baseline_temperature_c - r.temperature_c) for p, r in zip(pred, test_t, strict=True)]
    )
    test_d = [(p, r) for p, r in zip(pred, test_t, strict=True) if r.dwell_h]
    d_err = [abs(p.dwell_h - r.dwell_h) for p, r in test_d]
    d_base = [abs(cond.dwell_median_h - r.dwell_h) for _, r in test_d]
    out["temperature"] = {
        "n": len(test_t),
        "model_mae_c": round(float(err.mean()), 1),
        "median_per_element_mae_c": round(float(base.mean()), 1),
        "ratio_model_to_baseline": round(float(err.mean() / base.mean()), 3),
        "model_median_ae_c": round(float(np.median(err)), 1),
        "dwell_n": len(test_d),
        "dwell_model_mae_h": round(float(np.mean(d_err)), 2) if d_err else None,
        "dwell_median_baseline_mae_h": round(float(np.mean(d_base)), 2) if d_base else None,
    }
    cond.std_c = float(np.sqrt(np.mean(err**2)))  # the held-out error is the model's uncertainty
    out["temperature"]["rmse_c"] = round(cond.std_c, 1)
    out["curated_ternary_oxides"] = _curated(split_year, learned, cond)
    out["total_seconds"] = round(time.perf_counter() - t0, 1)
    if math.isnan(out["temperature"]["model_mae_c"]):
        raise ValueError("temperature evaluation produced NaN")
    return out
