"""Line transports over a real pty and TCP socket, and the device registry / lab configuration."""

from __future__ import annotations

import os
import socket
import threading
import tty

import pytest
from labos.drivers.errors import DeviceError, DeviceTimeout, ProtocolError
from labos.drivers.registry import (
    DEVICE_KINDS,
    DeviceSpec,
    available_kinds,
    load_lab_devices,
    open_device,
    register_kind,
)
from labos.drivers.transport import ConnectionLost, SerialLine, TcpLine, Transport

from labos.errors import ConfigError


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_serial_line_query_timeout_and_close(pty_pair):
    master, path = pty_pair
    line = SerialLine(path, timeout=0.1)
    assert isinstance(line, Transport)
    line.send_line("HELLO")
    assert os.read(master, 100) == b"HELLO\r\n"
    os.write(master, b"stale\r\n")
    os.write(master, b"")

    def answer():
        data = os.read(master, 100)
        os.write(master, b"ECHO " + data)

    t = threading.Thread(target=answer)
    t.start()
    assert line.query("PING") == "ECHO PING"  # the stale line was discarded first
    t.join()
    with pytest.raises(DeviceTimeout) as ei:
        line.read_line()
    assert ei.value.code == "timeout"
    os.write(master, b"half a li")
    with pytest.raises(DeviceTimeout, match="partial") as ei:
        line.read_line()
    os.write(master, b"bare CR\r")
    with pytest.raises(ProtocolError, match="CR but no LF"):
        line.read_line()
    os.write(master, b"\xff\xfe\n")
    with pytest.raises(ProtocolError, match="not ascii"):
        line.read_line()
    os.write(master, b"LF only\n")
    assert line.read_line() == "LF only"
    os.write(master, b"\x01\x03\x02\x00\x19")
    assert line.read_exact(3) == b"\x01\x03\x02"
    assert line.read_up_to(10, 0.02) == b"\x00\x19"
    line.close()
    line.close()  # idempotent
    with pytest.raises(ConnectionLost):
        line.send_line("X")


def test_serial_line_bad_port_is_a_device_error(tmp_path):
    with pytest.raises(DeviceError, match="cannot open serial port"):
        SerialLine(str(tmp_path / "nope"), timeout=0.1)


def test_tcp_line_reconnects_only_when_asked():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    conns = []

    def serve():
        for _ in range(2):
            c, _ = server.accept()
            conns.append(c)
            data = c.recv(100)
            if len(conns) == 1:
                c.close()  # drop the first connection without replying
            else:
                c.sendall(b"pong " + data)

    t = threading.Thread(target=serve)
    t.start()
    line = TcpLine("127.0.0.1", port, timeout=0.5)
    assert line.query("ping", retries=1) == "pong ping\n".strip()
    t.join()
    line.close()
    server.close()


def test_tcp_line_without_retry_reports_connection_lost():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        c, _ = server.accept()
        c.recv(100)
        c.close()

    t = threading.Thread(target=serve)
    t.start()
    line = TcpLine("127.0.0.1", port, timeout=0.5)
    with pytest.raises(ConnectionLost):
        line.query("ping")
    t.join()
    line.close()
    server.close()
    with pytest.raises(ConnectionLost, match="cannot connect"):
        TcpLine("127.0.0.1", port, timeout=0.2)


LAB_TOML = """
[devices.furnace_a]
kind = "eurotherm2416"
port = "/dev/ttyUSB0"
options = { slave_address = 2 }
limits = { max_temperature_c = 1100, max_ramp_c_per_min = 10 }

[devices.door_a]
kind = "furnace_door"
host = "192.168.1.40"
tcp_port = 8888
limits = { safe_door_temperature_c = 200 }

[devices.quantos]
kind = "quantos"
port = "/dev/ttyUSB1"
limits = { max_dose_mg = 5000 }
"""


def test_load_lab_devices_from_toml(tmp_path):
    path = tmp_path / "lab.toml"
    path.write_text(LAB_TOML)
    specs = load_lab_devices(path)
    assert set(specs) == {"furnace_a", "door_a", "quantos"}
    assert specs["furnace_a"].limits.max_temperature_c == 1100
    assert specs["furnace_a"].options["slave_address"] == 2
    assert specs["door_a"].tcp_port == 8888
    # also an already-parsed dict, an array of tables, or under [lab]
    assert load_lab_devices({"lab": {"devices": [{"name": "b", "kind": "mtsics_balance", "port": "/dev/x"}]}})


