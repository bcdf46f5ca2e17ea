"""``labos targets``: take in candidate targets (GNoME/MP summary CSV, CIF folder, formula list)
and screen them like the A-Lab did."""

from __future__ import annotations

from pathlib import Path

import typer

from labos.cli.common import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="Candidate targets: intake and screening.")


def _read_inventory(spec: str | None) -> list[str] | None:
    if not spec:
        return None
    path = Path(spec)
    if path.exists():
        lines = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
        return [ln.split(",")[0].strip() for ln in lines if ln]
    return [s.strip() for s in spec.split(",") if s.strip()]


@app.command("screen")
def screen_cmd(
    file: Path = typer.Argument(..., help="summary CSV (GNoME/MP format), folder of CIFs, or text list"),
    max_ehull: float = typer.Option(0.05, "--max-ehull", help="largest energy above hull, eV/atom"),
    inventory: str = typer.Option(
        None, "--inventory", help="precursor formulas: a file (one per line) or A,B,C"
    ),
    hazardous: str = typer.Option("", "--exclude", help="extra excluded elements, e.g. Pb,Cd,Hg"),
    air: bool = typer.Option(True, "--air/--no-air", help="check reactions with O2, CO2, H2O at room T"),
    source: list[str] = typer.Option(None, "--source", help="energy sources (default: MP summary + exp)"),
    estimate: bool = typer.Option(False, "--estimate", help="use the composition model for uncovered phases"),
    chgnet: bool = typer.Option(False, "--chgnet", help="CIF targets: energies from CHGNet (labos[chgnet])"),
    only_accepted: bool = typer.Option(False, "--accepted", help="list accepted targets only"),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Screen targets: energy above hull, air stability, obtainable and allowed elements."""
    from pydantic import ValidationError

    from labos.errors import LabosError
    from labos.models.thermo import ThermoDB, read_targets, screen

    try:
        cands = read_targets(file, energies="chgnet" if chgnet else None)
        db = None
        if source:
            db = ThermoDB.from_sources(source)
        if estimate:
            if db is None:
                try:
                    db = ThermoDB.with_mp()
                except LabosError:
                    db = ThermoDB.default()
            db.with_estimates()
        results = screen(
            cands,
            _read_inventory(inventory),
            db=db,
            max_ehull=max_ehull,
            hazardous=[h for h in hazardous.split(",") if h.strip()],
            check_air=air,
        )
    except (LabosError, ValidationError) as exc:
        fail(str(exc))
    if only_accepted:
        results = [r for r in results if r.accepted]
    if json_out:
        emit_json([r.model_dump() for r in results])
        return
    n_ok = sum(r.accepted for r in results)
    for r in results:
        eh = "   n/a" if r.e_above_hull is None else f"{r.e_above_hull:6.3f}"
        mark = "[green]accept[/]" if r.accepted else "[red]reject[/]"
        console.print(f"{mark} {r.formula:<16} {eh} eV/atom  {'; '.join(r.reasons)}")
    console.print(f"{n_ok} of {len(results)} accepted")
