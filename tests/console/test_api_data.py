"""What the API says about the seeded campaign: numbers, plots, lineage, events, exports, validation."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
from labos.models.xrd.fitfile import fit_path, load_fit, save_fit

from labos.db import session_scope
from labos.db.repository import record_event, save_outcome
from labos.domain import Outcome, PhaseResult, XRDPattern


def test_campaign_progress(clients, seeded):
    c = clients["viewer"]
    [summary] = c.get("/api/campaigns").json()
    assert summary["id"] == "cmp-spinels"
    assert (summary["n_targets"], summary["n_succeeded"], summary["n_experiments"]) == (3, 1, 7)
    assert (summary["n_running"], summary["n_completed"], summary["n_failed"]) == (3, 4, 0)
    assert summary["success_rate"] == pytest.approx(1 / 3)
    assert summary["experiments_per_success"] == pytest.approx(7.0)
    detail = c.get("/api/campaigns/cmp-spinels").json()
    targets = {t["formula"]: t for t in detail["targets"]}
    assert targets["LiMn2O4"]["succeeded"] and targets["LiMn2O4"]["best_fraction"] == pytest.approx(0.82)
    assert targets["LiMn2O4"]["best_experiment_id"] == seeded.with_xrd
    assert targets["LiMn2O4"]["n_experiments"] == 4
    assert not targets["Li2MnO3"]["succeeded"] and targets["Li2MnO3"]["best_fraction"] == pytest.approx(0.31)
    assert targets["LiMnO2"]["n_experiments"] == 0 and targets["LiMnO2"]["best_fraction"] is None
    assert [e["id"] for e in detail["experiments"]] == list(reversed(seeded.experiments))  # newest first


def test_experiment_detail_and_filters(clients, seeded):
    c = clients["viewer"]
    e = c.get(f"/api/experiments/{seeded.with_xrd}").json()
    assert e["target_formula"] == "LiMn2O4" and e["status"] == "completed"
    assert e["precursors"] == ["Li2CO3", "MnO2"] and e["max_temperature_c"] == 700 and e["dwell_min"] == 480
    assert "reaction energy" in e["explanation"]
    assert [s["kind"] for s in e["recipe"]["steps"]] == ["dose", "dose", "mix", "heat", "grind", "xrd"]
    assert e["outcomes"][0]["outcome"]["phases"][0]["formula"] == "LiMn2O4"
    assert e["samples"][0]["position"] == "storage/10"
    page = c.get("/api/experiments", params={"status": "completed", "target": "LiMn2O4"}).json()
    assert page["total"] == 3 and {x["status"] for x in page["items"]} == {"completed"}
    page = c.get("/api/experiments", params={"limit": 2, "offset": 1}).json()
    assert page["total"] == 7 and len(page["items"]) == 2


def test_xrd_plot_has_the_fit_the_difference_and_the_phases(clients, seeded):
    x = clients["viewer"].get(f"/api/experiments/{seeded.with_xrd}/xrd").json()
    n = len(x["two_theta"])
    assert n > 1000 and len(x["observed"]) == n and len(x["calculated"]) == n and len(x["background"]) == n
    assert x["difference"] == pytest.approx(
        [o - c for o, c in zip(x["observed"], x["calculated"], strict=True)]
    )
    assert x["source"] == "analysis fit" and 0 < x["rwp"] < 0.5
    phases = {p["formula"]: p for p in x["phases"]}
    assert phases["LiMn2O4"]["weight_fraction"] == pytest.approx(0.82)
    assert len(phases["LiMn2O4"]["curve"]) == n and 18.6 in phases["LiMn2O4"]["ticks"]
    assert x["target_fraction"] == pytest.approx(0.82) and x["success"] is True


def test_xrd_plot_without_a_saved_fit_shows_the_measured_pattern(clients, seeded, tmp_path):
    from labos.models.xrd.io import write_xrdml

    exp = seeded.experiments[4]
    path = write_xrdml(
        XRDPattern(two_theta=[10 + 0.1 * i for i in range(50)], counts=[100 + i for i in range(50)]),
        tmp_path / "raw.xrdml",
    )
    with session_scope(seeded.factory) as s:
        save_outcome(
            s,
            Outcome(
                experiment_id=exp,
                target_formula="Li2MnO3",
                target_fraction=0.2,
                phases=[PhaseResult(phase_id="Li2MnO3", formula="Li2MnO3", weight_fraction=0.2)],
            ),
            xrd_file=str(path),
        )
    x = clients["viewer"].get(f"/api/experiments/{exp}/xrd").json()
    assert x["calculated"] is None and x["difference"] is None and len(x["observed"]) == 50
    assert x["source"].startswith("measured pattern")
    raw = clients["viewer"].get(f"/api/experiments/{exp}/xrd/raw")
    assert raw.status_code == 200 and raw.content == path.read_bytes()
    assert clients["viewer"].get(f"/api/experiments/{seeded.experiments[6]}/xrd").status_code == 404


def test_fit_files_round_trip_and_reject_mismatched_curves(tmp_path):
    from types import SimpleNamespace

    import numpy as np

    x = np.linspace(10, 80, 100)
    result = SimpleNamespace(
        x=x,
        observed=x * 2,
        calculated=x * 2 + 1,
        background=None,
        rwp=0.08,
        confidence=0.7,
        phase_curves={"A": x, "B": x[:10]},
        details=[
            SimpleNamespace(name="A", formula="LiMn2O4", weight_fraction=0.7, uncertainty=0.01, ticks=[18.6]),
            SimpleNamespace(name="B", formula="Mn2O3", weight_fraction=0.3, uncertainty=0.01, ticks=[32.9]),
        ],
    )
    raw = tmp_path / "p.xy"
    assert save_fit(result, raw) == fit_path(raw)
    doc = load_fit(raw)
    assert doc["calculated"][0] == pytest.approx(21.0) and doc["rwp"] == 0.08
    assert [p["curve"] is not None for p in doc["phases"]] == [True, False]  # B's curve has the wrong length
    assert save_fit(SimpleNamespace(x=None, calculated=None), tmp_path / "q.xy") is None
    fit_path(tmp_path / "r.xy").write_text(json.dumps({"format": "something-else", "x": [1]}))
    assert load_fit(tmp_path / "r.xy") is None


def test_furnace_profile_setpoint_and_measurement(clients, seeded):
    f = clients["viewer"].get(f"/api/experiments/{seeded.with_xrd}/furnace").json()
    # 25 °C -> 700 °C at 5 °C/min (135 min), 480 min dwell, cool at 5 °C/min back to 25 °C (135 min)
    assert f["setpoint"]["t_min"] == [0.0, 135.0, 615.0, 750.0]
    assert f["setpoint"]["temperature_c"] == [25.0, 700.0, 700.0, 25.0]
    assert f["measured"] is None and f["atmosphere"] == "air"
    running = clients["viewer"].get(f"/api/experiments/{seeded.running}/furnace").json()
    assert len(running["measured"]["t_min"]) == 40 and max(running["measured"]["temperature_c"]) > 840
    assert running["furnace"] == "furnace_1"


def test_timeline_pairs_task_events(clients, seeded):
    items = clients["viewer"].get(f"/api/experiments/{seeded.with_xrd}/timeline").json()
    tasks = [i for i in items if i["status"] != "event"]
    assert [t["kind"] for t in tasks] == ["dose", "mix", "heat", "grind", "xrd", "analyze"]
    assert all(t["status"] == "done" and t["end_min"] > t["start_min"] for t in tasks)
    heat = tasks[2]
    assert heat["device"] == "furnace_1" and heat["start_min"] == pytest.approx(1800 / 60)
    running = clients["viewer"].get(f"/api/experiments/{seeded.running}/timeline").json()
    assert [t["status"] for t in running if t["status"] != "event"] == ["done", "done", "running"]


def test_samples_and_lineage(clients, seeded):
    c = clients["viewer"]
    page = c.get("/api/samples", params={"position": "storage/"}).json()
    assert page["total"] == 4 and all(s["position"].startswith("storage/") for s in page["items"])
    assert all(s["n_moves"] == 6 for s in page["items"])
    sid = f"smp-{seeded.with_xrd[4:]}"
    s = c.get(f"/api/samples/{sid}").json()
    assert [h["position"] for h in s["history"]] == [
        "dosing/1",
        "crucible_rack/3",
        "furnace_1/2",
        "cooling_rack/1",
        "xrd/1",
        "storage/10",
    ]
    lin = s["lineage"]
    assert lin["experiment"]["id"] == seeded.with_xrd and lin["heat"][0]["segments"][0]["target_c"] == 700
    assert lin["xrd_files"] and lin["xrd_files"][0].endswith(".xrdml")
    doses = {d["precursor"]: d for d in lin["doses"]}
    assert doses["Li2CO3"]["planned_mg"] == 370.0
    if seeded.lab:
        assert doses["MnO2"]["weighed_mg"] == pytest.approx(1741.2)
        assert doses["MnO2"]["lots"] == [{"lot": "SIM-1", "mg": 1741.2}]
        assert [p["kind"] for p in lin["provenance"]] == ["dose", "dose"]
    assert c.get("/api/samples/smp-nothing").status_code == 404


def test_event_log_paging_and_filters(clients, seeded):
    c = clients["viewer"]
    newest = c.get("/api/events", params={"limit": 3}).json()
    assert len(newest) == 3 and newest[0]["id"] > newest[1]["id"] > newest[2]["id"]
    older = c.get("/api/events", params={"before": newest[-1]["id"], "limit": 2}).json()
    assert older[0]["id"] == newest[-1]["id"] - 1
    after = c.get("/api/events", params={"after": 0, "limit": 5}).json()
    assert [e["id"] for e in after] == [1, 2, 3, 4, 5]
    kinds = {e["kind"] for e in c.get("/api/events", params={"kind": "task.", "limit": 500}).json()}
    assert kinds == {"task.started", "task.finished"}


def test_csv_export(clients, seeded):
    r = clients["viewer"].get("/api/export/experiments.csv", params={"campaign": "cmp-spinels"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 7
    first = next(row for row in rows if row["experiment_id"] == seeded.with_xrd)
    assert first["precursors"] == "Li2CO3;MnO2" and first["success"] == "True"
    assert first["phases"] == "LiMn2O4:0.820;Mn2O3:0.180" and first["max_temperature_c"] == "700.0"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("GET", "/api/experiments?limit=0", None, 422, "greater than or equal to 1"),
        ("GET", "/api/experiments?status=DROP%20TABLE", None, 422, "pattern"),
        ("GET", "/api/experiments/exp-nope", None, 404, "no experiment 'exp-nope'"),
        ("GET", "/api/experiments/bad%20id", None, 422, "pattern"),
        ("GET", "/api/campaigns/cmp-nope", None, 404, "no campaign"),
        ("GET", "/api/events?after=-1", None, 422, "greater than or equal to 0"),
        ("POST", "/api/campaigns", {"name": "x", "targets": ["XzO2"]}, 422, "'Xz' is not a chemical element"),
        ("POST", "/api/campaigns", {"name": "x", "targets": ["BaTiO3", "Ba2Ti2O6"]}, 422, "listed twice"),
        ("POST", "/api/campaigns", {"name": "x", "targets": []}, 422, "at least 1"),
        ("POST", "/api/campaigns", {"name": "x", "targets": ["BaTiO3"], "budget": 3}, 422, "Extra inputs"),
        ("POST", "/api/users", {"username": "Bad Name", "password": "long-enough-pw"}, 400, "not allowed"),
        ("POST", "/api/users", {"username": "vera", "password": "long-enough-pw"}, 409, "already exists"),
        ("PATCH", "/api/users/nobody", {"role": "viewer"}, 404, "no user 'nobody'"),
        ("PATCH", "/api/users/vera", {"role": "superuser"}, 422, "viewer"),
        ("POST", "/api/interventions/int-nope/answer", {"answer": "retry"}, 404, "no intervention"),
    ],
)
def test_bad_input_gets_a_clear_4xx(clients, seeded, method, path, body, status, says):
    r = clients["admin"].request(method, path, json=body)
    assert r.status_code == status, r.text
    assert says in json.dumps(r.json())


def test_submitted_campaign_is_queued_for_the_runner(clients):
    c = clients["operator"]
    r = c.post(
        "/api/campaigns", json={"name": "Titanates", "targets": ["BaTiO3", "SrTiO3"], "budget_per_target": 4}
    )
    assert r.status_code == 201
    cid = r.json()["id"]
    detail = c.get(f"/api/campaigns/{cid}").json()
    assert detail["status"] == "submitted" and [t["formula"] for t in detail["targets"]] == [
        "BaTiO3",
        "SrTiO3",
    ]
    assert detail["config"]["budget_per_target"] == 4 and detail["config"]["submitted_by"] == "otto"
    ev = c.get("/api/events", params={"kind": "campaign.submitted"}).json()[0]
    assert ev["subject"] == cid and ev["data"]["targets"] == ["BaTiO3", "SrTiO3"]


def test_openapi_documents_every_api_route(clients):
    spec = clients["viewer"].get("/api/openapi.json").json()
    assert {t["name"] for t in spec["tags"]} >= {
        "auth",
        "campaigns",
        "experiments",
        "samples",
        "lab",
        "events",
        "admin",
    }
    for path, ops in spec["paths"].items():
        assert path.startswith("/api/"), path
        for method, op in ops.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            assert op.get("tags"), f"{method} {path} has no tag"
    assert "/api/interventions/{intervention_id}/answer" in spec["paths"]
    page = clients["viewer"].get("/docs/api")
    assert page.status_code == 200 and "/api/events/stream" in page.text


def _read_events(response, want: int, timeout: float = 10.0) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    for line in response.iter_lines():
        if line.startswith("data: "):
            got.append(json.loads(line[6:]))
            if len(got) >= want:
                break
        if time.monotonic() > deadline:
            break
    return got


def test_server_sent_events_deliver_new_rows_live_and_resume(live_server, seeded):
    from tests.console.seed import PASSWORDS

    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        http.post(
            "/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]}
        ).raise_for_status()

        def later():
            time.sleep(0.3)
            with session_scope(seeded.factory) as s:
                for k in range(3):
                    record_event(
                        s, "task.progress", f"{seeded.running}:heat", experiment=seeded.running, step=k
                    )

        threading.Thread(target=later, daemon=True).start()
        with http.stream("GET", "/api/events/stream") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            got = _read_events(r, 3)
        assert [e["data"]["step"] for e in got] == [0, 1, 2]
        assert all(e["kind"] == "task.progress" for e in got)
        # a reconnecting browser sends Last-Event-ID and gets what it missed
        with http.stream("GET", "/api/events/stream", headers={"Last-Event-ID": str(got[0]["id"])}) as r:
            again = _read_events(r, 2)
        assert [e["id"] for e in again] == [got[1]["id"], got[2]["id"]]


def test_event_stream_ends_when_the_session_is_revoked(live_server, monkeypatch):
    from labos.web import sse
    from tests.console.seed import PASSWORDS

    monkeypatch.setattr(sse, "SESSION_RECHECK_S", 0.2)
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        me = http.post("/api/auth/login", json={"username": "vera", "password": PASSWORDS["vera"]}).json()
        with http.stream("GET", "/api/events/stream") as r:
            other = httpx.Client(base_url=live_server.url, cookies=http.cookies, timeout=5)
            other.post("/api/auth/logout", headers={"X-CSRF-Token": me["csrf_token"]})
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith("event: auth"):
                    break
        assert "event: auth" in lines


def test_health_is_public_and_checks_the_database(clients, seeded):
    h = clients["anonymous"].get("/api/health").json()
    assert h == {**h, "status": "ok", "database": "ok"}
    assert h["lab"] == ("connected" if seeded.lab else "not available")


def test_security_headers(clients):
    r = clients["viewer"].get("/")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert clients["viewer"].get("/api/campaigns").headers["cache-control"] == "no-store"
    js = clients["anonymous"].get("/vendor/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000 and b"plotly" in js.content[:2000].lower()


def test_pages_render_for_a_viewer(clients, seeded):
    c = clients["viewer"]
    for path in (
        "/",
        "/campaigns/cmp-spinels",
        f"/experiments/{seeded.with_xrd}",
        "/experiments",
        "/samples",
        f"/samples/smp-{seeded.with_xrd[4:]}",
        "/devices",
        "/inventory",
        "/interventions",
        "/docs/api",
    ):
        r = c.get(path)
        assert r.status_code == 200, path
        assert 'name="csrf-token"' in r.text and "/static/app.js" in r.text
        assert 'href="/audit"' not in r.text and 'href="/admin/users"' not in r.text  # not in a viewer's menu
    r = c.get("/audit", headers={"accept": "text/html"})
    assert r.status_code == 403 and "needs the operator role" in r.text
    assert Path(seeded.url.removeprefix("sqlite:///")).exists()


def test_campaign_report_comes_from_the_campaign_runner(clients, seeded):
    pytest.importorskip("labos.campaign.report")
    c = clients["viewer"]
    r = c.get("/api/campaigns/cmp-nope/report")
    assert r.status_code == 404 and "cmp-nope" in r.json()["detail"]
    rep = c.get("/api/campaigns/cmp-spinels/report")
    assert rep.status_code == 200, rep.text
    body = rep.json()
    assert body["campaign_id"] == "cmp-spinels" and {t["formula"] for t in body["targets"]} >= {"LiMn2O4"}
