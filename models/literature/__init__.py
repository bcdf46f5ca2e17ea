"""Literature priors from the text-mined solid-state synthesis dataset (Kononova et al., 2019).

* :class:`PrecursorRecommender` — precursor sets by target similarity (learned composition embedding,
  He et al. 2023 style), ``priors.recommend(target, k, inventory)``; dopants follow a colon
  (``"SrAl2O4:Eu,Dy"``) and need their own precursor.
* :class:`ConditionModel` — firing temperature and dwell time (Huo et al. 2022 features),
  ``priors.predict_conditions(target, precursors)``.
* :func:`load_priors` — trained priors from the cache (trains once per dataset version) or None with
  the reason, so planning works on thermodynamics alone without the dataset.
* :mod:`.evaluate` — publication-year split benchmark (``labos bench priors``).
"""

from labos.models.literature.priors import LiteraturePriors, get_priors, load_priors
from labos.models.literature.recommender import PrecursorRecommender, Recommendation
from labos.models.literature.temperature import ConditionModel, ConditionPrediction, ElementMedianBaseline

__all__ = [
    "ConditionModel",
    "ConditionPrediction",
    "ElementMedianBaseline",
    "LiteraturePriors",
    "PrecursorRecommender",
    "Recommendation",
    "get_priors",
    "load_priors",
]
