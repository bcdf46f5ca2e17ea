"""The ``labos`` command. Each area registers its own sub-command module below.

Sub-command modules import heavy libraries (pymatgen, torch) inside their commands, so that
``labos --help`` and shell completion stay fast.
"""

from __future__ import annotations

import importlib

import typer

from labos.cli.bench import bench_app
from labos.cli.common import run_cli

app = typer.Typer(
    name="labos",
    help="An autonomous lab for solid-state synthesis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# name -> module exposing ``app`` (a typer.Typer). Areas add one line each.
SUBCOMMANDS: dict[str, str] = {
    "sim": "labos.cli.sim",
    "campaigns": "labos.cli.campaigns",
    "experiments": "labos.cli.experiments",
    "samples": "labos.cli.samples",
    "devices": "labos.cli.devices",
    "inventory": "labos.cli.inventory",
    "interventions": "labos.cli.interventions",
    "control": "labos.cli.control",
    "events": "labos.cli.events",
    "export": "labos.cli.export",
    "users": "labos.cli.users",
    "serve": "labos.cli.serve",
    "thermo": "labos.cli.thermo",
    "targets": "labos.cli.targets",
    "data": "labos.cli.data",
    "plan": "labos.cli.plan",
    "xrd": "labos.cli.xrd",
    "campaign": "labos.cli.campaign",
}

for _name, _module in SUBCOMMANDS.items():
    app.add_typer(importlib.import_module(_module).app, name=_name)

# Modules that only register ``labos bench ...`` commands on bench_app.
BENCH_MODULES: list[str] = ["labos.cli.bench_drivers", "labos.lab.bench"]
for _module in BENCH_MODULES:
    importlib.import_module(_module)

app.add_typer(bench_app, name="bench", help="Benchmarks that print JSON (speed and accuracy).")
app.command("demo")(importlib.import_module("labos.cli.demo").demo)


@app.command()
def version() -> None:
    """Print the labos version."""
    from labos import __version__

    typer.echo(__version__)


def main() -> None:  # pragma: no cover
    run_cli(app)
