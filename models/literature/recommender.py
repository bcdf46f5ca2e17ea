"""Precursor recommendation by target similarity (after He et al., Sci. Adv. 9, eadg8180, 2023).

A small network learns a composition embedding by predicting which precursors the literature used
for each target (multi-label). To recommend for a new target, two stages:

1. Candidate pool: the most similar known targets in that embedding lend their precursor sets
   (precursors of elements the new target lacks dropped, missing elements completed with the
   precursor the network finds most likely for this target that also goes with the precursors kept,
   by their co-occurrence in the literature, so a nitrate set stays nitrate); the nearest targets by
   element fractions lend theirs too, under a vote of their own (the two similarities disagree often
   enough that each finds reported sets the other misses); a beam over per-element choices
   (ranked by the neighbours' per-precursor vote and the network) and single same-element
   substitutions of the best neighbour sets add the sets no neighbour used verbatim.
2. Re-ranking (:mod:`.rerank`): a gradient-boosted classifier scores each candidate from its
   neighbour votes, similarity, per-precursor likelihoods, co-occurrence of its precursors in the
   literature, how many known targets used exactly this set, and its shape. It is trained on the
   training data only, on targets held out by paper.

Trained with torch and scikit-learn; inference is numpy + scikit-learn, so planning never imports
torch.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from labos.models.literature.dataset import SynthesisRecord, split_target, target_fractions, target_key
from labos.models.literature.features import amounts, anion_class, fraction_vector, nonvolatile
from labos.models.literature.rerank import Candidate, SetReranker, feature_matrix

from labos.errors import FormulaError

MIN_PRECURSOR_COUNT = 3
N_NEIGHBOURS = 60
SIM_POWER = 6.0
SUBSTITUTION_PENALTY = 0.55
ELEMENT_OPTIONS = 5  # alternatives per element in the beam and for substitutions
BEAM = 40
SUBSTITUTE_TOP = 10  # best neighbour sets that get single substitutions
NETWORK_WEIGHT = 0.3  # weight of the network's P(precursor | target) beside the neighbour vote
RERANK_HOLDOUT = 0.25  # share of papers held out to train the re-ranker
RERANK_MAX_TARGETS = 6000  # per fold
RERANK_FOLDS = 2  # chosen on a 2015-2016 validation split (train <= 2014), not on the test years
# Weight of the co-occurrence (PMI) with the precursors kept from a neighbour's set when completing it.
# Validation (train <= 2014, 2015-2016): top-5 0.7872 at 0, 0.7904 at 0.3, 0.7896 at 0.5, 0.7892 at 1.0;
# top-3 0.7488 -> 0.7544 and pool coverage 0.849 -> 0.853 at 0.5.
COMPLETION_PMI = 0.5
# The second neighbour view (element fractions) was kept on validation, seeds 0-3, with the set-count
# feature in both arms: top-5 78.85 -> 79.29 % on average (per seed -0.28, +0.76, +0.92, +0.36), pool
# coverage 85.0-85.2 -> 86.0-86.3 % on every seed.


@dataclass
class Recommendation:
    precursors: tuple[str, ...]
    score: float
    similar_targets: list[str] = field(default_factory=list)


@dataclass
class _Pool:
    """A target's candidate sets with what the features need: per-precursor vote share and P(p|t)."""

    sets: dict[tuple[str, ...], Candidate]
    share: dict[str, float]
    probs: np.ndarray
    need: frozenset[str]


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows (or a vector) scaled to unit length, for cosine similarity."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-9)