@pytest.mark.parametrize(
    "devices, message",
    [
        ({"x": {"kind": "warp_drive", "port": "/dev/x"}}, "unknown kind 'warp_drive'"),
        ({"x": {"kind": "quantos", "port": "/dev/x", "host": "h"}}, "either port or host"),
        ({"x": {"kind": "quantos", "port": "/dev/x", "limits": {"max_dose": 5}}}, "max_dose"),
        ({"x": {"kind": "quantos", "port": "/dev/x", "limits": {"max_dose_mg": -5}}}, "greater than 0"),
        ({"x": {"kind": "furnace_door", "tcp_port": 8888}}, "tcp_port given without host"),
        ({"x": "quantos"}, "must be a table"),
    ],
)
def test_bad_lab_configuration_names_the_problem(devices, message):
    with pytest.raises(ConfigError, match=message):
        load_lab_devices({"devices": devices})


def test_missing_or_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_lab_devices(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[devices\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_lab_devices(bad)
    with pytest.raises(ConfigError, match="no \\[devices\\]"):
        load_lab_devices({"other": 1})


def test_registry_kinds_and_decorator():
    kinds = available_kinds()
    for kind in ("mtsics_balance", "quantos", "eurotherm2416", "eurotherm3216", "furnace_door"):
        assert kind in kinds

    @register_kind("test_null_device")
    def _open(spec, **context):
        return ("opened", spec.name, context)

    try:
        assert open_device({"name": "n", "kind": "test_null_device"}, answer=42) == (
            "opened",
            "n",
            {"answer": 42},
        )
        with pytest.raises(ConfigError, match="already registered"):

            @register_kind("test_null_device")
            def _other(spec, **context):
                return None
    finally:
        DEVICE_KINDS.pop("test_null_device", None)

    with pytest.raises(ConfigError, match="unknown kind"):
        open_device(DeviceSpec(name="z", kind="nope"))


def test_spec_without_address():
    spec = DeviceSpec(name="q", kind="quantos")
    with pytest.raises(ConfigError, match="needs a serial port"):
        open_device(spec)


def test_discovery_imports_driver_modules_only():
    """In a fresh interpreter: discovery skips the non-driver modules (the benchmark pulls in
    emulators) and every module it does import registers at least one kind."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from labos.drivers import registry\n"
        "kinds = registry.available_kinds()\n"
        "print(json.dumps({'modules': registry.driver_modules(), 'kinds': kinds,\n"
        "  'by_module': registry._kinds_by_module, 'broken': registry._broken,\n"
        "  'benchmark_loaded': 'labos.drivers.benchmarks' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    names = {m.rsplit(".", 1)[1] for m in found["modules"]}
    assert names == {"aeris", "door", "eurotherm", "mtsics", "opentrons", "ur"}
    assert not found["benchmark_loaded"] and found["broken"] == {}
    assert all(found["by_module"][m] for m in found["modules"]), found["by_module"]
    for kind in ("quantos", "eurotherm2416", "furnace_door", "ur", "aeris", "opentrons"):
        assert kind in found["kinds"]


def test_lab_context_and_options_are_checked_before_opening(tmp_path):
    import time

    from labos.drivers.registry import construct, lab_context

    ctx = lab_context({"clock": time.monotonic, "sleep": time.sleep, "other": 1})
    assert set(ctx) == {"clock", "sleep"} and ctx["clock"].now() > 0
    with pytest.raises(ConfigError, match="context clock"):
        lab_context({"clock": 5})

    def factory(host, *, name, retries=1):
        return host, name, retries

    spec = DeviceSpec(name="arm", kind="x", options={"retries": 3})
    assert construct(spec, factory, "h", name="arm") == ("h", "arm", 3)
    with pytest.raises(ConfigError, match="'arm'.*bad options.*speed"):
        construct(DeviceSpec(name="arm", kind="x", options={"speed": 3}), factory, "h", name="arm")
    with pytest.raises(ConfigError, match=r"\['name'\] cannot be set in options"):
        construct(DeviceSpec(name="arm", kind="x", options={"name": "b"}), factory, "h", name="arm")
    # a misspelt balance option fails before the port is opened (the port does not exist)
    with pytest.raises(ConfigError, match="bad options.*stable_timeout"):
        open_device(
            DeviceSpec(
                name="b", kind="mtsics_balance", port=str(tmp_path / "none"), options={"stable_timeout": 1}
            )
        )
