"""Hypothesis fuzzing of the reply parsers: malformed replies give typed errors, never crashes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labos.drivers.door import parse_status
from labos.drivers.errors import DeviceError, ProtocolError
from labos.drivers.eurotherm import EurothermFurnace
from labos.drivers.mtsics import parse_dose_result, parse_reply, parse_weight_mg
from labos.simulator.emulators.modbus import crc16

from .conftest import MemoryLine

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ascii_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=60)


@FAST
@given(line=ascii_text, command=st.sampled_from(["S", "SI", "Z", "T", "QRA 61 1", "QRD 2 4 12"]))
def test_mtsics_parser_never_crashes(line, command):
    try:
        reply = parse_reply(line, command)
    except ProtocolError:
        return
    assert reply.status in "ABSDIL+-"
    try:
        mg = parse_weight_mg(reply)
    except ProtocolError:
        return
    assert mg == mg  # finite number


@FAST
@given(
    value=st.floats(min_value=-1e5, max_value=1e5, allow_nan=False),
    unit=st.sampled_from(["g", "mg", "kg"]),
    status=st.sampled_from(["S", "D"]),
    pad=st.integers(0, 8),
)
def test_mtsics_weight_round_trip(value, unit, status, pad):
    line = f"S {status} {' ' * pad}{value:.5f} {unit}"
    mg = parse_weight_mg(parse_reply(line, "S"))
    scale = {"g": 1000.0, "mg": 1.0, "kg": 1e6}[unit]
    assert mg == pytest.approx(round(value, 5) * scale, rel=1e-9, abs=1e-6)


@FAST
@given(line=st.sampled_from(["ES", "ET", "EL", " ES ", "ET\r"]))
def test_general_errors_always_raise(line):
    with pytest.raises(ProtocolError) as ei:
        parse_reply(line, "S")
    assert ei.value.code == line.strip()


@FAST
@given(text=st.text(max_size=200))
def test_dose_result_parser_never_crashes(text):
    try:
        out = parse_dose_result(text)
    except ProtocolError:
        return
    assert out["dosed_mg"] is not None


@FAST
@given(line=ascii_text)
def test_door_status_parser_never_crashes(line):
    try:
        st_ = parse_status(line)
    except ProtocolError:
        return
    assert st_.controller in ("RUNNING", "STOP", "ERROR") and st_.doors


def _furnace_with(reply: bytes) -> EurothermFurnace:
    line = MemoryLine(lambda request: reply, timeout=0.01)
    return EurothermFurnace(line, series="2416", baudrate=115200, timeout_s=0.01, retries=0)


def _pv_frame(value: int) -> bytes:
    body = bytes([1, 3, 2]) + struct.pack(">H", value)
    return body + crc16(body)


@FAST
@given(reply=st.binary(max_size=12))
def test_modbus_random_replies_give_typed_errors(reply):
    dev = _furnace_with(reply)
    try:
        dev.pv()
    except DeviceError:
        return
    assert reply == _pv_frame(struct.unpack(">H", reply[3:5])[0])  # only a valid frame gets through


@FAST
@given(value=st.integers(0, 0xFFFF), pos=st.integers(0, 6), xor=st.integers(1, 255))
def test_modbus_corrupted_frames_are_rejected(value, pos, xor):
    frame = bytearray(_pv_frame(value))
    assert _furnace_with(bytes(frame)).pv() == (value - 0x10000 if value >= 0x8000 else value)
    frame[pos] ^= xor  # any single-byte corruption: CRC, address, function, count or data
    with pytest.raises(DeviceError):
        _furnace_with(bytes(frame)).pv()


@FAST
@given(value=st.integers(0, 0xFFFF), extra=st.binary(min_size=1, max_size=6))
def test_modbus_long_and_short_frames_are_rejected(value, extra):
    frame = _pv_frame(value)
    with pytest.raises(ProtocolError):
        _furnace_with(frame + extra).pv()
    with pytest.raises(DeviceError):
        _furnace_with(frame[: len(frame) - min(len(extra), len(frame) - 1)]).pv()
