"""``labos thermo``: reaction energies, Gibbs energies, stability and pairwise reactions.
Temperatures at this interface are in °C (converted to kelvin inside). Also ``labos bench thermo``."""

from __future__ import annotations

import typer

from labos.cli.bench import bench_app
from labos.cli.common import console, emit_json, fail

app = typer.Typer(no_args_is_help=True, help="Thermodynamics: reaction energies, Gibbs energies, hulls.")

SOURCE_HELP = (
    "energy source in priority order (exp, calc, mp, a summary .csv, a CIF folder); default: embedded"
)
ATM_HELP = "atmosphere: air, O2, N2, Ar, CO2, H2/Ar, vacuum, air_co2_rich, standard"


def _db(sources: list[str] | None):
    from labos.models.thermo import ThermoDB

    return ThermoDB.from_sources(sources) if sources else ThermoDB.default()


def _kelvin(celsius: float) -> float:
    return float(celsius) + 273.15


def _guard(fn):
    """Run ``fn`` turning labos and validation errors into one-line messages."""
    from pydantic import ValidationError

    from labos.errors import LabosError

    try:
        return fn()
    except (LabosError, ValidationError) as exc:
        fail(str(exc))


@app.command("reaction")
def reaction(
    equation: str = typer.Argument(..., help='e.g. "BaCO3 + TiO2 -> BaTiO3 + CO2"'),
    temperature_c: float = typer.Option(25.0, "--T", "--temperature", help="temperature, °C"),
    atmosphere: str = typer.Option("air", "--atmosphere", help=ATM_HELP),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Balance a reaction (gases of the air may enter or leave) and print ΔG(T)."""
    from labos.models.thermo import parse_reaction

    def run():
        reactants, products = parse_reaction(equation)
        db = _db(source)
        return db.reaction_energy(reactants, products, _kelvin(temperature_c), atmosphere=atmosphere)

    r = _guard(run)
    out = {
        "equation": r.equation,
        "temperature_c": temperature_c,
        "temperature_k": r.temperature_k,
        "atmosphere": atmosphere,
        "dG_per_atom_eV": r.per_atom,
        "dG_per_formula_unit_eV": r.per_formula_unit,
        "dG_per_formula_unit_kJ_mol": r.per_formula_unit * 96.485332,
        "coefficients": r.coefficients,
        "estimated": r.estimated,
        "volume_estimated": r.volume_estimated,
    }
    if json_out:
        emit_json(out)
        return
    console.print(r.equation)
    console.print(
        f"ΔG({temperature_c:g} °C, {atmosphere}) = {r.per_atom:.4f} eV/atom, "
        f"{r.per_formula_unit:.3f} eV ({out['dG_per_formula_unit_kJ_mol']:.1f} kJ/mol) per formula unit"
    )
    if r.volume_estimated:
        console.print("[dim]note: G^δ(T) used estimated volumes (no structure known)[/]")
    if r.estimated:
        console.print("[yellow]note: an energy is a composition-model estimate[/]")


@app.command("gibbs")
def gibbs_cmd(
    formula: str,
    temperature_c: float = typer.Option(25.0, "--T", "--temperature", help="temperature, °C"),
    atmosphere: str = typer.Option("air", "--atmosphere", help=ATM_HELP),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Gibbs energy of formation of one phase at temperature."""
    g = _guard(lambda: _db(source).gibbs(formula, _kelvin(temperature_c), atmosphere))
    if json_out:
        emit_json(g.model_dump() | {"temperature_c": temperature_c})
        return
    console.print(
        f"ΔG_f({g.formula}, {temperature_c:g} °C) = {g.per_atom:.4f} eV/atom, {g.per_formula_unit:.3f} eV per "
        f"formula unit ({g.phase}, source {g.source}{', volume estimated' if g.volume_estimated else ''})"
    )


@app.command("ehull")
def ehull(
    formula: str,
    temperature_c: float = typer.Option(None, "--T", "--temperature", help="°C; default: 0 K enthalpy hull"),
    atmosphere: str = typer.Option("air", "--atmosphere", help=ATM_HELP),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Energy above hull and decomposition products of one phase."""
    t = None if temperature_c is None else _kelvin(temperature_c)
    s = _guard(lambda: _db(source).stability(formula, t, atmosphere))
    if json_out:
        emit_json({"formula": formula, "temperature_c": temperature_c} | s)
        return
    products = " + ".join(f"{v:.3f} {k}" for k, v in s["decomposition"].items())
    console.print(
        f"{formula}: {s['e_above_hull']:.4f} eV/atom above hull → {products} (source {s['source']})"
    )


@app.command("pairs")
def pairs(
    a: str,
    b: str,
    temperature_c: float = typer.Option(25.0, "--T", "--temperature", help="temperature, °C"),
    atmosphere: str = typer.Option("air", "--atmosphere", help=ATM_HELP),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Reactions between two phases at temperature, most exergonic first."""
    rx = _guard(lambda: _db(source).interface_reactions(a, b, _kelvin(temperature_c), atmosphere))
    if json_out:
        emit_json([r.model_dump() for r in rx])
        return
    if not rx:
        console.print(f"{a} and {b} do not react at {temperature_c:g} °C")
    for r in rx:
        console.print(f"x={r.x:.3f}  {r.energy_per_atom:8.4f} eV/atom  {r.equation}")


@app.command("phases")
def phases(
    elements: str = typer.Argument(..., help="chemical system, e.g. Ba-Ti-O"),
    temperature_c: float = typer.Option(25.0, "--T", "--temperature", help="temperature, °C"),
    atmosphere: str = typer.Option("air", "--atmosphere", help=ATM_HELP),
    source: list[str] = typer.Option(None, "--source", help=SOURCE_HELP),
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Phases stable at temperature (gases of the atmosphere included)."""
    names = _guard(lambda: _db(source).stable_phases(elements, _kelvin(temperature_c), atmosphere))
    if json_out:
        emit_json(names)
        return
    console.print(", ".join(names))


@app.command("melting")
def melting(formula: str, json_out: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Tabulated melting (or decomposition) temperature of a precursor, with its source."""
    from labos.models.thermo.properties import melting_info

    info = _guard(lambda: melting_info(formula))
    if info is None:
        fail(f"no melting point tabulated for {formula} (see models/thermo/data/melting_points.csv)")
    out = {
        "formula": info.formula,
        "temperature_c": info.temperature_k - 273.15,
        "temperature_k": info.temperature_k,
        "kind": info.kind,
        "source": info.source,
        "note": info.note,
    }
    if json_out:
        emit_json(out)
        return
    console.print(f"{info.formula} {info.kind} at {out['temperature_c']:.0f} °C ({info.source})")


@bench_app.command("thermo")
def bench_thermo(
    json_out: bool = typer.Option(False, "--json", help="print JSON"),
    limit: int = typer.Option(
        0, "--limit", help="check e_above_hull on at most this many MP entries (0: all)"
    ),
    skip_model: bool = typer.Option(
        False, "--skip-model", help="do not train/evaluate the composition model"
    ),
    repeats: int = typer.Option(5, "--repeats", help="phase-diagram builds per system size"),
) -> None:
    """Phase-diagram build times, e_above_hull agreement with the MP file, composition-model MAE."""
    from labos.models.thermo.bench import run_bench

    result = _guard(lambda: run_bench(limit=limit or None, model=not skip_model, repeats=repeats))
    if json_out:
        emit_json(result)
        return
    import json

    console.print_json(json.dumps(result, default=str))
