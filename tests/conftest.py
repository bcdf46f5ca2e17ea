"""Shared fixtures: datasets from ../shared/data, a throwaway PostgreSQL, database URLs for both engines."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from tests.pg import ThrowawayPostgres, find_pg_ctl

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LABOS_TEST_DATA", ROOT.parent / "shared" / "data"))
REQUIRE_PG = os.environ.get("LABOS_REQUIRE_POSTGRES") == "1"
REQUIRE_BROWSER = os.environ.get("LABOS_REQUIRE_BROWSER") == "1"
_counter = itertools.count()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own LABOS_HOME and cache so nothing touches the user's files."""
    monkeypatch.setenv("LABOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LABOS_CACHE_DIR", str(Path(os.environ.get("LABOS_TEST_CACHE", ROOT / ".test-cache"))))
    monkeypatch.setenv("LABOS_DATA_DIR", str(SHARED_DATA))
    monkeypatch.setenv("OT_API_CONFIG_DIR", str(tmp_path / "ot"))
    from labos.config import reset_settings

    reset_settings()
    yield
    reset_settings()


def shared_file(relative: str) -> Path:
    """Path of a shared dataset; skips the test (naming the file) when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"dataset {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture
def shared_data():
    return shared_file


@pytest.fixture(scope="session")
def postgres_server():
    if find_pg_ctl() is None:
        msg = "PostgreSQL is not installed: apt-get install postgresql (then pg_ctl is found) to run these tests"
        if REQUIRE_PG:
            pytest.fail(msg)
        pytest.skip(msg)
    server = ThrowawayPostgres()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database on the throwaway server for each test."""
    return postgres_server.create_database(f"t{next(_counter)}_{os.getpid()}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """Run a test against both engines: an SQLite file and a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'labos.sqlite'}"
    return request.getfixturevalue("postgres_url")
