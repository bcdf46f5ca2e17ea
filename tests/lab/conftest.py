"""Lab OS fixtures: a migrated SQLite template copied per test (migrating takes a second each)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def _lab_template(tmp_path_factory):
    from labos.db.engine import init_db

    path = tmp_path_factory.mktemp("labdb") / "template.sqlite"
    init_db(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture
def lab_url(tmp_path, _lab_template):
    """A fresh, already migrated SQLite database for one test."""
    path = tmp_path / "lab.sqlite"
    shutil.copy(_lab_template, path)
    return f"sqlite:///{path}"
