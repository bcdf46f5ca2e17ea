"""The lab configuration file: devices (driver specs + lab sub-table), positions, inventory."""

from __future__ import annotations

import pytest

from labos.errors import ConfigError
from labos.lab import load_lab_config, sim_lab_config

LAB_TOML = """
name = "a-lab-like"

[devices.doser_1]
kind = "quantos"
port = "/dev/ttyUSB0"
lab = { slots = 1, group = "dosing" }

[devices.arm_1]
kind = "ur"
host = "192.168.1.20"
tcp_port = 29999

[devices.furnace_1]
kind = "eurotherm2416"
port = "/dev/ttyUSB1"
limits = { max_temperature_c = 1100 }
lab = { slots = 8, holds = ["crucible"], max_c = 1100, door = "door_1", atmospheres = ["air"] }

[devices.door_1]
kind = "furnace_door"
host = "192.168.1.40"
tcp_port = 8888

[devices.xrd_1]
kind = "aeris"
host = "192.168.1.50"
tcp_port = 702
lab = { slots = 6, group = "xrd" }

[[positions]]
group = "crucible_rack"
capacity = 16
holds = ["crucible"]

[[positions]]
group = "cooling_rack"
capacity = 8

[[positions]]
group = "storage"
capacity = 100

[[inventory]]
formula = "Li2CO3"
lot = "SA-0423"
stock_mg = 50000

[[inventory]]
formula = "Li2CO3"
lot = "SA-0511"
stock_mg = 25000

[timing]
dose_per_precursor = 3.0
"""


def test_lab_config_from_toml(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(LAB_TOML)
    cfg = load_lab_config(path)
    assert {d.name: d.role for d in cfg.devices} == {
        "doser_1": "doser",
        "arm_1": "arm",
        "furnace_1": "furnace",
        "door_1": "door",
        "xrd_1": "xrd",
    }
    spec = cfg.device("furnace_1").device_spec()
    assert spec.kind == "eurotherm2416" and spec.limits.max_temperature_c == 1100
    assert cfg.capacity("crucible_rack") == 16 and cfg.groups("dosing")[0].slot_names() == ["doser_1/1"]
    assert cfg.device("furnace_1").slot_group == "furnace_1" and cfg.capacity("furnace_1") == 8
    assert cfg.arm_for("storage") == "arm_1"
    assert [(i.lot, i.stock_mg) for i in cfg.inventory] == [("SA-0423", 50000), ("SA-0511", 25000)]
    assert cfg.timing.dose_per_precursor == 3.0
    cfg.check_workflow()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ('[devices.x]\nkind = "mystery"\n', "say what it does with lab.role"),
        ('[devices.y]\nkind = "quantos"\nport = "a"\nhost = "b"\n', "either port or host"),
        ('[[inventory]]\nformula = "Xq2O3"\nstock_mg = 5\n', "not a chemical element"),
        ('[[positions]]\ngroup = "storage"\ncapacity = 3\n', "defined twice"),
        ('[devices.f2]\nkind = "eurotherm"\nport = "p"\nlab = { door = "nope" }\n', "not a device"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path, patch, message):
    path = tmp_path / "lab.toml"
    path.write_text(LAB_TOML + "\n" + patch)
    with pytest.raises(ConfigError, match=message):
        load_lab_config(path)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_lab_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_lab_config(bad)


def test_workflow_check_names_what_is_missing():
    cfg = sim_lab_config(furnaces=0)
    with pytest.raises(ConfigError, match="a furnace device"):
        cfg.check_workflow()
