"""Hypothesis fuzzing of the EI-Bisynch parser and of Modbus TCP (MBAP) replies: malformed → typed errors."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from labos.drivers.bisynch import (
    ETX,
    STX,
    BisynchLink,
    bcc,
    format_value,
    parse_read_reply,
    parse_value,
)
from labos.drivers.errors import DeviceError, ProtocolError
from labos.drivers.eurotherm import SERIES
from labos.drivers.furnace_transport import ModbusTcpLink

from .conftest import MemoryLine

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _reply(mnemonic: bytes, data: bytes) -> bytes:
    body = mnemonic + data + ETX
    return STX + body + bytes([bcc(body)])


@FAST
@given(reply=st.binary(max_size=16))
def test_bisynch_parser_random_bytes(reply):
    try:
        data = parse_read_reply(reply, "PV")
    except ProtocolError:
        return
    assert reply == _reply(b"PV", data)  # only a well-formed, checked frame for PV gets through


@FAST
@given(value=st.integers(-999, 9999), pos=st.integers(0, 20), xor=st.integers(1, 127))
def test_bisynch_single_byte_corruption_is_caught(value, pos, xor):
    frame = bytearray(_reply(b"PV", str(value).encode()))
    word = parse_value(parse_read_reply(bytes(frame), "PV"), "temp", 0)
    assert word == value & 0xFFFF
    frame[pos % len(frame)] ^= xor
    with pytest.raises(ProtocolError):  # any 7-bit single-byte error breaks framing or the BCC
        parse_read_reply(bytes(frame), "PV")


@FAST
@given(
    word=st.integers(0, 0xFFFF), fmt=st.sampled_from(["temp", "output", "int", "hex"]), dec=st.integers(0, 2)
)
def test_bisynch_value_round_trip(word, fmt, dec):
    text = format_value(word, fmt, dec).encode()
    assert parse_value(text, fmt, dec) == word


@FAST
@given(reply=st.binary(max_size=14), mnemonic=st.sampled_from(["PV", "SW", "OP"]))
def test_bisynch_link_gives_typed_errors(reply, mnemonic):
    regs = SERIES["2416"].registers
    name = {"PV": "pv", "SW": "status_word", "OP": "output"}[mnemonic]
    link = BisynchLink(
        MemoryLine(lambda _req: reply, timeout=0.005), registers=regs, timeout_s=0.005, retries=0
    )
    try:
        link.read(regs[name])
    except DeviceError:
        return


class _MbapResponder:
    """A TCP peer that answers each request with ``make(request)``."""

    def __init__(self):
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.make = lambda req: b""
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            while True:
                try:
                    req = conn.recv(4096)
                except OSError:
                    return
                if not req:
                    return
                out = self.make(req)
                if out:
                    conn.sendall(out)


@pytest.fixture(scope="module")
def mbap():
    r = _MbapResponder()
    link = ModbusTcpLink("127.0.0.1", r.port, timeout_s=0.02, retries=0)
    yield r, link
    link.close()
    r.srv.close()


def _valid(req: bytes, value: int) -> bytes:
    return req[:2] + struct.pack(">HHB", 0, 5, req[6]) + bytes([3, 2]) + struct.pack(">H", value)


MBAP_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@MBAP_FUZZ
@given(value=st.integers(0, 0xFFFF), pos=st.integers(0, 10), xor=st.integers(1, 255))
def test_mbap_corrupted_replies_are_typed(mbap, value, pos, xor):
    responder, link = mbap

    def corrupt(req: bytes) -> bytes:
        frame = bytearray(_valid(req, value))
        frame[pos] ^= xor
        return bytes(frame)

    responder.make = lambda req: _valid(req, value)
    assert link.read(1) == [value]
    responder.make = corrupt
    try:
        words = link.read(1)
    except DeviceError:
        return
    # a flip in the data bytes is not detectable in Modbus TCP (no CRC): only then may a read succeed
    assert pos in (9, 10) and words != [value]


@MBAP_FUZZ
@given(reply=st.binary(max_size=16))
def test_mbap_random_replies_are_typed(mbap, reply):
    responder, link = mbap
    responder.make = lambda req: reply
    try:
        link.read(1)
    except ProtocolError:
        return
    except DeviceError as exc:
        assert not reply or exc.code == "timeout"  # nothing usable arrived at all
        return
    pytest.fail(f"a random reply {reply!r} was accepted")
