"""Persistence: SQLAlchemy 2 ORM, Alembic migrations, SQLite by default and PostgreSQL for deployments."""

from labos.db.base import Base
from labos.db.engine import connect, init_db, session_scope

__all__ = ["Base", "connect", "init_db", "session_scope"]
