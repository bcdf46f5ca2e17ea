"""The operator CLI against the seeded database: listings (tables and --json), actions, errors."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from labos.cli.main import app
from labos.db import session_scope
from labos.web.records import AuditRow

runner = CliRunner()


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich folds long cells to the terminal width


class Outcome:
    def __init__(self, exit_code: int, stdout: str, output: str) -> None:
        self.exit_code, self.stdout, self.output = exit_code, stdout, output


def run(seeded, *args, input=None) -> Outcome:
    """Invoke like ``labos`` does: labos errors become exit code 2 and a one-line message
    (labos.cli.common.run_cli); anything else is a bug and propagates."""
    from pydantic import ValidationError

    from labos.errors import LabosError

    result = runner.invoke(app, [*args, "--db", seeded.url], input=input)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        if isinstance(result.exception, LabosError | ValidationError):
            return Outcome(2, result.stdout, f"error: {result.exception}")
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.output)


def test_users_add_list_token_and_disable(seeded):
    r = run(
        seeded, "users", "add", "nina", "--role", "operator", "--password-stdin", input="nina-operator-pw\n"
    )
    assert r.exit_code == 0, r.output
    r = run(seeded, "users", "list", "--json")
    users = {u["username"]: u for u in json.loads(r.stdout)}
    assert users["nina"]["role"] == "operator" and users["nina"]["active"]
    r = run(seeded, "users", "token", "nina", "--label", "ci", "--json")
    token = json.loads(r.stdout)["token"]
    assert len(token) > 30
    r = run(seeded, "users", "add", "nina", "--password-stdin", input="another-password\n")
    assert r.exit_code == 2 and "already exists" in r.output
    r = run(seeded, "users", "add", "x", "--password-stdin", input="short\n")
    assert r.exit_code == 2 and "not allowed" in r.output
    assert run(seeded, "users", "disable", "nina").exit_code == 0
    assert run(seeded, "users", "set-role", "ada", "viewer").exit_code == 2  # last admin
    with session_scope(seeded.factory) as s:
        actions = [a.action for a in s.scalars(select(AuditRow).where(AuditRow.subject == "nina"))]
    assert actions == ["user.create", "auth.token.create", "user.update"]


def test_listings_print_tables_and_json(seeded):
    r = run(seeded, "campaigns", "list")
    assert r.exit_code == 0 and "Li–Mn–O spinels" in r.stdout and "1/3" in r.stdout
    [c] = json.loads(run(seeded, "campaigns", "list", "--json").stdout)
    assert c["n_experiments"] == 7
    r = run(seeded, "campaigns", "show", "cmp-spinels")
    assert "LiMn2O4" in r.stdout and "82%" in r.stdout
    exps = json.loads(run(seeded, "experiments", "list", "--status", "completed", "--json").stdout)
    assert len(exps) == 4
    r = run(seeded, "experiments", "show", seeded.with_xrd)
    assert r.exit_code == 0 and "heat 5" in r.stdout and "success" in r.stdout and "Timeline" in r.stdout
    detail = json.loads(run(seeded, "experiments", "show", seeded.with_xrd, "--json").stdout)
    assert len(detail["timeline"]) > 6
    samples = json.loads(run(seeded, "samples", "list", "--position", "storage/", "--json").stdout)
    assert len(samples) == 4
    r = run(seeded, "samples", "show", f"smp-{seeded.with_xrd[4:]}")
    assert "storage/10" in r.stdout and "History" in r.stdout
    events = json.loads(run(seeded, "events", "--kind", "experiment.", "--json").stdout)
    assert {e["kind"] for e in events} >= {"experiment.submitted", "experiment.outcome"}


def test_unknown_ids_fail_with_a_clear_message_not_a_traceback(seeded):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-c",
            "from labos.cli.main import main; main()",
            "experiments",
            "show",
            "exp-nope",
            "--db",
            seeded.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "error: no experiment 'exp-nope'" in r.stderr and "Traceback" not in r.stderr


def test_lab_commands(seeded):
    if not seeded.lab:
        pytest.skip("the lab OS tables are not in this database")
    devices = json.loads(run(seeded, "devices", "list", "--json").stdout)
    assert {d["name"]: d["state"] for d in devices}["furnace_2"] == "fault"
    assert "furnace_1/2" in run(seeded, "devices", "positions").stdout
    lots = json.loads(run(seeded, "inventory", "list", "--json").stdout)
    assert {lot["formula"]: lot["low"] for lot in lots}["MnO2"] is True
    ivs = json.loads(run(seeded, "interventions", "list", "--json").stdout)
    assert {i["kind"] for i in ivs} == {"clear_device_fault", "refill_precursor"}
    refill = next(i for i in ivs if i["kind"] == "refill_precursor")
    r = run(seeded, "interventions", "answer", refill["id"], "refilled", "-v", "lot=L-3", "-v", "mg=40000")
    assert r.exit_code == 0, r.output
    lots = json.loads(run(seeded, "inventory", "list", "--json").stdout)
    assert {(x["formula"], x["lot"]): x["stock_mg"] for x in lots}[("MnO2", "L-3")] == 40000
    r = run(seeded, "control", "pause", "--reason", "weekly clean", "--json")
    assert json.loads(r.stdout)["desired"] == "paused"
    assert "paused" in run(seeded, "control", "status").stdout
    with session_scope(seeded.factory) as s:
        audit = {a.action: a for a in s.scalars(select(AuditRow))}
    assert (
        audit["lab.pause"].username.startswith("cli:")
        and audit["lab.pause"].detail["reason"] == "weekly clean"
    )
    assert audit["intervention.answer"].detail["values"] == {"lot": "L-3", "mg": 40000.0}


def test_exports(seeded, tmp_path):
    assert run(seeded, "export", "results", "-o", str(tmp_path / "r.csv")).exit_code == 0
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 7
    assert (
        run(
            seeded, "export", "results", "-o", str(tmp_path / "r.json"), "--campaign", "cmp-spinels"
        ).exit_code
        == 0
    )
    assert len(json.loads((tmp_path / "r.json").read_text())) == 7
    assert run(seeded, "export", "results", "-o", str(tmp_path / "r.txt")).exit_code == 2
    r = run(seeded, "export", "xrd", "-o", str(tmp_path / "xrd"))
    assert r.exit_code == 0
    copied = sorted(p.name for p in (tmp_path / "xrd").rglob("*") if p.is_file())
    assert len(copied) == 8 and sum(n.endswith(".fit.json") for n in copied) == 4
    r = run(seeded, "export", "plots", "-o", str(tmp_path / "png"), "-e", seeded.with_xrd)
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert pngs == [f"{seeded.with_xrd}_furnace.png", f"{seeded.with_xrd}_xrd.png"]
    assert (tmp_path / "png" / pngs[1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_submit_a_campaign_from_a_file(seeded, tmp_path):
    f = tmp_path / "targets.txt"
    f.write_text("# titanates\nBaTiO3\nSrTiO3, from mp-5229\n")
    r = run(seeded, "campaigns", "submit", "Titanates", "--targets", str(f), "--budget", "3", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_targets"] == 2
    r = run(seeded, "campaigns", "submit", "Nothing")
    assert r.exit_code == 2 and "give targets" in r.output


def test_serve_binds_loopback_by_default():
    import inspect

    from labos.cli import serve

    assert inspect.signature(serve.serve).parameters["host"].default == "127.0.0.1"
    assert serve._loopback("127.0.0.1") and serve._loopback("::1") and not serve._loopback("0.0.0.0")
