"""Learned re-ranking of candidate precursor sets (the second stage of the recommender).

The first stage (:mod:`.recommender`) proposes a pool of candidate sets for a target: its most
similar known targets' sets (in the learned embedding and by element fractions) adapted to its
elements, per-element alternatives and single substitutions. Each candidate gets the features below
and a gradient-boosted classifier (scikit-learn) scores how likely it is a reported set. The
classifier is trained on the training years only, on papers held out: a first stage fitted without
them builds pools for the targets only they report (as for an unseen target of a later paper), and
their reported sets label the pools.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

FEATURES = (
    "log_vote",  # log of the similarity-weighted neighbour vote for this exact (adapted) set
    "rel_vote",  # vote / best vote in the pool
    "vote_rank",  # log(1 + rank by vote)
    "min_substitutions",  # fewest precursors changed to adapt a neighbour set into this one (9: none)
    "log_sources",  # log(1 + number of neighbour sets that adapt into this one)
    "max_similarity",  # cosine similarity of the most similar neighbour proposing it
    "mean_log_pvote",  # per-precursor neighbour vote share (log), mean over the set
    "min_log_pvote",
    "mean_log_prob",  # network P(precursor | target) (log), mean and min
    "min_log_prob",
    "mean_log_elfreq",  # share of the precursor among all uses of its element(s) (log), mean and min
    "min_log_elfreq",
    "mean_pair_pmi",  # how often the set's precursors appear together in the literature (PMI)
    "min_pair_pmi",
    "size",
    "extra",  # precursors beyond the number of non-volatile elements
    "n_elements",
    "anion_classes",  # distinct precursor kinds (oxide, carbonate, nitrate, ...)
    "beam_rel",  # log-score of the per-element beam relative to the best beam set
    "rel_log_pvote",  # mean_log_pvote, mean_log_prob and mean_pair_pmi minus their best in the pool
    "rel_log_prob",
    "rel_pair_pmi",
    "log_vote_raw",  # the same vote from the nearest targets by element fractions (a second view)
    "rel_vote_raw",
    "log_set_targets",  # log(1 + number of training targets made from exactly this set)
)


LEARNING_RATE = 0.05  # these three chosen on the 2015-2016 validation split
MAX_LEAF_NODES = 15
L2 = 1.0


@dataclass
class Candidate:
    """What the first stage knows about one candidate set."""

    vote: float = 0.0
    vote_raw: float = 0.0  # from the neighbours by element fractions
    min_substitutions: int = 9
    sources: int = 0
    max_similarity: float = 0.0
    beam: float = -math.inf
    similar: list[str] = field(default_factory=list)  # a few of the targets proposing it


def _safe_log(x: float, floor: float = 1e-4) -> float:
    return math.log(max(x, floor))


def feature_matrix(
    pool: dict[tuple[str, ...], Candidate],
    pvote: dict[str, float],
    prob: dict[str, float],
    elfreq: dict[str, float],
    pmi,
    anion,
    n_elements: int,
    set_targets: dict[tuple[str, ...], int],
) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """(sets, features) for a pool; ``pmi(p, q)``, ``anion(p)`` and ``set_targets`` come from the recommender."""
    sets = list(pool)
    votes = np.array([pool[s].vote for s in sets])
    best_vote = max(votes.max(initial=0.0), 1e-12)
    order = np.argsort(-votes, kind="stable")
    rank = np.empty(len(sets))
    rank[order] = np.arange(len(sets))
    beams = [pool[s].beam for s in sets]
    best_beam = max((b for b in beams if b > -math.inf), default=0.0)
    rows = []
    for i, s in enumerate(sets):
        c = pool[s]
        pv = [_safe_log(pvote.get(p, 0.0)) for p in s]
        pr = [_safe_log(prob.get(p, 0.0)) for p in s]
        ef = [_safe_log(elfreq.get(p, 0.0)) for p in s]
        pairs = [pmi(p, q) for a, p in enumerate(s) for q in s[a + 1 :]] or [0.0]
        rows.append(
            [
                _safe_log(c.vote, 1e-9),
                c.vote / best_vote,
                math.log1p(rank[i]),
                c.min_substitutions,
                math.log1p(c.sources),
                c.max_similarity,
                float(np.mean(pv)),
                min(pv),
                float(np.mean(pr)),
                min(pr),
                float(np.mean(ef)),
                min(ef),
                float(np.mean(pairs)),
                min(pairs),
                len(s),
                len(s) - n_elements,
                n_elements,
                len({anion(p) for p in s}),
                (c.beam - best_beam) if c.beam > -math.inf else -30.0,
            ]
        )
    x = np.asarray(rows, dtype=np.float64).reshape(len(sets), len(FEATURES) - 6)
    cols = [FEATURES.index(n) for n in ("mean_log_pvote", "mean_log_prob", "mean_pair_pmi")]
    rel = x[:, cols] - x[:, cols].max(axis=0, initial=-np.inf) if len(sets) else x[:, cols]
    raw = np.array([pool[s].vote_raw for s in sets])
    tail = np.column_stack(
        [
            np.log(np.maximum(raw, 1e-9)),
            raw / max(raw.max(initial=0.0), 1e-12),
            np.log1p([set_targets.get(s, 0) for s in sets]),
        ]
    )
    return sets, np.hstack([x, rel, tail.reshape(len(sets), 3)])


class SetReranker:
    """Gradient-boosted P(reported set | candidate features)."""

    def __init__(self, seed: int = 0, max_iter: int = 200):
        self.seed, self.max_iter = seed, max_iter
        self.model = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> SetReranker:
        from sklearn.ensemble import HistGradientBoostingClassifier

        if len(set(y.tolist())) < 2:  # too little data to learn from: rank by the vote alone
            self.model = None
            return self
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # small data on a shared machine: threads mostly wait on each other
            self.model = HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=LEARNING_RATE,
                max_leaf_nodes=MAX_LEAF_NODES,
                l2_regularization=L2,
                random_state=self.seed,
                early_stopping=False,
            ).fit(x, y)
        return self

    def score(self, x: np.ndarray, sets: Sequence[tuple[str, ...]]) -> np.ndarray:
        if len(sets) == 0:
            return np.zeros(0)
        if self.model is None:
            return x[:, FEATURES.index("log_vote")]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # a pool is ~100 rows: thread start-up would cost more than the trees
            return self.model.predict_proba(x)[:, 1]
