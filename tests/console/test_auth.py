"""Sign-in, sessions, tokens, CSRF, lock-out and the audit trail of all of it."""

from __future__ import annotations

import warnings

from sqlalchemy import select

from labos.db import session_scope
from labos.web import accounts
from labos.web.records import AuditRow, UserRow, UserSessionRow
from tests.console.conftest import login

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _audit(seeded, action: str) -> list[AuditRow]:
    with session_scope(seeded.factory) as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))


def test_everything_but_login_and_health_needs_a_session(app):
    c = TestClient(app)
    assert c.get("/api/health").json()["status"] == "ok"
    for path in (
        "/api/campaigns",
        "/api/experiments",
        "/api/samples",
        "/api/events",
        "/api/devices",
        "/api/interventions",
        "/api/audit",
        "/api/users",
        "/api/openapi.json",
        "/api/auth/me",
        "/api/events/stream",
        "/api/lab",
        "/api/inventory",
    ):
        r = c.get(path)
        assert r.status_code == 401, path
        assert r.headers["www-authenticate"] == "Bearer"
        assert "sign in" in r.json()["detail"]
    assert c.post("/api/lab/pause", json={}).status_code == 401
    # pages send the browser to the login form, remembering where it wanted to go
    r = c.get("/devices", headers={"accept": "text/html"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/devices"
    assert c.get("/login").status_code == 200


def test_passwords_are_argon2id_and_session_secrets_are_not_stored(seeded, app):
    c = login(TestClient(app), "otto")
    token = c.cookies.get("labos_session")
    with session_scope(seeded.factory) as s:
        user = s.scalar(select(UserRow).where(UserRow.username == "otto"))
        assert user.password_hash.startswith("$argon2id$")
        assert "otto-operator-pass" not in user.password_hash
        hashes = list(s.scalars(select(UserSessionRow.token_hash)))
    assert token and token not in hashes and len(hashes[0]) == 64


def test_wrong_password_is_refused_audited_and_locks_after_five(seeded, app):
    c = TestClient(app)
    for _ in range(5):
        r = c.post("/api/auth/login", json={"username": "vera", "password": "not-her-password"})
        assert r.status_code == 401
        assert r.json()["detail"] == "wrong user name or password"
    r = c.post("/api/auth/login", json={"username": "vera", "password": "vera-viewer-pass"})
    assert r.status_code == 429 and "too many failed logins" in r.json()["detail"]
    # an unknown name gets the same answer as a wrong password
    r = c.post("/api/auth/login", json={"username": "mallory", "password": "whatever-it-is"})
    assert r.status_code == 401 and r.json()["detail"] == "wrong user name or password"
    failed = [a for a in _audit(seeded, "auth.login") if not a.ok]
    assert [a.detail.get("reason") for a in failed] == ["wrong password"] * 5 + ["locked", "unknown user"]
    assert all(a.client for a in failed)
    # other users are not locked
    assert login(TestClient(app), "otto")


def test_logout_revokes_the_session(app, seeded):
    c = login(TestClient(app), "vera")
    assert c.get("/api/auth/me").json()["username"] == "vera"
    assert c.post("/api/auth/logout").status_code == 204
    c.cookies.clear()
    assert c.get("/api/auth/me").status_code == 401
    assert [a.username for a in _audit(seeded, "auth.logout")] == ["vera"]


def test_a_stolen_cookie_is_useless_after_logout(app):
    c = login(TestClient(app), "vera")
    stolen = c.cookies.get("labos_session")
    c.post("/api/auth/logout")
    other = TestClient(app)
    other.cookies.set("labos_session", stolen)
    assert other.get("/api/campaigns").status_code == 401


def test_cookie_sessions_need_the_csrf_token_for_changes(app, seeded):
    c = login(TestClient(app), "otto")
    good = c.headers.pop("X-CSRF-Token")
    r = c.post("/api/lab/pause", json={})
    assert r.status_code == 403 and "CSRF" in r.json()["detail"]
    r = c.post("/api/lab/pause", json={}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = c.post("/api/lab/pause", json={}, headers={"X-CSRF-Token": good, "Origin": "https://evil.example"})
    assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
    r = c.post("/api/lab/pause", json={}, headers={"X-CSRF-Token": good})
    assert r.status_code == 200 and r.json()["desired"] == "paused"
    # reading needs no CSRF token
    assert c.get("/api/campaigns").status_code == 200


def test_bearer_tokens_work_without_csrf_and_carry_the_role(app, seeded):
    c = login(TestClient(app), "otto")
    r = c.post("/api/auth/tokens", json={"label": "script", "ttl_days": 1})
    assert r.status_code == 201
    token = r.json()["token"]
    api = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/auth/me", headers=headers).json() == {
        **api.get("/api/auth/me", headers=headers).json(),
        "username": "otto",
        "role": "operator",
        "via": "token",
        "csrf_token": None,
    }
    assert api.post("/api/lab/pause", json={}, headers=headers).status_code == 200
    assert api.get("/api/users", headers=headers).status_code == 403
    assert api.get("/api/campaigns", headers={"Authorization": "Bearer nonsense"}).status_code == 401
    assert [a.detail["label"] for a in _audit(seeded, "auth.token.create")] == ["script"]


def test_disabling_a_user_ends_their_sessions_and_tokens(app, seeded):
    vera = login(TestClient(app), "vera")
    admin = login(TestClient(app), "ada")
    r = admin.patch("/api/users/vera", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert vera.get("/api/campaigns").status_code == 401
    r = TestClient(app).post("/api/auth/login", json={"username": "vera", "password": "vera-viewer-pass"})
    assert r.status_code == 401


def test_the_last_admin_cannot_be_demoted_or_disabled(app):
    admin = login(TestClient(app), "ada")
    r = admin.patch("/api/users/ada", json={"role": "viewer"})
    assert r.status_code == 409 and "last active admin" in r.json()["detail"]
    assert admin.patch("/api/users/ada", json={"active": False}).status_code == 409


def test_login_form_sets_a_session_and_redirects_only_to_this_site(app, seeded):
    c = TestClient(app)
    form = c.get("/login?next=/devices")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = c.post(
        "/login",
        data={
            "username": "vera",
            "password": "vera-viewer-pass",
            "csrf_token": csrf,
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert c.get("/api/auth/me").json()["username"] == "vera"
    assert (
        "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    )


def test_login_form_without_its_csrf_token_is_refused(app):
    c = TestClient(app)
    c.get("/login")
    r = c.post("/login", data={"username": "vera", "password": "vera-viewer-pass", "csrf_token": "x"})
    assert r.status_code == 400 and "form expired" in r.text
    assert c.get("/api/auth/me").status_code == 401


def test_logout_form_needs_the_session_csrf_token(app):
    c = login(TestClient(app), "vera")
    r = c.post(
        "/logout", data={"csrf_token": "forged"}, headers={"accept": "text/html"}, follow_redirects=False
    )
    assert r.status_code == 403
    assert c.get("/api/auth/me").status_code == 200
    r = c.post("/logout", data={"csrf_token": c.headers["X-CSRF-Token"]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


def test_account_rules(seeded):
    import pytest

    from labos.web.errors import AccountError, Conflict

    with session_scope(seeded.factory) as s:
        with pytest.raises(AccountError, match="too short"):
            accounts.add_user(s, "newbie", "short", "viewer", actor="t")
        with pytest.raises(AccountError, match="not allowed"):
            accounts.add_user(s, "Bad Name!", "long-enough-pass", "viewer", actor="t")
        with pytest.raises(AccountError, match="unknown role"):
            accounts.add_user(s, "newbie", "long-enough-pass", "root", actor="t")
        with pytest.raises(Conflict, match="already exists"):
            accounts.add_user(s, "vera", "long-enough-pass", "viewer", actor="t")
        with pytest.raises(AccountError, match="user name"):
            accounts.add_user(s, "newbie1234", "newbie1234", "viewer", actor="t")
