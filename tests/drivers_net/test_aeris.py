"""AerisXRD against the Aeris emulator over real TCP, and the XRDML file drop."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from labos.drivers.aeris import AerisXRD, format_message, parse_ready, parse_reply, parse_slot_state
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.protocols import Diffractometer
from labos.drivers.registry import open_device
from labos.simulator.clock import ManualClock
from labos.simulator.emulators import LINK_FAULTS, WireFault
from labos.simulator.emulators.aeris import AerisEmulator

from tests.drivers_net.conftest import demo_pattern


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture(params=["@", "\n"], ids=["at-separated", "newline-separated"])
def emu(request, tmp_path, clock):
    with AerisEmulator(tmp_path / "drop", demo_pattern, clock, separator=request.param) as e:
        yield e


def make_xrd(emu, clock, **kw) -> AerisXRD:
    def sleep(_s: float) -> None:  # each poll lets a virtual minute pass
        clock.advance(60.0)
        time.sleep(0.01)

    opts = dict(result_dir=emu.result_dir, clock=clock, sleep=sleep, poll_s=60.0, timeout_s=0.25)
    opts.update(kw)
    return AerisXRD("127.0.0.1", emu.port, **opts)


@pytest.fixture
def xrd(emu, clock):
    x = make_xrd(emu, clock)
    yield x
    x.close()


def test_add_measure_wait_read_remove(xrd, emu, clock):
    assert isinstance(xrd, Diffractometer)
    assert xrd.ready() and xrd.slot_state(3) == "free"
    xrd.add_sample("S-001", 3)
    assert xrd.slot_state(3) == "occupied"
    xrd.measure("S-001")
    assert not xrd.ready()  # scanning
    clock.advance(600)
    assert not xrd.result_path("S-001").exists()
    path = xrd.wait_for_result("S-001", timeout_s=3600)
    assert path.name == "S-001.xrdml"
    assert 1800 <= clock.now() <= 1800 + 600 + 3 * 60
    pattern = xrd.read_result("S-001")
    want = demo_pattern("S-001")
    assert np.allclose(pattern.two_theta, want.two_theta, atol=1e-6)
    assert np.allclose(pattern.counts, want.counts, rtol=1e-5)
    assert xrd.ready()
    xrd.remove_sample("S-001")
    assert xrd.slot_state(3) == "free"
    assert emu.scans_started == ["S-001"]


def test_registry_opens_an_aeris(emu, clock):
    x = open_device(
        {
            "name": "xrd1",
            "kind": "aeris",
            "host": "127.0.0.1",
            "tcp_port": emu.port,
            "options": {"result_dir": str(emu.result_dir)},
        },
        clock=clock,
    )
    assert isinstance(x, AerisXRD) and x.ready()


def test_fatal_reply_is_a_device_fault(xrd, emu):
    emu.fatal_next("ADD", "sample changer jammed")
    with pytest.raises(DeviceFault, match="sample changer jammed") as err:
        xrd.add_sample("S-002", 1)
    assert err.value.code == "fatal"
    assert sum("ADD" in r for r in emu.requests) == 1  # not repeated


def test_not_ready_forever(xrd, emu):
    xrd.add_sample("S-003", 1)
    emu.stick_not_ready()
    with pytest.raises(DeviceBusy):
        xrd.measure("S-003")
    with pytest.raises(DeviceTimeout) as err:
        xrd.wait_ready(timeout_s=300)
    assert err.value.safe_to_retry and err.value.code == "not_ready"
    assert emu.scans_started == []


def test_occupied_slot_is_refused_before_adding(xrd, emu):
    emu.occupy_slot(2)
    with pytest.raises(DeviceBusy, match="slot 2 is occupied"):
        xrd.add_sample("S-004", 2)
    assert not any("ADD" in r for r in emu.requests)


@pytest.mark.parametrize(
    "kind, error, code", [("missing", DeviceTimeout, "no_result"), ("truncated", ProtocolError, "bad_file")]
)
def test_broken_result_file(xrd, emu, clock, kind, error, code):
    emu.break_next_result(kind)
    xrd.add_sample("S-005", 4)
    xrd.measure("S-005")
    with pytest.raises(error) as err:
        xrd.wait_for_result("S-005", timeout_s=3600)
    assert err.value.code == code
    assert emu.scans_started == ["S-005"]  # the scan was not started twice


def test_stale_result_file_blocks_a_new_scan(xrd, emu):
    xrd.result_path("S-006").write_text("old")
    xrd.add_sample("S-006", 5)
    with pytest.raises(DeviceError, match="already exists"):
        xrd.measure("S-006")
    assert emu.scans_started == []


@pytest.mark.parametrize("bad", ["../etc/passwd", "a/b", "", "x" * 65, "id@END", "a b"])
def test_bad_sample_ids_are_refused_before_sending(xrd, emu, bad):
    with pytest.raises(ValueError):
        xrd.add_sample(bad, 1)
    assert emu.requests == []


@pytest.mark.parametrize("fault", sorted(LINK_FAULTS))
def test_one_bad_status_reply_is_retried(xrd, emu, fault):
    emu.inject(fault, match="STATUS_REQUEST", delay_s=0.6)
    assert xrd.ready() is True


@pytest.mark.parametrize("fault", sorted(LINK_FAULTS - {WireFault.WRONG_EOL}))
def test_persistent_bad_status_replies_are_typed_errors(xrd, emu, fault):
    emu.inject(fault, match="STATUS_REQUEST", count=None, delay_s=0.6)
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        xrd.ready()
    assert err.value.safe_to_retry


def test_wrong_line_ending_is_tolerated(xrd, emu):
    emu.inject(WireFault.WRONG_EOL, count=None)
    assert xrd.ready() is True  # replies are framed by END, not by the line ending


@pytest.mark.parametrize("fault", [WireFault.NO_REPLY, WireFault.DROP, WireFault.GARBAGE, WireFault.PARTIAL])
def test_lost_reply_to_measure_is_never_resent(xrd, emu, fault):
    xrd.add_sample("S-007", 6)
    emu.inject(fault, match="SAMPLE@MEASURE")
    with pytest.raises((DeviceTimeout, ProtocolError)) as err:
        xrd.measure("S-007")
    assert not err.value.safe_to_retry
    assert emu.scans_started == ["S-007"]  # the instrument did start; the driver did not ask twice
    assert sum("MEASURE" in r for r in emu.requests) == 1


# -- parsers ----------------------------------------------------------------------------------
def test_parse_both_separators():
    assert parse_ready(parse_reply("@READY=yes@END")) is True
    assert parse_ready(parse_reply("READY=no\nEND\n")) is False
    assert parse_slot_state(parse_reply("@STATE=occupied@END\r\n")) == "occupied"
    assert parse_reply("@fatal@REASON=x@END").fatal
    with pytest.raises(ProtocolError):
        parse_ready(parse_reply("@STATE=free@END"))  # meant for another command
    with pytest.raises(ProtocolError):
        parse_reply("@READY=yes")  # no END


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_reply_parser_never_fails_untyped(raw):
    try:
        reply = parse_reply(raw)
    except ProtocolError:
        return
    for parse in (parse_ready, parse_slot_state):
        try:
            parse(reply)
        except ProtocolError:
            pass


_word = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="@="), min_size=1, max_size=12
)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_word.filter(lambda w: w.upper() != "END"), min_size=1, max_size=3),
    st.dictionaries(_word, _word, max_size=4),
)
def test_format_then_parse_round_trips(words, fields):
    reply = parse_reply(format_message(*words, **fields))
    assert list(reply.flags) == words
    assert reply.fields == {k.upper(): v for k, v in fields.items()}
