"""Fitted XRD curves kept next to the raw pattern, so the console can draw the fit later.

``labos.models.xrd.analyze`` returns an AnalysisResult holding the curves (x, observed, calculated,
background, one curve and tick marks per phase) but the ``outcomes`` row keeps only the Outcome.
Whoever runs the analysis calls :func:`save_fit` (``<pattern file>.fit.json``); :func:`load_fit`
reads it back for the XRD plot and the exports.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "labos.xrd-fit/1"


def fit_path(xrd_file: str | Path) -> Path:
    p = Path(xrd_file)
    return p.with_name(p.name + ".fit.json")


def _floats(values: Any) -> list[float] | None:
    if values is None:
        return None
    out = [float(v) for v in list(values)]
    return [v if math.isfinite(v) else 0.0 for v in out]


def save_fit(result: Any, xrd_file: str | Path) -> Path | None:
    """Write the curves of an AnalysisResult next to ``xrd_file``; None when it holds no curves.

    Written atomically (temp file + rename) so a reader never sees half a file."""
    if getattr(result, "x", None) is None or getattr(result, "calculated", None) is None:
        return None
    curves = getattr(result, "phase_curves", {}) or {}
    phases = []
    for d in getattr(result, "details", []) or []:
        phases.append(
            {
                "name": d.name,
                "formula": d.formula,
                "spacegroup": getattr(d, "spacegroup", None),
                "weight_fraction": float(d.weight_fraction),
                "uncertainty": float(getattr(d, "uncertainty", 0.0) or 0.0),
                "curve": _floats(curves.get(d.name)),
                "ticks": _floats(getattr(d, "ticks", None)),
            }
        )
    doc = {
        "format": FORMAT,
        "x": _floats(result.x),
        "observed": _floats(result.observed),
        "calculated": _floats(result.calculated),
        "background": _floats(getattr(result, "background", None)),
        "phases": phases,
        "rwp": getattr(result, "rwp", None),
        "confidence": getattr(result, "confidence", None),
    }
    path = fit_path(xrd_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, path)
    return path


def load_fit(xrd_file: str | Path) -> dict[str, Any] | None:
    """The saved curves, or None when there are none (or the file is not a fit this code wrote)."""
    path = fit_path(xrd_file)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not doc.get("x"):
        return None
    n = len(doc["x"])
    for key in ("observed", "calculated", "background"):
        if doc.get(key) is not None and len(doc[key]) != n:
            doc[key] = None
    for p in doc.get("phases", []):
        if p.get("curve") is not None and len(p["curve"]) != n:
            p["curve"] = None
    return doc
