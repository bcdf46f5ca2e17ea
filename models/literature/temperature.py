"""Heating temperature and dwell time from precursor and target features (after Huo et al., 2022).

Huo et al. (Chem. Mater. 34, 7323, 2022) found that the firing temperature tracks precursor
stability — melting/decomposition points, formation enthalpies — and the chemistry (which elements),
more than reaction energies. Features here: the target's element fractions, precursor melting points
and formation enthalpies (min/mean/max), precursor kinds (carbonate, nitrate, ...), the literature's
median temperature for each precursor and for each element (learned from the training split only),
and set sizes. Model: gradient-boosted trees (scikit-learn), absolute-error loss. The baseline the
benchmark compares against is the median temperature per element, averaged over the target's elements.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from labos.models.literature.dataset import SynthesisRecord
from labos.models.literature.features import (
    ANION_CLASSES,
    anion_class,
    formation_enthalpy,
    fraction_vector,
    melting_k,
    nonvolatile,
)

# Typical held-out error of the temperature model (RMSE on the 2016/2017 year split, °C); see
# ``labos bench priors``.
DEFAULT_STD_C = 190.0


@dataclass
class ConditionPrediction:
    temperature_c: float
    dwell_h: float
    temperature_std_c: float
    baseline_temperature_c: float


def _stats(values: list[float]) -> list[float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return [math.nan, math.nan, math.nan]
    return [min(vals), sum(vals) / len(vals), max(vals)]


class ElementMedianBaseline:
    """Median literature temperature per element, averaged over the target's elements."""

    def fit(self, records: Iterable[SynthesisRecord], attr: str = "temperature_c") -> ElementMedianBaseline:
        per: dict[str, list[float]] = defaultdict(list)
        allv: list[float] = []
        for r in records:
            v = getattr(r, attr)
            if v is None:
                continue
            allv.append(v)
            for el in set(r.elements) - {"O", "C", "H", "N"}:
                per[el].append(v)
        self.global_median = float(np.median(allv)) if allv else math.nan
        self.median = {el: float(np.median(v)) for el, v in per.items()}
        return self

    def predict(self, elements: Iterable[str]) -> float:
        vals = [self.median[el] for el in set(elements) - {"O", "C", "H", "N"} if el in self.median]
        return float(np.mean(vals)) if vals else self.global_median


class ConditionModel:
    """Gradient-boosted trees for firing temperature (°C) and dwell time (h)."""

    def fit(self, records: Sequence[SynthesisRecord]) -> ConditionModel:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        usable = [r for r in records if r.temperature_c is not None and 200 <= r.temperature_c <= 1800]
        self.baseline = ElementMedianBaseline().fit(usable)
        per_prec: dict[str, list[float]] = defaultdict(list)
        for r in usable:
            for p in r.precursors:
                per_prec[p].append(r.temperature_c)  # type: ignore[arg-type]
        self.precursor_median = {p: float(np.median(v)) for p, v in per_prec.items() if len(v) >= 3}
        x = np.stack([self.features(r.elements, r.precursors) for r in usable])
        y = np.array([r.temperature_c for r in usable])
        with threadpool_limits(1):  # OpenMP threads only contend on a small, shared machine
            self.t_model = HistGradientBoostingRegressor(
                loss="absolute_error",
                max_iter=200,
                learning_rate=0.1,
                max_bins=64,
                early_stopping=False,
                random_state=0,
            ).fit(x, y)
        timed = [(i, r) for i, r in enumerate(usable) if r.dwell_h]
        self.dwell_median_h = float(np.median([r.dwell_h for _, r in timed])) if timed else 4.0
        if len(timed) > 50:
            with threadpool_limits(1):
                self.d_model = HistGradientBoostingRegressor(
                    loss="absolute_error",
                    max_iter=100,
                    learning_rate=0.1,
                    max_bins=64,
                    early_stopping=False,
                    random_state=0,
                ).fit(x[[i for i, _ in timed]], np.log([r.dwell_h for _, r in timed]))
        else:
            self.d_model = None
        self.std_c = DEFAULT_STD_C  # replaced by the held-out error when evaluated
        return self

    def features(self, elements: dict[str, float], precursors: Sequence[str]) -> np.ndarray:
        kinds = [anion_class(p) for p in precursors]
        melts = [melting_k(p) for p in precursors]
        enth = [formation_enthalpy(p) for p in precursors]
        prec_t = [self.precursor_median.get(p, math.nan) for p in precursors]
        cations = [p for p in precursors if nonvolatile(p)]
        extra = [
            len(precursors),
            len(set(elements) - {"O", "C", "H", "N"}),
            *_stats(melts),
            *_stats(enth),
            *_stats(prec_t),
            self.baseline.predict(elements),
            len(cations),
            *[kinds.count(k) for k in ANION_CLASSES],
        ]
        return np.concatenate([fraction_vector(elements), np.array(extra, dtype=np.float32)])

    def predict(self, elements: dict[str, float], precursors: Sequence[str]) -> ConditionPrediction:
        return self.predict_many([(elements, precursors)])[0]

    def predict_many(
        self, items: Sequence[tuple[dict[str, float], Sequence[str]]]
    ) -> list[ConditionPrediction]:
        """Batch prediction (one call into the trees: single rows are dominated by overhead)."""
        from threadpoolctl import threadpool_limits

        if not items:
            return []
        x = np.stack([self.features(e, p) for e, p in items])
        with threadpool_limits(1):
            t = self.t_model.predict(x)
            d = (
                np.exp(self.d_model.predict(x))
                if self.d_model is not None
                else np.full(len(x), self.dwell_median_h)
            )
        return [
            ConditionPrediction(
                temperature_c=float(t[i]),
                dwell_h=float(d[i]),
                temperature_std_c=self.std_c,
                baseline_temperature_c=self.baseline.predict(e),
            )
            for i, (e, _) in enumerate(items)
        ]
