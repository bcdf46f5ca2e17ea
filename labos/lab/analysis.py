"""Analyzers turn a diffraction file into an Outcome; the lab calls one in its ``analyze`` task."""

from __future__ import annotations

from pathlib import Path

from labos.domain import Experiment, Outcome, parse_formula


def _elements(exp: Experiment) -> set[str]:
    from pymatgen.core import Composition

    els = set(Composition(parse_formula(exp.target.formula)).elements)
    for p in exp.recipe.precursors:
        els |= set(Composition(parse_formula(p)).elements)
    return {str(e) for e in els}


def xrd_analyzer(library, *, threshold: float | None = None):
    """Phase identification and quantification (``labos.models.xrd.analyze``) against ``library``
    (a PhaseLibrary, or name → pymatgen Structure), restricted to the experiment's elements (+O)."""
    from labos.config import get_settings

    thr = threshold if threshold is not None else get_settings().success_threshold

    def analyze(path: str, exp: Experiment, sample_id: str | None) -> Outcome:
        from labos.models.xrd import analyze as run_analysis
        from labos.models.xrd.fitfile import save_fit
        from labos.models.xrd.io import read_pattern

        pattern = read_pattern(Path(path))
        elements = _elements(exp) | {"O"}
        result = run_analysis(pattern, library, elements=elements)
        save_fit(result, path)  # the curves, for the console's XRD plot
        return result.to_outcome(exp.id, exp.target.formula, thr)

    return analyze
