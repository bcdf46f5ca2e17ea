"""Imports every module that defines tables, so the metadata (and Alembic) sees the whole schema.

Each part of labos that owns tables adds one import line here.
"""

from labos.db import records  # noqa: F401
