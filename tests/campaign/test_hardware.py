"""A campaign on a lab of real devices: here emulated hardware served by another process
(``labos sim serve-lab``), reached only through the lab configuration it writes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from labos.errors import ConfigError


def _serve(tmp_path: Path, time_scale: float) -> tuple[subprocess.Popen, Path, Path]:
    cfg, summary = tmp_path / "served.toml", tmp_path / "served-world.json"
    args = ["sim", "serve-lab", "--write-config", str(cfg), "--time-scale", str(time_scale)]
    args += ["--summary", str(summary), "--workdir", str(tmp_path / "instrument")]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from labos.cli.main import app; app()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, LABOS_HOME=str(tmp_path / "emulator-home")),
    )
    line = proc.stdout.readline()  # one JSON line once every emulator is up
    if not line:
        proc.kill()
        pytest.fail(f"serve-lab did not start: {proc.stderr.read()}")
    assert json.loads(line)["ready"] and cfg.is_file()
    return proc, cfg, summary


@pytest.mark.slow
def test_campaign_runs_on_emulated_hardware_in_another_process(tmp_path, thermo):
    from labos.drivers.aeris import AerisXRD

    from labos.campaign import CampaignConfig, CampaignRunner
    from labos.cli.campaign import write_reports
    from labos.lab.hardware import HardwareLab, HeadChangingDoser, TimedStation
    from labos.lab.records import JournalRow
    from labos.lab.store import Store

    proc, lab_toml, summary = _serve(tmp_path, time_scale=2000)
    try:
        db = f"sqlite:///{tmp_path / 'labos.sqlite'}"
        cfg = CampaignConfig(
            targets=["SrTiO3"],
            budget_per_target=1,
            days=1.5,
            use_priors=False,
            lab={"config_path": str(lab_toml)},
        )
        runner = CampaignRunner(cfg, db_url=db, thermo=thermo)
        rep = runner.run()
        # the campaign side had no world: real drivers (over pty / TCP) and timed stations only
        assert runner.chem.world is None and isinstance(runner.sim, HardwareLab)
        devs = runner.sim.devices
        assert isinstance(devs["doser_1"], HeadChangingDoser) and isinstance(devs["mixer_1"], TimedStation)
        assert isinstance(devs["xrd_1"], AerisXRD) and devs["doser_1"].changes == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    (target,) = rep.targets
    assert rep.summary.experiments == 1 and rep.status == "completed"
    (exp,) = target.experiments
    assert exp.outcome_source == "xrd" and exp.xrd_file.endswith(".xrdml") and Path(exp.xrd_file).is_file()
    assert str(tmp_path / "instrument") in exp.xrd_file  # the diffractometer's own result file
    with Store(db).factory() as s:
        done = set(s.scalars(select(JournalRow.step).where(JournalRow.phase == "done")))
    assert {"dose:0:SrCO3", "dose:1:TiO2", "mix"} <= done
    js, html = write_reports(rep, tmp_path / "report")
    assert html.is_file() and json.loads(js.read_text())["campaign_id"] == rep.campaign_id

    # the hidden world behind the emulators saw exactly that experiment, through the wire
    world = json.loads(summary.read_text())
    assert world["errors"] == []
    (obj,) = world["objects"].values()
    assert [p for p, _ in obj["doses"]] == ["SrCO3", "TiO2"] and len(obj["heats"]) == 1 and obj["scans"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hardware_toml(tmp_path: Path, *, arm: str, furnace: str, mixer_kind: str = "timed_station") -> Path:
    port = _closed_port()
    text = f"""
name = "bench"
[hardware]
time_scale = 1
[devices.arm_1]
kind = "ur"
{arm}
[devices.doser_1]
kind = "quantos"
port = "/dev/labos-no-such-port"
lab = {{ role = "doser", slots = 1, group = "dosing" }}
[devices.mixer_1]
kind = "{mixer_kind}"
lab = {{ role = "mixer", slots = 1, group = "mixer" }}
[devices.grinder_1]
kind = "timed_station"
lab = {{ role = "grinder", slots = 1, group = "grinder" }}
[devices.furnace_1]
kind = "eurotherm2416"
{furnace}
lab = {{ role = "furnace", slots = 2, holds = ["crucible"], door = "door_1" }}
[devices.door_1]
kind = "furnace_door"
host = "127.0.0.1"
tcp_port = {port}
[devices.xrd_1]
kind = "aeris"
host = "127.0.0.1"
tcp_port = {port}
options = {{ result_dir = "{tmp_path / "results"}" }}
lab = {{ role = "xrd", slots = 1, group = "xrd" }}
[[positions]]
group = "crucible_rack"
capacity = 4
holds = ["crucible"]
[[positions]]
group = "cooling_rack"
capacity = 4
holds = ["crucible"]
[[positions]]
group = "storage"
capacity = 10
[[inventory]]
formula = "SrCO3"
stock_mg = 10000
[[inventory]]
formula = "TiO2"
stock_mg = 10000
"""
    path = tmp_path / "lab.toml"
    path.write_text(text)
    return path


def _run(path: Path, thermo):
    from labos.campaign import run_campaign

    return run_campaign(["SrTiO3"], lab_config=str(path), budget_per_target=1, days=1, thermo=thermo)


def test_unreachable_device_fails_fast_naming_it(tmp_path, thermo):
    path = _hardware_toml(
        tmp_path, arm=f'host = "127.0.0.1"\ntcp_port = {_closed_port()}', furnace='port = "/dev/labos-nope"'
    )
    t0 = time.perf_counter()
    with pytest.raises(ConfigError, match=r"device 'arm_1' \(ur at 127\.0\.0\.1:\d+\) cannot be opened"):
        _run(path, thermo)
    assert time.perf_counter() - t0 < 30  # connection refused at once, no retries for minutes


def test_bad_hardware_configs_name_the_device(tmp_path, thermo):
    arm = 'host = "127.0.0.1"\ntcp_port = 1'
    path = _hardware_toml(tmp_path, arm=arm, furnace="")
    with pytest.raises(ConfigError, match=r"device 'furnace_1' \(eurotherm2416\) has no address"):
        _run(path, thermo)
    path = _hardware_toml(tmp_path, arm=arm, furnace='port = "/dev/x"', mixer_kind="shaker_3000")
    with pytest.raises(ConfigError, match=r"device 'mixer_1' has unknown kind 'shaker_3000' \(a station"):
        _run(path, thermo)
    path = _hardware_toml(tmp_path, arm=arm, furnace='port = "/dev/x"', mixer_kind="sim_mixer")
    with pytest.raises(ConfigError, match=r"device 'mixer_1' is simulated"):
        _run(path, thermo)
