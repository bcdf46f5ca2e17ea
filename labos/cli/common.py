"""Helpers every CLI module shares: JSON output, clear errors instead of tracebacks."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print one JSON document on stdout (for --json)."""
    typer.echo(json.dumps(obj, indent=None, default=str))


def fail(message: str, code: int = 2) -> None:
    """Stop the command with a one-line error that names the problem."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def run_cli(app: typer.Typer) -> None:
    """Run the app, turning any LabosError or validation error into a clean message."""
    from pydantic import ValidationError

    from labos.errors import LabosError

    try:
        app(standalone_mode=True)
    except (LabosError, ValidationError, FileNotFoundError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        sys.exit(2)
