"""The operator console: FastAPI app (REST API + pages), accounts, sessions and the audit log.

Importing this package stays light (the table module is imported by ``labos.db.tables``); the web
app itself is built by :func:`create_app`, which imports FastAPI on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI


def create_app(*args: Any, **kwargs: Any) -> FastAPI:
    """Build the console app; see :func:`labos.web.app.create_app`."""
    from labos.web.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
