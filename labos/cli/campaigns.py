"""``labos campaigns``: a hidden alias of ``labos campaign`` (list, show, submit, run, report), kept so
scripts written against the console's former separate group keep working."""

from __future__ import annotations

import typer

from labos.cli.campaign import app as campaign_app

app = typer.Typer(no_args_is_help=True, hidden=True, help="Alias of `labos campaign`.")
app.registered_commands.extend(campaign_app.registered_commands)
