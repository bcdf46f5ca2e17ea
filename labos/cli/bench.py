"""``labos bench``: every area adds its benchmark with ``@bench_app.command("name")``."""

import typer

bench_app = typer.Typer(no_args_is_help=True)
