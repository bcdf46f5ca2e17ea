"""Continuous recipe parameters for one precursor set, tuned with the bayesian-optimization package.

Used once a set gives a partial yield: the discrete temperature ladder found the right region, and a
Gaussian-process optimiser (expected improvement) now moves temperature, dwell time and the choice
of an intermediate regrind-and-reheat to raise the target fraction.
"""

from __future__ import annotations

import contextlib
import io
import warnings

DWELL_RANGE_MIN = (60.0, 720.0)


class RecipeTuner:
    """Suggests (temperature °C, dwell min, regrind_reheat) for one set; deterministic per seed."""

    def __init__(self, t_min_c: float, t_max_c: float, seed: int = 0, budget: int = 6):
        from bayes_opt import BayesianOptimization, acquisition

        if t_max_c <= t_min_c:
            raise ValueError(f"tuning range is empty: {t_min_c} to {t_max_c} °C")
        self.bounds = {
            "temperature_c": (float(t_min_c), float(t_max_c)),
            "dwell_min": DWELL_RANGE_MIN,
            "regrind": (0.0, 1.0),
        }
        self.optimizer = BayesianOptimization(
            f=None,
            pbounds=self.bounds,
            random_state=seed,
            verbose=0,
            acquisition_function=acquisition.ExpectedImprovement(xi=0.01),
            allow_duplicate_points=True,
        )
        self._seen: set[tuple[float, float, bool]] = set()
        self._registered: set[tuple[float, float, bool]] = set()
        self.n_suggested = 0
        self.budget = budget

    def register(self, temperature_c: float, dwell_min: float, regrind: bool, target_fraction: float) -> None:
        key = (round(temperature_c, 1), round(dwell_min), bool(regrind))
        if key in self._seen:
            return
        self._seen.add(key)
        lo, hi = self.bounds["temperature_c"]
        params = {
            "temperature_c": min(max(temperature_c, lo), hi),
            "dwell_min": min(max(dwell_min, DWELL_RANGE_MIN[0]), DWELL_RANGE_MIN[1]),
            "regrind": 1.0 if regrind else 0.0,
        }
        # results outside the bounds are clamped onto them: the first one on a point stands for it
        point = (round(params["temperature_c"], 1), round(params["dwell_min"]), bool(regrind))
        if point in self._registered:
            return
        self._registered.add(point)
        # bayes_opt prints its notices to stdout, which carries the CLI's JSON: keep them out of it
        with contextlib.redirect_stdout(io.StringIO()):
            self.optimizer.register(params=params, target=float(target_fraction))

    def suggest(self) -> tuple[float, float, bool] | None:
        """Next (temperature °C rounded to 5, dwell min rounded to 10, regrind) or None if not new."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = self.optimizer.suggest()
        self.n_suggested += 1
        t = round(p["temperature_c"] / 5.0) * 5.0
        d = round(p["dwell_min"] / 10.0) * 10.0
        r = p["regrind"] >= 0.5
        if (round(t, 1), round(d), r) in self._seen:
            return None
        return t, d, r
