"""``labos xrd``: phase identification and quantification of diffraction files, pattern simulation;
also ``labos bench xrd`` and ``labos bench xrd-sim``."""

from __future__ import annotations

from pathlib import Path

import typer

from labos.cli.bench import bench_app
from labos.cli.common import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="XRD: identify and quantify phases, simulate patterns.")


def _guard(fn):
    from pydantic import ValidationError

    from labos.errors import LabosError

    try:
        return fn()
    except (LabosError, ValidationError) as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _library(refs: Path | None, with_references: bool):
    from labos.models.xrd.library import PhaseLibrary, reference_library

    if refs is None:
        from labos.simulator.demo_chemistry import demo_structures

        lib = PhaseLibrary.from_structures(demo_structures(), source="labos demo structures")
    else:
        lib = PhaseLibrary.from_cif_dir(refs)
    if with_references:
        lib = lib.merged(reference_library())
    return lib


@app.command("analyze")
def analyze_cmd(
    patterns: list[Path] = typer.Argument(..., help="diffraction files: .xrdml, .xy, .brml"),
    refs: Path = typer.Option(None, "--refs", help="folder of CIF files (default: the demo structures)"),
    elements: str = typer.Option(None, "--elements", help="only phases made of these elements, e.g. Ti,Zn,O"),
    target: str = typer.Option(None, "--target", help="target formula: report its wt% and success"),
    threshold: float = typer.Option(None, "--threshold", help="success threshold (default: settings, 0.5)"),
    plot: Path = typer.Option(
        None, "--plot", help="folder for <pattern>.png fits (or a .svg/.png for one file)"
    ),
    with_references: bool = typer.Option(
        True, "--with-references/--no-references", help="add labos' own reference structures (MnCO3, α-Bi2O3)"
    ),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object per pattern"),
) -> None:
    """Identify the phases of each pattern and their weight fractions (Hill–Howard)."""
    from labos.config import get_settings
    from labos.models.xrd import analyze, read_pattern

    thr = threshold if threshold is not None else get_settings().success_threshold
    lib = _guard(lambda: _library(refs, with_references))
    if lib.problems and not json_out:
        for p in lib.problems:
            console.print(f"[yellow]skipped[/] {p}")
    for path in patterns:

        def run(path=path):
            pattern = read_pattern(path)
            return analyze(pattern, lib, elements=elements)

        result = _guard(run)
        result.source = str(path)
        out = result.to_dict(target=target, threshold=thr)
        if plot is not None:
            dest = (
                plot
                if plot.suffix.lower() in (".png", ".svg") and len(patterns) == 1
                else plot / f"{path.stem}.png"
            )
            out["plot"] = str(_guard(lambda dest=dest, result=result: result.plot(dest)))
        if json_out:
            emit_json(out)
            continue
        console.print(
            f"[bold]{path}[/]  Rwp {100 * (result.rwp or 0):.2f}%  confidence {result.confidence:.2f}"
            f"  ({result.seconds:.2f} s)"
        )
        for d in result.details:
            console.print(
                f"  {d.name:<16} {d.formula:<10} {d.spacegroup:<10} {100 * d.weight_fraction:6.2f} ± "
                f"{100 * d.uncertainty:.2f} wt%"
            )
        if not result.details:
            console.print("  no phase identified")
        for note in result.notes:
            console.print(f"  [dim]{note}[/]")
        if target:
            console.print(
                f"  target {out['target']}: {100 * out['target_fraction']:.1f} wt% → "
                f"{'success' if out['success'] else 'not made'} (confidence {out['decision_confidence']:.2f})"
            )


@app.command("simulate")
def simulate_cmd(
    phases: list[str] = typer.Argument(..., help="PHASE=FRACTION, e.g. TiO2=0.4 ZnO=0.6 (name or formula)"),
    out: Path = typer.Option(..., "--out", help="file to write (.xrdml or .xy)"),
    refs: Path = typer.Option(None, "--refs", help="folder of CIF files (default: the demo structures)"),
    seed: int = typer.Option(0, "--seed"),
    counting_time: float = typer.Option(12.5, "--counting-time", help="seconds per step"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Simulate a measured pattern of a phase mixture (Aeris-like instrument, Poisson noise)."""
    from labos.models.xrd.io import write_xrdml
    from labos.simulator.xrd import Instrument, synthesize

    def run():
        lib = _library(refs, True) if refs is not None else None
        mix: dict[str, float] = {}
        for item in phases:
            name, sep, frac = item.partition("=")
            if not sep:
                fail(f"{item!r}: write PHASE=FRACTION")
            try:
                mix[name] = float(frac)
            except ValueError:
                fail(f"{item!r}: {frac!r} is not a number")
        pattern = synthesize(mix, Instrument(counting_time_s=counting_time), seed=seed, library=lib)
        if out.suffix.lower() == ".xy":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(f"{a:.5f} {b:.1f}\n" for a, b in zip(pattern.x, pattern.y, strict=True)))
        else:
            write_xrdml(pattern, out)
        return pattern

    pattern = _guard(run)
    info = {"file": str(out), "points": len(pattern.two_theta), "phases": phases}
    if json_out:
        emit_json(info)
    else:
        console.print(f"wrote {out} ({info['points']} points)")


@bench_app.command("xrd")
def bench_xrd_cmd(
    n_synthetic: int = typer.Option(40, "--n", help="synthetic patterns (stratified 1–4 phases)"),
    seed: int = typer.Option(0, "--seed"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="also run the NNLS baseline"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Phase ID (P/R/F1, exact set), wt% MAE/max, >50 wt% decisions and seconds per pattern on
    synthetic patterns, the real weighed mixtures and the XRD-AutoAnalyzer scans."""
    from labos.models.xrd.benchmark import bench_xrd

    progress = None if json_out else (lambda m: console.print(f"[dim]{m}[/]"))
    result = _guard(
        lambda: bench_xrd(n_synthetic=n_synthetic, seed=seed, baseline=baseline, progress=progress)
    )
    if json_out:
        emit_json(result)
        return
    for name, g in result["groups"].items():
        r = g["refinement"]
        console.print(
            f"[bold]{name}[/] n={r['patterns']} F1={r['f1']} exact={r['exact_set_accuracy']} "
            f"MAE={r.get('wt_mae')} max={r.get('wt_max')} wt% decision={r.get('decision_accuracy')} "
            f"median={r['median_s']} s p90={r['p90_s']} s"
        )
        if "baseline_nnls" in g:
            b = g["baseline_nnls"]
            console.print(f"  baseline NNLS: F1={b['f1']} MAE={b.get('wt_mae')} median={b['median_s']} s")


@bench_app.command("xrd-sim")
def bench_xrd_sim_cmd(json_out: bool = typer.Option(False, "--json")) -> None:
    """How close simulated patterns are to the real scans of the same weighed mixtures."""
    from labos.models.xrd.benchmark import bench_xrd_sim

    progress = None if json_out else (lambda m: console.print(f"[dim]{m}[/]"))
    result = _guard(lambda: bench_xrd_sim(progress=progress))
    if json_out:
        emit_json(result)
        return
    for k, v in result["summary"].items():
        console.print(f"{k}: {v}")
