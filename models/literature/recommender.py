"""Precursor recommendation by target similarity (after He et al., Sci. Adv. 9, eadg8180, 2023).

A small network learns a composition embedding by predicting which precursors the literature used
for each target (multi-label). To recommend for a new target: find the most similar known targets in
that embedding, reuse their precursor sets (dropping precursors of elements the new target lacks),
complete missing elements with the precursor the network finds most likely for this target (else
the most common one for the element), and vote across neighbours. Trained with torch; inference is
plain numpy so planning never imports torch.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from labos.models.literature.dataset import SynthesisRecord
from labos.models.literature.features import fraction_vector, fractions_of, nonvolatile

MIN_PRECURSOR_COUNT = 3
N_NEIGHBOURS = 60
SIM_POWER = 6.0
SUBSTITUTION_PENALTY = 0.55


@dataclass
class Recommendation:
    precursors: tuple[str, ...]
    score: float
    similar_targets: list[str] = field(default_factory=list)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


class PrecursorRecommender:
    """Learned-similarity recommender; ``embedding='raw'`` uses element fractions (the baseline)."""

    def __init__(
        self, embedding: str = "learned", epochs: int = 25, seed: int = 0, hidden: int = 128, dim: int = 64
    ):
        if embedding not in ("learned", "raw"):
            raise ValueError(f"embedding must be 'learned' or 'raw', not {embedding!r}")
        self.embedding = embedding
        self.epochs, self.seed, self.hidden, self.dim = epochs, seed, hidden, dim
        self.weights: list[np.ndarray] = []
        self.labels: list[str] = []

    # ------------------------------------------------------------------ training

    def fit(self, records: Iterable[SynthesisRecord]) -> PrecursorRecommender:
        by_target: dict[str, Counter] = defaultdict(Counter)
        fractions: dict[str, dict[str, float]] = {}
        for r in records:
            by_target[r.target][r.precursors] += 1
            fractions.setdefault(r.target, r.elements)
        self.targets = sorted(by_target)
        self.sets = [by_target[t] for t in self.targets]
        self.x = np.stack([fraction_vector(fractions[t]) for t in self.targets])
        counts = Counter(p for c in self.sets for s, n in c.items() for p in s for _ in range(n))
        self.labels = sorted(p for p, n in counts.items() if n >= MIN_PRECURSOR_COUNT)
        self.label_index = {p: i for i, p in enumerate(self.labels)}
        self.label_nonvolatile = [nonvolatile(p) for p in self.labels]
        self.freq = np.array([counts[p] for p in self.labels], dtype=float)
        # most common precursor per element, the fallback completion
        per_el: dict[str, Counter] = defaultdict(Counter)
        for p, n in counts.items():
            for el in nonvolatile(p):
                per_el[el][p] += n
        self.per_element = {el: [p for p, _ in c.most_common(8)] for el, c in per_el.items()}
        if self.embedding == "learned":
            self._train()
        self.emb = self._embed(self.x)
        return self

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

    # ------------------------------------------------------------------ inference

    def _hidden(self, x: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self.weights[:4]
        return _relu(_relu(x @ w1.T + b1) @ w2.T + b2)

    def _embed(self, x: np.ndarray) -> np.ndarray:
        e = self._hidden(x) if self.embedding == "learned" else np.sqrt(x)
        norm = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.maximum(norm, 1e-9)

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
        """Top-``k`` precursor sets (reduced formulas) for ``target``; ``inventory`` limits the choice."""
        from pymatgen.core import Composition

        fr = fractions_of(target) if isinstance(target, str) else dict(target)
        tkey = Composition(fr).reduced_formula
        need = frozenset(fr) - {"O", "C", "H", "N"}
        allowed = None if inventory is None else {Composition(p).reduced_formula for p in inventory}
        x = fraction_vector(fr)
        e = self._embed(x[None, :])[0]
        sims = self.emb @ e
        probs = self.label_probabilities(x)
        order = np.argsort(-sims)
        scores: dict[tuple[str, ...], float] = defaultdict(float)
        sources: dict[tuple[str, ...], list[str]] = defaultdict(list)
        used = 0
        for j in order:
            if exclude_target and self.targets[j] == tkey:
                continue
            if used >= N_NEIGHBOURS:
                break
            used += 1
            s = max(float(sims[j]), 0.0) ** SIM_POWER
            for pset, count in self.sets[j].items():
                adapted = self._adapt(pset, need, probs, allowed)
                if adapted is None:
                    continue
                new, n_sub = adapted
                scores[new] += s * (1.0 + math.log(count)) * SUBSTITUTION_PENALTY**n_sub
                if len(sources[new]) < 3:
                    sources[new].append(self.targets[j])
        # the network's own per-element choice, as one more voter
        own = self._complete((), need, probs, allowed)
        if own is not None:
            scores[own] += 0.5 * max(scores.values(), default=1.0) * 0.5
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        return [Recommendation(p, float(v), sources.get(p, [])) for p, v in ranked]

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
            best = max(cands, key=lambda i: (probs[i] if i >= 0 else 0.0, -i))
            p = self.labels[best] if best >= 0 else sorted(allowed)[-1 - best]  # type: ignore[index]
            chosen.append(p)
            covered |= nonvolatile(p)
            added += 1
        return tuple(sorted(set(chosen)))

    def _adapt(self, pset, need, probs, allowed):
        keep = tuple(
            p for p in pset if nonvolatile(p) and nonvolatile(p) <= need and (allowed is None or p in allowed)
        )
        done = self._complete(keep, need, probs, allowed)
        if done is None:
            return None
        n_sub = (len(pset) - len(keep)) + (len(done) - len(keep))
        return done, n_sub
