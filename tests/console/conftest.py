"""Fixtures of the console tests: a seeded database, logged-in API clients per role, a live server."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.console.seed import PASSWORDS, Seeded, seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch):
    """argon2 with its cheapest parameters: the tests check behaviour, not the cost of hashing."""
    from argon2 import PasswordHasher, profiles

    from labos.web import security

    monkeypatch.setattr(security, "_hasher", PasswordHasher.from_parameters(profiles.CHEAPEST))


@pytest.fixture(scope="session")
def seed_template(tmp_path_factory) -> Seeded:
    """Seeded once per test session; each test works on its own copy of the database file."""
    from argon2 import PasswordHasher, profiles
    from sqlalchemy import text

    from labos.web import security

    saved = security._hasher
    security._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    try:
        folder = tmp_path_factory.mktemp("console-seed")
        out = seed(f"sqlite:///{folder / 'console.sqlite'}", folder / "xrd")
    finally:
        security._hasher = saved
    engine = out.factory.kw["bind"]
    with engine.begin() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    engine.dispose()
    return out


@pytest.fixture
def seeded(seed_template) -> Seeded:
    """A fresh copy of the seeded database at one fixed path: its (cached) engine is disposed and the
    file replaced, so each test starts from the seed without re-running the migrations."""
    from labos.db import connect

    template = Path(seed_template.url.removeprefix("sqlite:///"))
    work = template.with_name("work.sqlite")
    url = f"sqlite:///{work}"
    factory = connect(url) if work.exists() else None
    if factory is not None:
        factory.kw["bind"].dispose()
    for extra in (work.with_name(work.name + "-wal"), work.with_name(work.name + "-shm")):
        extra.unlink(missing_ok=True)
    shutil.copyfile(template, work)
    return dataclasses.replace(seed_template, url=url, factory=factory or connect(url))


_APPS: dict[str, object] = {}


@pytest.fixture
def app(seeded):
    """The console on the fresh copy (built once: the copy always lives at the same URL)."""
    from labos.web import create_app

    if seeded.url not in _APPS:
        _APPS[seeded.url] = create_app(seeded.url, event_poll_s=0.05)
    return _APPS[seeded.url]


def login(client: TestClient, user: str) -> TestClient:
    r = client.post("/api/auth/login", json={"username": user, "password": PASSWORDS[user]})
    assert r.status_code == 200, r.text
    client.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return client


class Clients(dict):
    """A logged-in client per role (cookie session + CSRF header), made on first use; 'anonymous' too."""

    USERS = {"viewer": "vera", "operator": "otto", "admin": "ada"}

    def __init__(self, app) -> None:
        super().__init__()
        self.app = app

    def __missing__(self, role: str) -> TestClient:
        client = TestClient(self.app)
        if role != "anonymous":
            login(client, self.USERS[role])
        self[role] = client
        return client


@pytest.fixture
def clients(app) -> Clients:
    return Clients(app)


class LiveServer:
    """The console served by uvicorn in a thread on a free loopback port."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the console server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live_server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
