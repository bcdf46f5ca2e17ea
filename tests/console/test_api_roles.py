"""Every endpoint against every role: allowed where the role allows it, 403 (and audited) where not."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from labos.db import session_scope
from labos.web.records import AuditRow

RANK = {"viewer": 0, "operator": 1, "admin": 2}

# (method, path template, json body, least role that may call it)
ENDPOINTS = [
    ("GET", "/api/campaigns", None, "viewer"),
    ("GET", "/api/campaigns/cmp-spinels", None, "viewer"),
    ("GET", "/api/experiments?status=completed", None, "viewer"),
    ("GET", "/api/experiments/{exp}", None, "viewer"),
    ("GET", "/api/experiments/{exp}/timeline", None, "viewer"),
    ("GET", "/api/experiments/{exp}/furnace", None, "viewer"),
    ("GET", "/api/experiments/{exp}/xrd", None, "viewer"),
    ("GET", "/api/experiments/{exp}/xrd/raw", None, "viewer"),
    ("GET", "/api/samples", None, "viewer"),
    ("GET", "/api/samples/smp-{exp_tail}", None, "viewer"),
    ("GET", "/api/events?after=0&limit=5", None, "viewer"),
    ("GET", "/api/lab", None, "viewer"),
    ("GET", "/api/devices", None, "viewer"),
    ("GET", "/api/positions", None, "viewer"),
    ("GET", "/api/inventory", None, "viewer"),
    ("GET", "/api/interventions?status=all", None, "viewer"),
    ("GET", "/api/export/experiments.csv", None, "viewer"),
    ("GET", "/api/openapi.json", None, "viewer"),
    ("GET", "/", None, "viewer"),
    ("GET", "/experiments/{exp}", None, "viewer"),
    ("POST", "/api/lab/pause", {"reason": "maintenance"}, "operator"),
    ("POST", "/api/lab/stop", {}, "operator"),
    ("POST", "/api/campaigns", {"name": "More spinels", "targets": ["LiMn2O4", "LiCoO2"]}, "operator"),
    ("POST", "/api/interventions/{iv0}/answer", {"answer": "retry"}, "operator"),
    ("POST", "/api/inventory/refill", {"formula": "MnO2", "lot": "L-77", "mg": 25000}, "operator"),
    ("GET", "/api/audit", None, "operator"),
    ("GET", "/audit", None, "operator"),
    ("GET", "/api/users", None, "admin"),
    ("POST", "/api/users", {"username": "newop", "password": "new-operator-pw", "role": "operator"}, "admin"),
    ("PATCH", "/api/users/vera", {"role": "operator"}, "admin"),
    ("GET", "/admin/users", None, "admin"),
]


def _fill(path: str, seeded) -> str:
    return path.format(
        exp=seeded.with_xrd,
        exp_tail=seeded.with_xrd[4:],
        iv0=seeded.interventions[0] if seeded.interventions else "x",
    )


# Each endpoint with its least role (must work) and the role just below it (must be refused);
# the anonymous case is in test_auth.
BELOW = {"operator": "viewer", "admin": "operator"}
CASES = [(*e, e[3]) for e in ENDPOINTS] + [(*e, BELOW[e[3]]) for e in ENDPOINTS if e[3] in BELOW]


@pytest.mark.parametrize(
    ("method", "path", "body", "least", "role"), CASES, ids=[f"{c[0]} {c[1]} as {c[4]}" for c in CASES]
)
def test_role_matrix(clients, seeded, role, method, path, body, least):
    if not seeded.lab and (
        "/lab" in path or "intervention" in path or "inventory" in path or "devices" in path
    ):
        pytest.skip("the lab OS tables are not in this database")
    c = clients[role]
    url = _fill(path, seeded)
    r = c.request(
        method, url, json=body, headers={"accept": "text/html" if not url.startswith("/api") else "*/*"}
    )
    if RANK[role] >= RANK[least]:
        assert r.status_code in (200, 201), (r.status_code, r.text[:300])
    else:
        assert r.status_code == 403, (r.status_code, r.text[:300])
        with session_scope(seeded.factory) as s:
            denied = s.scalars(select(AuditRow).where(AuditRow.action == "denied")).all()
        assert [(d.username, d.role, d.subject, d.ok) for d in denied] == [
            ({"viewer": "vera", "operator": "otto"}[role], role, f"{method} {url.split('?')[0]}", False)
        ]
        assert denied[0].detail["needed"] == least


CONTROL = [
    ("POST", "/api/lab/pause", {"reason": "door check"}, "lab.pause"),
    ("POST", "/api/campaigns", {"name": "Nickelates", "targets": ["LiNiO2"]}, "campaign.submit"),
    (
        "POST",
        "/api/interventions/{iv0}/answer",
        {"answer": "retry", "note": "reseated the thermocouple"},
        "intervention.answer",
    ),
    ("POST", "/api/inventory/refill", {"formula": "MnO2", "lot": "L-77", "mg": 25000}, "inventory.refill"),
    (
        "POST",
        "/api/users",
        {"username": "newop", "password": "new-operator-pw", "role": "operator"},
        "user.create",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "action"), CONTROL, ids=[c[3] for c in CONTROL])
def test_every_control_action_is_audited_with_who_and_when(clients, seeded, method, path, body, action):
    if not seeded.lab and action in ("lab.pause", "intervention.answer", "inventory.refill"):
        pytest.skip("the lab OS tables are not in this database")
    r = clients["admin"].request(method, _fill(path, seeded), json=body)
    assert r.status_code in (200, 201), r.text
    with session_scope(seeded.factory) as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.action == action, AuditRow.username == "ada")).all()
    assert len(rows) == 1
    row = rows[0]
    assert row.ok and row.at is not None and row.client
    assert row.role == "admin" or action == "user.create"  # accounts.add_user records the actor's name


def test_answer_goes_through_the_lab_os_and_records_who(clients, seeded):
    if not seeded.lab:
        pytest.skip("the lab OS tables are not in this database")
    iv = seeded.interventions[1]  # refill MnO2
    c = clients["operator"]
    r = c.post(f"/api/interventions/{iv}/answer", json={"answer": "refilled"})
    assert r.status_code == 400 and "refill needs values" in r.json()["detail"]
    r = c.post(f"/api/interventions/{iv}/answer", json={"answer": "teleported"})
    assert r.status_code == 400 and "not an option" in r.json()["detail"]
    r = c.post(
        f"/api/interventions/{iv}/answer", json={"answer": "refilled", "values": {"lot": "L-9", "mg": 30000}}
    )
    assert r.status_code == 200, r.text
    assert r.json()["answered_by"] == "otto" and r.json()["status"] == "answered"
    lots = {(x["formula"], x["lot"]): x["stock_mg"] for x in c.get("/api/inventory").json()}
    assert lots[("MnO2", "L-9")] == 30000
    r = c.post(
        f"/api/interventions/{iv}/answer", json={"answer": "refilled", "values": {"lot": "L-9", "mg": 1}}
    )
    assert r.status_code == 409 and "already answered" in r.json()["detail"] and "otto" in r.json()["detail"]
    events = c.get("/api/events?kind=intervention.answered").json()
    assert events[0]["subject"] == iv and events[0]["data"]["user"] == "otto"


def test_lab_control_reaches_the_lab_state(clients, seeded):
    if not seeded.lab:
        pytest.skip("the lab OS tables are not in this database")
    c = clients["operator"]
    assert c.get("/api/lab").json()["desired"] == "running"
    assert c.post("/api/lab/pause", json={}).json()["desired"] == "paused"
    from labos.lab.store import Store

    store = Store(seeded.factory)
    with seeded.factory() as s:
        assert store.desired(s) == "paused"
    assert c.post("/api/lab/stop", json={}).json()["desired"] == "stopped"
    r = c.post("/api/lab/pause", json={})
    assert r.status_code == 409 and "stopped" in r.json()["detail"]
    assert c.post("/api/lab/resume", json={}).json()["desired"] == "running"
    assert c.post("/api/lab/explode", json={}).status_code == 422
