"""The console's queries on PostgreSQL (JSON paths, time comparisons, the event stream's paging)."""

from __future__ import annotations

import warnings

import pytest

from tests.console.conftest import login
from tests.console.seed import seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.postgres


def test_console_on_postgres(postgres_url, tmp_path):
    from labos.web import create_app

    seeded = seed(postgres_url, tmp_path / "xrd")
    app = create_app(postgres_url)
    c = login(TestClient(app), "ada")
    [summary] = c.get("/api/campaigns").json()
    assert (summary["n_targets"], summary["n_succeeded"], summary["n_experiments"]) == (3, 1, 7)
    assert c.get(f"/api/experiments/{seeded.with_xrd}/xrd").json()["source"] == "analysis fit"
    tl = c.get(f"/api/experiments/{seeded.with_xrd}/timeline").json()
    assert [t["kind"] for t in tl if t["status"] != "event"] == [
        "dose",
        "mix",
        "heat",
        "grind",
        "xrd",
        "analyze",
    ]
    f = c.get(f"/api/experiments/{seeded.running}/furnace").json()
    assert len(f["measured"]["t_min"]) == 40
    assert c.get("/api/samples", params={"position": "storage/"}).json()["total"] == 4
    assert [e["id"] for e in c.get("/api/events", params={"after": 0, "limit": 3}).json()] == [1, 2, 3]
    if seeded.lab:
        assert c.post("/api/lab/pause", json={}).json()["desired"] == "paused"
        iv = seeded.interventions[0]
        assert (
            c.post(f"/api/interventions/{iv}/answer", json={"answer": "retry"}).json()["answered_by"] == "ada"
        )
    # lock-out counts failed logins by time on this engine too
    anon = TestClient(app)
    for _ in range(5):
        assert (
            anon.post("/api/auth/login", json={"username": "vera", "password": "wrong-password"}).status_code
            == 401
        )
    assert (
        anon.post("/api/auth/login", json={"username": "vera", "password": "vera-viewer-pass"}).status_code
        == 429
    )
    audit = c.get("/api/audit", params={"action": "auth.login", "ok": "false"}).json()
    assert len(audit) == 6 and audit[0]["detail"]["reason"] == "locked"
