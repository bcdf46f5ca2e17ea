"""``labos users``: console accounts (add, list, role, enable/disable, password, API tokens)."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Annotated

import typer

from labos.cli.common import console, emit_json, fail
from labos.cli.console_common import DbOption, JsonOption, ago, cli_actor, listing, session, table

app = typer.Typer(no_args_is_help=True, help="Console users and API tokens (roles: viewer, operator, admin).")
RoleOption = Annotated[str, typer.Option("--role", "-r", help="viewer, operator or admin")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from standard input")
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\n")
        if not value:
            fail("no password on standard input")
        return value
    first = typer.prompt("password", hide_input=True)
    again = typer.prompt("repeat password", hide_input=True)
    if first != again:
        fail("the two passwords differ")
    return first


@app.command()
def add(
    name: str, role: RoleOption = "viewer", password_stdin: PasswordStdin = False, db: DbOption = None
) -> None:
    """Add a user (the first one should be an admin)."""
    from labos.web import accounts

    password = _password(password_stdin)
    with session(db) as s:
        row = accounts.add_user(s, name, password, role, actor=cli_actor())
        console.print(f"added {row.username} ({row.role})")


@app.command("list")
def list_(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Every user with role, state and last sign-in."""
    from labos.web import accounts
    from labos.web.schemas import UserOut

    with session(db) as s:
        items = [UserOut.model_validate(u) for u in accounts.list_users(s)]
    listing(
        as_json,
        items,
        lambda: table(
            "Users",
            ["user", "role", "active", "last sign-in"],
            [(u.username, u.role, "yes" if u.active else "[red]no[/]", ago(u.last_login_at)) for u in items],
        ),
    )


def _update(name: str, db: str | None, **changes) -> None:
    from labos.web import accounts

    with session(db) as s:
        row = accounts.update_user(s, name, actor=cli_actor(), **changes)
        console.print(f"{row.username}: role {row.role}, {'active' if row.active else 'disabled'}")


@app.command("set-role")
def set_role(
    name: str, role: Annotated[str, typer.Argument(help="viewer, operator or admin")], db: DbOption = None
) -> None:
    """Change a user's role (their sessions end)."""
    _update(name, db, role=role)


@app.command()
def disable(name: str, db: DbOption = None) -> None:
    """Disable a user and end their sessions and tokens (the audit log keeps their name)."""
    _update(name, db, active=False)


@app.command()
def enable(name: str, db: DbOption = None) -> None:
    """Enable a disabled user."""
    _update(name, db, active=True)


@app.command()
def passwd(name: str, password_stdin: PasswordStdin = False, db: DbOption = None) -> None:
    """Set a new password (ends the user's sessions)."""
    _update(name, db, password=_password(password_stdin))


@app.command()
def token(
    name: str,
    label: Annotated[str, typer.Option(help="what the token is for")] = "cli",
    days: Annotated[float, typer.Option(help="lifetime in days", min=0.001, max=366)] = 30,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create an API token for a user ('Authorization: Bearer <token>'); it is shown once."""
    from labos.web import accounts, audit

    with session(db) as s:
        user = accounts.get_user(s, name)
        if not user.active:
            fail(f"user {name} is disabled")
        secret, row = accounts.open_session(s, user, kind="token", ttl=timedelta(days=days), label=label)
        audit.record(s, "auth.token.create", username=cli_actor(), subject=user.username, label=label)
        expires = accounts.as_utc(row.expires_at)
    if as_json:
        emit_json({"token": secret, "user": name, "label": label, "expires_at": expires.isoformat()})
    else:
        console.print(f"token for {name} (expires {expires:%Y-%m-%d %H:%M} UTC):\n{secret}")
