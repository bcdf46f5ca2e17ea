"""EI-Bisynch, the older Eurotherm ASCII protocol, as a :class:`~labos.drivers.furnace_transport.RegisterLink`.

Source: Eurotherm *2000 Series Communications Handbook* (HA026230), chapter "EI-Bisynch", as
summarised in PROTOCOLS.md §2. The line runs 7 data bits, even parity, 1 stop bit (7E1); every
byte of the protocol is 7-bit ASCII.

* read (poll): ``EOT G G U U C1 C2 ENQ`` → ``STX C1 C2 <data> ETX BCC``; an unknown mnemonic is
  answered with a lone ``EOT``;
* write (select): ``EOT G G U U STX C1 C2 <data> ETX BCC`` → ``ACK`` (0x06) or ``NAK`` (0x15);
* ``G G U U``: the two address digits, each sent twice (address 12 → ``1122``);
* BCC: XOR of every byte after STX up to and including ETX;
* data: a decimal number (``600``, ``-12.5``) or, for status words, ``>`` and four hex digits.

Written by hand: no maintained Python library for EI-Bisynch exists (the few packages that mention
it are unmaintained single-file scripts), and the framing is twenty lines.

What the protocol carries here: PV, target and working setpoint, output, setpoint rate limit,
status word (sensor break, alarm 1), programme status/number/segment/time left, auto/manual. The
programmer's *segment table* is not addressed by two-letter mnemonics the way Modbus addresses it
(8336 + 8(n−1)...), so programme upload and RUN raise :class:`~labos.errors.NotImplementedYet`.

Mnemonic provenance (check on the controller; override with the ``mnemonics`` option):
``PV``, ``SL``, ``OP`` are given in PROTOCOLS.md §2. ``SP`` (working setpoint), ``RR`` (setpoint
rate limit), ``SW`` (status word, hex), ``PS`` (programme status), ``PN`` (programme number),
``SN`` (current segment), ``TS`` (segment time left) and ``mA`` (auto/manual) are from the
2000-series handbook's parameter table as we recall it — **unverified on hardware**. The programme
status codes are the 2400 ones (1 reset, 2 run, 4 hold, 8 holdback, 16 complete).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from labos.drivers.errors import DeviceError, DeviceTimeout, ProtocolError
from labos.drivers.furnace_transport import LinkBase
from labos.drivers.transport import LineTransport

from labos.errors import ConfigError, NotImplementedYet

log = logging.getLogger(__name__)

__all__ = [
    "ACK",
    "BISYNCH_PARAMS",
    "ENQ",
    "EOT",
    "ETX",
    "NAK",
    "STX",
    "BisynchLink",
    "BisynchParam",
    "bcc",
    "format_value",
    "parse_read_reply",
    "parse_value",
    "poll_frame",
    "select_frame",
]

EOT, STX, ETX, ENQ, ACK, NAK = b"\x04", b"\x02", b"\x03", b"\x05", b"\x06", b"\x15"

Format = Literal["temp", "output", "int", "hex"]


def _mnemonic(m: str) -> bytes:
    raw = m.encode("ascii", "strict") if m.isascii() else b""
    if len(raw) != 2 or not all(0x20 < c < 0x7F for c in raw):
        raise ConfigError(f"EI-Bisynch mnemonic must be two printable ASCII characters, got {m!r}")
    return raw


@dataclass(frozen=True)
class BisynchParam:
    """One mnemonic: the register it stands for (by the series' register name) and its data format."""

    mnemonic: str
    register: str  # key of EurothermSeries.registers
    fmt: Format
    verified: bool = False  # True only where PROTOCOLS.md gives the mnemonic

    def __post_init__(self) -> None:
        _mnemonic(self.mnemonic)


#: register name -> parameter (see the module docstring for where each mnemonic comes from)
BISYNCH_PARAMS: dict[str, BisynchParam] = {
    p.register: p
    for p in (
        BisynchParam("PV", "pv", "temp", verified=True),
        BisynchParam("SL", "target_sp", "temp", verified=True),
        BisynchParam("OP", "output", "output", verified=True),
        BisynchParam("SP", "working_sp", "temp"),
        BisynchParam("RR", "sp_rate", "temp"),
        BisynchParam("SW", "status_word", "hex"),
        BisynchParam("PS", "program_status", "int"),
        BisynchParam("PN", "program_number", "int"),
        BisynchParam("SN", "segment", "int"),
        BisynchParam("TS", "segment_time_left", "int"),
        BisynchParam("mA", "auto_manual", "int"),
    )
}


def bcc(body: bytes) -> int:
    """Block check character: XOR of ``body`` (the bytes after STX, ETX included)."""
    out = 0
    for b in body:
        out ^= b
    return out


def address_chars(address: int) -> bytes:
    """``G G U U``: the group (tens) and unit digit, each repeated."""
    if not 0 <= address <= 99:
        raise ConfigError(f"EI-Bisynch address must be 0..99, got {address}")
    g, u = divmod(address, 10)
    return f"{g}{g}{u}{u}".encode()


def poll_frame(address: int, mnemonic: str) -> bytes:
    return EOT + address_chars(address) + _mnemonic(mnemonic) + ENQ


def select_frame(address: int, mnemonic: str, data: str) -> bytes:
    body = _mnemonic(mnemonic) + data.encode("ascii") + ETX
    return EOT + address_chars(address) + STX + body + bytes([bcc(body)])


def format_value(value: int, fmt: Format, decimals: int) -> str:
    """A register word (unsigned 16-bit, scaled) as EI-Bisynch data."""
    if fmt == "hex":
        return f">{value & 0xFFFF:04X}"
    signed = value - 0x10000 if value >= 0x8000 else value
    if fmt == "int" or decimals == 0:
        return str(signed)
    return f"{signed / 10**decimals:.{decimals}f}"


def parse_value(data: bytes, fmt: Format, decimals: int, *, device: str = "") -> int:
    """EI-Bisynch data → the register word (unsigned 16-bit, scaled); ProtocolError if malformed."""
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ProtocolError(f"data is not ASCII: {data!r}", device=device, code="frame") from None
    if fmt == "hex":
        if len(text) != 5 or text[0] != ">" or not all(c in "0123456789abcdefABCDEF" for c in text[1:]):
            raise ProtocolError(f"expected '>hhhh', got {text!r}", device=device, code="frame")
        return int(text[1:], 16)
    if not text or len(text) > 8 or not all(c in "0123456789.-+" for c in text):
        raise ProtocolError(f"expected a number, got {text!r}", device=device, code="frame")
    try:
        number = float(text)
    except ValueError:
        raise ProtocolError(f"expected a number, got {text!r}", device=device, code="frame") from None
    scaled = round(number * 10 ** (0 if fmt == "int" else decimals))
    if not -0x8000 <= scaled <= 0xFFFF:
        raise ProtocolError(f"value {text} does not fit a 16-bit register", device=device, code="range")
    return scaled & 0xFFFF


def parse_read_reply(reply: bytes, mnemonic: str, *, device: str = "") -> bytes:
    """The data field of a complete poll reply ``STX C1 C2 data ETX BCC``; typed errors otherwise."""
    if reply == EOT:
        raise ProtocolError(
            f"{mnemonic}: controller answered EOT (unknown or unreadable mnemonic)", device=device, code="eot"
        )
    if len(reply) < 5 or reply[:1] != STX or reply[-2:-1] != ETX:
        raise ProtocolError(f"{mnemonic}: malformed reply {reply!r}", device=device, code="frame")
    body = reply[1:-1]
    if bcc(body) != reply[-1]:
        raise ProtocolError(f"{mnemonic}: bad BCC in {reply!r}", device=device, code="bcc")
    if any(b >= 0x80 for b in body):
        raise ProtocolError(f"{mnemonic}: 8-bit byte in a 7-bit reply {reply!r}", device=device, code="frame")
    if body[:2] != mnemonic.encode("ascii"):
        raise ProtocolError(
            f"{mnemonic}: reply is for {body[:2]!r} (another request)", device=device, code="frame"
        )
    return body[2:-1]


class BisynchLink(LinkBase):
    """An EI-Bisynch controller on a serial line, seen as Modbus-numbered registers.

    ``registers`` (the series' register name → number table) and ``params`` say which register
    numbers have a mnemonic; reading or writing one without raises NotImplementedYet naming it.
    ``decimals`` are the controller's implied decimals for temperatures and output, so a word read
    here equals what the same register holds over Modbus.
    """

    supports_programs = False
    block_reads = False

    def __init__(
        self,
        line: LineTransport,
        *,
        registers: Mapping[str, int],
        address: int = 1,
        temperature_decimals: int = 0,
        output_decimals: int = 1,
        timeout_s: float = 0.5,
        retries: int = 2,
        params: Mapping[str, BisynchParam] | None = None,
        name: str | None = None,
    ):
        super().__init__(name or line.name, retries)
        self.line = line
        self.address = address
        self.addr = address_chars(address)
        self.timeout = timeout_s
        self.decimals = {"temp": temperature_decimals, "output": output_decimals, "int": 0, "hex": 0}
        params = dict(BISYNCH_PARAMS if params is None else params)
        unknown = set(params) - set(registers)
        if unknown:
            raise ConfigError(f"EI-Bisynch mnemonics for unknown registers: {sorted(unknown)}")
        self.by_register: dict[int, BisynchParam] = {registers[k]: p for k, p in params.items()}
        self.names = {v: k for k, v in registers.items()}

    def supports(self, register: int) -> bool:
        return register in self.by_register

    def _param(self, register: int) -> BisynchParam:
        try:
            return self.by_register[register]
        except KeyError:
            what = self.names.get(register, "no named parameter")
            raise NotImplementedYet(
                f"EI-Bisynch access to register {register} ({what}) not implemented: no mnemonic is known "
                "for it (add one with the 'mnemonics' option if the handbook gives it)"
            ) from None

    def _after_failure(self, exc: DeviceError, again: bool) -> None:
        self.line.flush_input()

    def _read_once(self, register: int, count: int) -> list[int]:
        out = []
        for reg in range(register, register + count):
            p = self._param(reg)
            self.line.flush_input()
            self.line.write(poll_frame(self.address, p.mnemonic))
            reply = self._read_reply(p.mnemonic)
            data = parse_read_reply(reply, p.mnemonic, device=self.name)
            out.append(parse_value(data, p.fmt, self.decimals[p.fmt], device=self.name))
        return out

    def _read_reply(self, mnemonic: str) -> bytes:
        """``STX ... ETX BCC`` or a lone EOT; stray bytes before STX are kept so the parser names them."""
        first = self.line.read_exact(1, self.timeout)
        if first == EOT:
            return first + self.line.pending()
        if first != STX:  # noise: take what came with it and let the parser name it
            raise ProtocolError(
                f"{mnemonic}: garbled reply {first + self.line.pending()!r}", device=self.name, code="garbage"
            )
        try:
            head = self.line.read_until(ETX, self.timeout)
            tail = self.line.read_exact(1, self.timeout)
        except DeviceTimeout as exc:
            raise ProtocolError(
                f"{mnemonic}: reply cut short after {first!r}: {exc}", device=self.name, code="partial"
            ) from exc
        return first + head + tail + self.line.pending()

    def _write_once(self, register: int, value: int) -> None:
        p = self._param(register)
        if p.fmt == "hex":
            raise NotImplementedYet(
                f"EI-Bisynch write of status word {p.mnemonic} not implemented: read-only"
            )
        frame = select_frame(self.address, p.mnemonic, format_value(value, p.fmt, self.decimals[p.fmt]))
        self.line.flush_input()
        self.line.write(frame)
        answer = self.line.read_exact(1, self.timeout) + self.line.pending()
        if answer == ACK:
            return
        if answer == NAK:
            raise ProtocolError(
                f"write {p.mnemonic}: controller refused it (NAK: read-only, out of range or bad BCC)",
                device=self.name,
                code="nak",
            )
        raise ProtocolError(
            f"write {p.mnemonic}: expected ACK or NAK, got {answer!r}", device=self.name, code="garbage"
        )

    def _write_block_once(self, register: int, values: list[int]) -> None:
        for i, v in enumerate(values):
            self._write_once(register + i, v)

    def write_block(self, register: int, values: Sequence[int], *, retry: bool) -> None:
        for i, v in enumerate(values):
            self.write(register + i, v, retry=retry)

    def close(self) -> None:
        self.line.close()

    @property
    def closed(self) -> bool:
        return self.line.closed