class PrecursorRecommender:
    """Learned-similarity recommender; ``embedding='raw'`` uses element fractions (the baseline).

    ``rerank=False`` ranks the neighbour-vote pool alone (the first stage; the earlier pipeline).
    """

    rerank: bool = True
    reranker: SetReranker | None = None

    def __init__(
        self,
        embedding: str = "learned",
        epochs: int = 25,
        seed: int = 0,
        hidden: int = 128,
        dim: int = 64,
        rerank: bool = True,
    ):
        if embedding not in ("learned", "raw"):
            raise ValueError(f"embedding must be 'learned' or 'raw', not {embedding!r}")
        self.embedding = embedding
        self.epochs, self.seed, self.hidden, self.dim = epochs, seed, hidden, dim
        self.rerank = rerank
        self.weights: list[np.ndarray] = []
        self.labels: list[str] = []

    # ------------------------------------------------------------------ training

    def fit(self, records: Iterable[SynthesisRecord]) -> PrecursorRecommender:
        records = list(records)
        self._fit_base(records)
        self.reranker = self._fit_reranker(records) if self.rerank else None
        return self

    def _fit_base(self, records: list[SynthesisRecord]) -> PrecursorRecommender:
        by_target: dict[str, Counter] = defaultdict(Counter)
        fractions: dict[str, dict[str, float]] = {}
        for r in records:
            by_target[r.target][r.precursors] += 1
            fractions.setdefault(r.target, r.elements)
        if not by_target:
            raise ValueError("no synthesis records to fit the precursor recommender on")
        self.targets = sorted(by_target)
        self.sets = [by_target[t] for t in self.targets]
        self.x = np.stack([fraction_vector(fractions[t]) for t in self.targets])
        counts = Counter(p for c in self.sets for s, n in c.items() for p in s for _ in range(n))
        self.labels = sorted(p for p, n in counts.items() if n >= MIN_PRECURSOR_COUNT)
        self.label_index = {p: i for i, p in enumerate(self.labels)}
        self.label_nonvolatile = [nonvolatile(p) for p in self.labels]
        self.freq = np.array([counts[p] for p in self.labels], dtype=float)
        # most common precursors per element: the fallback completion and the beam's options
        per_el: dict[str, Counter] = defaultdict(Counter)
        for p, n in counts.items():
            for el in nonvolatile(p):
                per_el[el][p] += n
        self.per_element = {el: [p for p, _ in c.most_common(30)] for el, c in per_el.items()}
        # share of each precursor among all uses of its elements, and pair co-occurrence (PMI)
        self.element_share = {
            p: float(np.mean([per_el[el][p] / sum(per_el[el].values()) for el in nonvolatile(p)]))
            for p in self.labels
            if nonvolatile(p)
        }
        self.n_sets = sum(n for c in self.sets for n in c.values())
        pairs: Counter = Counter()
        for c in self.sets:
            for s, n in c.items():
                vocab = [p for p in s if p in self.label_index]
                for a, p in enumerate(vocab):
                    for q in vocab[a + 1 :]:
                        pairs[(p, q)] += n
        self.pair_counts = dict(pairs)
        if self.embedding == "learned":
            self._train()
        self.emb = self._embed(self.x)
        self.set_targets = Counter(s for c in self.sets for s in c)
        return self

    def _fit_reranker(self, records: list[SynthesisRecord]) -> SetReranker:
        """Train the re-ranker on pools for targets of held-out papers (a first stage without them).

        The papers are split into ``1 / RERANK_HOLDOUT`` folds; for ``RERANK_FOLDS`` of them a first
        stage is fitted on the other papers and pools are built for the targets only the held-out
        papers report — the situation of an unseen target in a later paper.
        """
        rng = np.random.default_rng(self.seed)
        dois = sorted({r.doi for r in records})
        n_folds = max(2, round(1 / RERANK_HOLDOUT))
        fold_of = dict(zip(dois, rng.integers(0, n_folds, len(dois)).tolist(), strict=True))
        xs, ys = [], []
        for fold in range(min(RERANK_FOLDS, n_folds)):
            kept = [r for r in records if fold_of[r.doi] != fold]
            seen = {r.target for r in kept}
            truth: dict[str, set[tuple[str, ...]]] = defaultdict(set)
            fractions: dict[str, dict[str, float]] = {}
            for r in records:
                if fold_of[r.doi] == fold and r.target not in seen:
                    truth[r.target].add(r.precursors)
                    fractions.setdefault(r.target, r.elements)
            if not kept or not truth:
                continue
            first = PrecursorRecommender(
                self.embedding, self.epochs, self.seed + fold, self.hidden, self.dim, rerank=False
            )
            first._fit_base(kept)
            names = sorted(truth)
            if len(names) > RERANK_MAX_TARGETS:
                names = sorted(rng.choice(names, RERANK_MAX_TARGETS, replace=False).tolist())
            for t in names:
                pool = first._pool(fractions[t], None)
                if not pool.sets:
                    continue
                sets, feats = first._featurize(pool)
                labels = np.array([s in truth[t] for s in sets], dtype=np.int8)
                if labels.any():  # a pool without a reported set teaches nothing about ranking
                    xs.append(feats)
                    ys.append(labels)
        if not xs:
            return SetReranker(self.seed).fit(np.zeros((0, 1)), np.zeros(0))
        return SetReranker(self.seed).fit(np.concatenate(xs), np.concatenate(ys))

    def _train(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        rows, cols = [], []
        for i, c in enumerate(self.sets):
            for s in c:
                for p in s:
                    j = self.label_index.get(p)
                    if j is not None:
                        rows.append(i)
                        cols.append(j)
        y = torch.zeros(len(self.targets), len(self.labels))
        y[rows, cols] = 1.0
        x = torch.tensor(self.x)
        n_in = x.shape[1]
        net = torch.nn.Sequential(
            torch.nn.Linear(n_in, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, self.dim),
            torch.nn.ReLU(),
            torch.nn.Linear(self.dim, len(self.labels)),
        )
        opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-5)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        gen = torch.Generator().manual_seed(self.seed)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny network: one thread is fastest on a shared machine
        try:
            for _ in range(self.epochs):
                perm = torch.randperm(len(x), generator=gen)
                for start in range(0, len(x), 256):
                    idx = perm[start : start + 256]
                    opt.zero_grad()
                    loss = loss_fn(net(x[idx]), y[idx])
                    loss.backward()
                    opt.step()
        finally:
            torch.set_num_threads(threads)
        self.weights = [t.detach().numpy().astype(np.float32).copy() for t in net.parameters()]

    @cached_property
    def emb_raw(self) -> np.ndarray:
        """Known targets by element fractions (the second neighbour view); derived, so not pickled."""
        return _unit(np.sqrt(self.x))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("emb_raw", None)  # as large as the embedding; recomputed from x on first use
        return state

    # ------------------------------------------------------------------ inference

    def _hidden(self, x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self.weights[:4]
        return _relu(_relu(x @ w1.T + b1) @ w2.T + b2)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        return _unit(self._hidden(x) if self.embedding == "learned" else np.sqrt(x))

    def label_probabilities(self, x: np.ndarray) -> np.ndarray:
        """P(precursor used | target) from the network (frequency prior for the raw baseline)."""
        if self.embedding != "learned":
            return self.freq / self.freq.max()
        w3, b3 = self.weights[4:6]
        logits = self._hidden(x[None, :]) @ w3.T + b3
        return 1.0 / (1.0 + np.exp(-logits[0]))

    def recommend(
        self,
        target: str | dict[str, float],
        k: int = 5,
        inventory: Iterable[str] | None = None,
        exclude_target: bool = False,
    ) -> list[Recommendation]:
        """Top-``k`` precursor sets (reduced formulas) for ``target``; ``inventory`` limits the choice.

        ``target`` is a formula, a formula with dopants after a colon (``"SrAl2O4:Eu,Dy"``; charges
        and amounts such as ``Eu2+`` or ``Eu0.01`` are allowed and ignored: each dopant counts as
        ``dataset.DOPANT_SHARE`` of the atoms and needs a precursor) or element fractions.
        """
        from pymatgen.core import Composition, Element

        if isinstance(target, str):
            fr = target_fractions(target)
        else:
            fr = dict(target)
        if not fr or not all(Element.is_valid_symbol(el) for el in fr):
            raise FormulaError(f"target {target!r} is not a formula of known elements")
        allowed = None if inventory is None else {Composition(p).reduced_formula for p in inventory}
        exclude = None
        if exclude_target:
            if isinstance(target, str):
                host, dopants = split_target(target)
                tkey = target_key(Composition(host).reduced_formula, dopants - set(amounts(host)))
            else:
                tkey = Composition(fr).reduced_formula
            exclude = {i for i, t in enumerate(self.targets) if t == tkey}
        pool = self._pool(fr, allowed, exclude)
        if not pool.sets:
            return []
        if self.reranker is None:
            ranked = sorted(pool.sets.items(), key=lambda kv: (-kv[1].vote, kv[0]))[:k]
            return [Recommendation(p, float(c.vote), list(c.similar)) for p, c in ranked]
        sets, feats = self._featurize(pool)
        scores = self.reranker.score(feats, sets)
        order = sorted(range(len(sets)), key=lambda i: (-scores[i], sets[i]))[:k]
        return [Recommendation(sets[i], float(scores[i]), list(pool.sets[sets[i]].similar)) for i in order]

    # ------------------------------------------------------------------ candidate pool

    def _neighbours(
        self, emb: np.ndarray, e: np.ndarray, exclude: set[int] | None
    ) -> list[tuple[int, float]]:
        sims = emb @ e
        order = np.argsort(-sims, kind="stable")
        out = []
        for j in order:
            if exclude and int(j) in exclude:
                continue
            out.append((int(j), float(sims[j])))
            if len(out) >= N_NEIGHBOURS:
                break
        return out

    def _pool(self, fr: dict[str, float], allowed: set[str] | None, exclude: set[int] | None = None):
        """Candidate sets for a target with their first-stage evidence (see the module docstring)."""
        need = frozenset(fr) - {"O", "C", "H", "N"}
        x = fraction_vector(fr)
        probs = self.label_probabilities(x)
        pool: dict[tuple[str, ...], Candidate] = defaultdict(Candidate)
        pvote: dict[str, float] = defaultdict(float)
        wsum = 0.0
        for j, sim in self._neighbours(self.emb, self._embed(x[None, :])[0], exclude):
            w = max(sim, 0.0) ** SIM_POWER
            wsum += w
            for p in {p for s in self.sets[j] for p in s}:
                pvote[p] += w
            for c, n_sub, count in self._lend(j, pool, need, probs, allowed):
                c.vote += w * (1.0 + math.log(count)) * SUBSTITUTION_PENALTY**n_sub
                c.sources += 1
                c.max_similarity = max(c.max_similarity, sim)
                if len(c.similar) < 3 and self.targets[j] not in c.similar:
                    c.similar.append(self.targets[j])
        if self.embedding == "learned":  # the second view: nearest targets by element fractions
            for j, sim in self._neighbours(self.emb_raw, _unit(np.sqrt(x)), exclude):
                w = max(sim, 0.0) ** SIM_POWER
                for c, n_sub, count in self._lend(j, pool, need, probs, allowed):
                    c.vote_raw += w * (1.0 + math.log(count)) * SUBSTITUTION_PENALTY**n_sub
        share = {p: v / max(wsum, 1e-12) for p, v in pvote.items()}
        inv = sorted(allowed) if allowed is not None else []

        def name(i: int) -> str:
            return self.labels[i] if i >= 0 else inv[-1 - i]

        def pscore(i: int) -> float:
            return share.get(name(i), 0.0) + (NETWORK_WEIGHT * float(probs[i]) if i >= 0 else 0.0)

        options = {}
        for el in need:
            cands = self._candidates(el, need, allowed)
            options[el] = sorted(cands, key=lambda i: (-pscore(i), name(i)))[:ELEMENT_OPTIONS]
        if all(options.values()):  # else some element has no precursor: only neighbour sets
            self._beam(need, options, name, pscore, pool)
            self._substitutions(options, name, pool)
        return _Pool(dict(pool), share, probs, need)

    def _lend(self, j: int, pool, need, probs, allowed):
        """Neighbour ``j``'s sets adapted to the target: (its pool entry, substitutions, count)."""
        for pset, count in self.sets[j].items():
            adapted = self._adapt(pset, need, probs, allowed)
            if adapted is None:
                continue
            new, n_sub = adapted
            c = pool[new]
            c.min_substitutions = min(c.min_substitutions, n_sub)
            yield c, n_sub, count

    def _beam(self, need, options, name, pscore, pool) -> None:
        states: list[tuple[float, frozenset[str], tuple[str, ...]]] = [(0.0, frozenset(), ())]
        for el in sorted(need, key=lambda el: (len(options[el]), el)):
            grown = []
            for score, covered, chosen in states:
                if el in covered:
                    grown.append((score, covered, chosen))
                    continue
                for i in options[el]:
                    p = name(i)
                    grown.append((score + math.log(pscore(i) + 1e-4), covered | nonvolatile(p), (*chosen, p)))
            grown.sort(key=lambda s: (-s[0], s[2]))
            states = grown[:BEAM]
        for score, covered, chosen in states:
            if covered == need:
                c = pool[tuple(sorted(set(chosen)))]
                c.beam = max(c.beam, score)

    def _substitutions(self, options, name, pool) -> None:
        best = sorted(pool.items(), key=lambda kv: (-kv[1].vote, kv[0]))[:SUBSTITUTE_TOP]
        for s, _ in best:
            for a, p in enumerate(s):
                elements = nonvolatile(p)
                if len(elements) != 1:
                    continue
                for i in options.get(next(iter(elements)), []):
                    q = name(i)
                    if q != p and nonvolatile(q) == elements:
                        pool.setdefault(tuple(sorted({*s[:a], q, *s[a + 1 :]})), Candidate())

    def _pmi(self, p: str, q: str) -> float:
        key = (p, q) if p < q else (q, p)
        n = self.pair_counts.get(key, 0)
        cp = self.freq[self.label_index[p]] if p in self.label_index else 0.0
        cq = self.freq[self.label_index[q]] if q in self.label_index else 0.0
        return math.log((n + 0.5) * self.n_sets / ((cp + 1.0) * (cq + 1.0)))

    def _featurize(self, pool: _Pool) -> tuple[list[tuple[str, ...]], np.ndarray]:
        members = {p for s in pool.sets for p in s}
        prob = {p: float(pool.probs[self.label_index[p]]) for p in members if p in self.label_index}
        elfreq = {p: self.element_share.get(p, 0.0) for p in members}
        return feature_matrix(
            pool.sets, pool.share, prob, elfreq, self._pmi, anion_class, len(pool.need), self.set_targets
        )

    def _candidates(self, element: str, need: frozenset[str], allowed: set[str] | None) -> list[int]:
        out = []
        for p in self.per_element.get(element, []):
            i = self.label_index.get(p)
            if i is None or not self.label_nonvolatile[i] <= need:
                continue
            if allowed is not None and p not in allowed:
                continue
            out.append(i)
        if allowed is not None:  # the inventory may hold precursors the literature rarely used
            for p in allowed:
                if element in nonvolatile(p) and nonvolatile(p) <= need and p not in self.label_index:
                    out.append(-1 - sorted(allowed).index(p))
        return out

    def _complete(self, keep: tuple[str, ...], need, probs, allowed) -> tuple[str, ...] | None:
        chosen = list(keep)
        covered = frozenset().union(*(nonvolatile(p) for p in chosen)) if chosen else frozenset()
        added = 0
        for el in sorted(need - covered):
            if el in covered:
                continue
            cands = self._candidates(el, need, allowed)
            if not cands:
                return None
            kept = [q for q in chosen if q in self.label_index]
            best = max(cands, key=lambda i: self._completion_score(i, probs, kept))
            p = self.labels[best] if best >= 0 else sorted(allowed)[-1 - best]  # type: ignore[index]
            chosen.append(p)
            covered |= nonvolatile(p)
            added += 1
        return tuple(sorted(set(chosen)))

    def _completion_score(self, i: int, probs: np.ndarray, kept: list[str]) -> tuple[float, int]:
        """How well precursor ``i`` completes a set: P(i | target) and its co-occurrence with ``kept``.

        Conditioning on the precursors already chosen keeps a set's route (nitrates with nitrates,
        acetates with acetates), as He et al.'s masked precursor completion does.
        """
        if i < 0:  # an inventory precursor the literature rarely used: last resort
            return (math.log(1e-4), -i)
        p = self.labels[i]
        pmi = sum(self._pmi(p, q) for q in kept) / len(kept) if kept else 0.0
        return (math.log(max(float(probs[i]), 1e-4)) + COMPLETION_PMI * pmi, -i)

    def _adapt(self, pset, need, probs, allowed):
        keep = tuple(
            p for p in pset if nonvolatile(p) and nonvolatile(p) <= need and (allowed is None or p in allowed)
        )
        done = self._complete(keep, need, probs, allowed)
        if done is None:
            return None
        n_sub = (len(pset) - len(keep)) + (len(done) - len(keep))
        return done, n_sub
