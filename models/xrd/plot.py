"""Plots of an analysis for the console: observed, calculated, difference and tick marks per phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labos.errors import LabosError


def plot_result(result, path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG or SVG (by suffix) of ``result`` (an AnalysisResult)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise LabosError(f"{path}: plots are written as .png, .svg or .pdf")
    if result.x is None:
        raise LabosError("this analysis result holds no curves to plot")
    x, yo, yc = result.x, result.observed, result.calculated
    n_ph = max(len(result.details), 1)
    fig, (ax, axd) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [4 + 0.4 * n_ph, 1.2]}
    )
    ax.plot(x, yo, ".", ms=1.5, color="0.25", label="observed")
    ax.plot(x, yc, "-", lw=0.9, color="tab:red", label="calculated")
    if result.background is not None:
        ax.plot(x, result.background, "-", lw=0.7, color="tab:green", label="background")
    top = float(np.max(yo)) if yo.size else 1.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, d in enumerate(result.details):
        c = colors[(i + 1) % len(colors)]
        base = -0.04 * top * (i + 1)
        ax.vlines(
            d.ticks,
            base - 0.015 * top,
            base + 0.015 * top,
            color=c,
            lw=0.8,
            label=f"{d.name} {100 * d.weight_fraction:.1f}±{100 * d.uncertainty:.1f} wt%",
        )
    ax.set_ylabel("counts")
    ax.legend(fontsize=8, loc="upper right")
    head = title or (Path(result.source).name if result.source else "XRD analysis")
    rwp = f"Rwp {100 * result.rwp:.2f}%" if result.rwp is not None else ""
    ax.set_title(f"{head}   {rwp}   confidence {result.confidence:.2f}", fontsize=10)
    axd.plot(x, yo - yc, "-", lw=0.6, color="tab:blue")
    axd.axhline(0, color="0.5", lw=0.5)
    axd.set_xlabel("2θ (°)")
    axd.set_ylabel("obs − calc")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
