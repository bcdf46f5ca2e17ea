"""Imports every module that defines tables, so the metadata (and Alembic) sees the whole schema.

Each part of labos that owns tables adds one import line here.
"""

from labos.campaign import records as campaign_records  # noqa: F401
from labos.db import records  # noqa: F401
from labos.lab import records as lab_records  # noqa: F401
from labos.planners import store as planner_store  # noqa: F401
from labos.web import records as web_records  # noqa: F401
