"""Two more wire front ends over the Eurotherm controller + furnace model: Modbus TCP and EI-Bisynch.

The thermal model, programmer and register map are :class:`EurothermEmulator`'s; these classes
only replace the framing, so a furnace behaves the same whichever protocol reaches it.

* :class:`EurothermTcpEmulator` — Modbus TCP (an EPC3016) on 127.0.0.1, port from the OS. The
  MBAP header (transaction id, protocol id 0, length, unit id) is parsed and built here by hand,
  independently of the driver's library (pymodbus), so a framing bug is not mirrored on both
  sides; the PDU is answered by the same code as the RTU emulator's. Faults: the §7 link faults
  (a reply meant for another command comes with another transaction id), ``WRONG_ADDRESS`` (a
  reply from another unit id) and exception replies (:meth:`inject_exception`).
* :class:`EurothermBisynchEmulator` — EI-Bisynch on a pty (framing in
  :mod:`labos.drivers.bisynch`'s docstring). Real controllers use 7 data bits, even parity; a pty
  ignores parity and character size, so parity is *not* exercised here: the emulator checks that
  every byte is 7-bit ASCII (a byte with bit 7 set is treated as a parity error: no answer) and
  emulates corruption at the protocol level (``BAD_CRC`` = a bad BCC). An unknown mnemonic is
  answered with EOT, a refused write (read-only, bad value, bad BCC) with NAK; an address that
  is not ours gets no answer. :meth:`inject_exception` makes the next matching poll answer EOT
  and the next matching write NAK.

Device faults (sensor break, runaway, stuck programme, over-temperature) are the model's methods.
"""

from __future__ import annotations

import struct

from labos.drivers.bisynch import ACK, BISYNCH_PARAMS, ENQ, EOT, ETX, NAK, STX, BisynchParam
from labos.simulator.emulators import LINK_FAULTS, Connection, WireFault
from labos.simulator.emulators.eurotherm import EurothermEmulator
from labos.simulator.emulators.modbus import ModbusError

__all__ = ["EurothermBisynchEmulator", "EurothermTcpEmulator"]


class EurothermTcpEmulator(EurothermEmulator):
    """The controller behind a Modbus TCP server (one unit id; many clients)."""

    default_transport = "tcp"
    supported_faults = (LINK_FAULTS - {WireFault.WRONG_EOL}) | {WireFault.WRONG_ADDRESS}

    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        while len(conn.buffer) >= 7 and not conn.closed:
            tid, proto, length, unit = struct.unpack(">HHHB", conn.buffer[:7])
            if proto != 0 or not 2 <= length <= 254:
                self.frames_ignored += 1
                conn.buffer.clear()
                conn.close()  # a Modbus TCP server drops a connection that sends a bad header
                return
            if len(conn.buffer) < 6 + length:
                return
            pdu = bytes(conn.buffer[7 : 6 + length])
            del conn.buffer[: 6 + length]
            with self.lock:
                self._adu(conn, tid, unit, pdu)

    def _adu(self, conn: Connection, tid: int, unit: int, pdu: bytes) -> None:
        if unit not in (self.slave_address, 0xFF):
            self.frames_ignored += 1
            return
        fc = pdu[0]
        start = struct.unpack(">H", pdu[1:3])[0] if len(pdu) >= 3 else -1
        key = self.key(fc, start)
        self.requests.append(key)
        if self.request_lost(conn, key):
            return
        # the RTU emulator answers an RTU frame: address + PDU (+ 2 CRC bytes it does not look at)
        reply = self._respond(fc, bytes([unit]) + pdu + b"\x00\x00", key)
        self.send_reply(
            conn,
            _mbap(tid, unit, reply),
            request=key,
            other=lambda: _mbap((tid + 1) & 0xFFFF, unit, reply),
        )

    def corrupt(self, fault: WireFault, body: bytes) -> bytes:
        if fault is WireFault.WRONG_ADDRESS:
            return body[:6] + bytes([(body[6] + 1) & 0xFF]) + body[7:]
        return super().corrupt(fault, body)


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


class EurothermBisynchEmulator(EurothermEmulator):
    """The controller behind an EI-Bisynch port (address 0..99, ``slave_address``)."""

    supported_faults = (LINK_FAULTS - {WireFault.DROP, WireFault.WRONG_EOL}) | {WireFault.BAD_CRC}

    def __init__(self, *args, params: dict[str, BisynchParam] | None = None, **kw):
        super().__init__(*args, **kw)
        if not 0 <= self.slave_address <= 99:
            raise ValueError(f"EI-Bisynch address must be 0..99, got {self.slave_address}")
        g, u = divmod(self.slave_address, 10)
        self.addr = f"{g}{g}{u}{u}".encode()
        table = BISYNCH_PARAMS if params is None else params
        self.params = {p.mnemonic.encode(): p for p in table.values() if p.register in self.reg}
        self.decimals = {
            "temp": self.series.temperature_decimals,
            "output": self.series.output_decimals,
            "int": 0,
            "hex": 0,
        }
        self.parity_errors = 0

    # -- framing ---------------------------------------------------------------------------------
    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        buf = conn.buffer
        while True:
            i = buf.find(EOT)
            if i < 0:
                buf.clear()
                return
            del buf[:i]
            if len(buf) < 6:
                return
            if EOT[0] in buf[1:5]:  # a lone EOT (end of a session) before the next message
                del buf[:1]
                continue
            if buf[5:6] == STX:
                j = buf.find(ETX, 6)
                if j < 0 or len(buf) < j + 2:
                    if len(buf) > 80:  # no ETX in sight: noise
                        buf.clear()
                    return
                frame = bytes(buf[: j + 2])
                del buf[: j + 2]
            else:
                if len(buf) < 8:
                    return
                frame = bytes(buf[:8])
                del buf[:8]
            with self.lock:
                self._message(conn, frame)

    def _message(self, conn: Connection, frame: bytes) -> None:
        if any(b >= 0x80 for b in frame):
            self.parity_errors += 1  # on a real 7E1 line: a parity/framing error, no answer
            return
        if frame[1:5] != self.addr:
            self.frames_ignored += 1
            return
        if frame[5:6] == STX:
            self._select(conn, frame)
        elif frame[7:8] == ENQ:
            self._poll(conn, frame[5:7])
        else:
            self.frames_ignored += 1

    def _format(self, p: BisynchParam, word: int) -> bytes:
        if p.fmt == "hex":
            return f">{word & 0xFFFF:04X}".encode()
        signed = word - 0x10000 if word >= 0x8000 else word
        dec = self.decimals[p.fmt]
        return (str(signed) if dec == 0 else f"{signed / 10**dec:.{dec}f}").encode()

    def _answer(self, mnemonic: bytes, data: bytes) -> bytes:
        body = mnemonic + data + ETX
        check = 0
        for b in body:
            check ^= b
        return STX + body + bytes([check])

    def _poll(self, conn: Connection, mnemonic: bytes) -> None:
        key = f"{mnemonic.decode('ascii', 'replace')}?"
        self.requests.append(key)
        if self.request_lost(conn, key):
            return
        p = self.params.get(mnemonic)
        if p is None or self._take_exception(key):
            self.send_reply(conn, EOT, request=key)
            return
        reply = self._answer(mnemonic, self._format(p, self.read_holding(self.reg[p.register])))
        self.send_reply(conn, reply, request=key, other=lambda: self._other_reply(mnemonic))

    def _other_reply(self, mnemonic: bytes) -> bytes:
        other = next(m for m in self.params if m != mnemonic)
        p = self.params[other]
        return self._answer(other, self._format(p, self.read_holding(self.reg[p.register])))

    def _select(self, conn: Connection, frame: bytes) -> None:
        body, check = frame[6:-1], frame[-1]
        mnemonic, data = body[:2], body[2:-1]
        key = f"{mnemonic.decode('ascii', 'replace')}={data.decode('ascii', 'replace')}"
        self.requests.append(key)
        if self.request_lost(conn, key):
            return
        self.send_reply(conn, self._apply_write(key, mnemonic, data, body, check), request=key)

    def _apply_write(self, key: str, mnemonic: bytes, data: bytes, body: bytes, check: int) -> bytes:
        bcc = 0
        for b in body:
            bcc ^= b
        p = self.params.get(mnemonic)
        if bcc != check or p is None or p.fmt == "hex" or self._take_exception(key):
            return NAK
        try:
            number = float(data.decode("ascii"))
        except ValueError:
            return NAK
        word = round(number * 10 ** self.decimals[p.fmt])
        if not -0x8000 <= word <= 0xFFFF:
            return NAK
        try:
            self.write_holding(self.reg[p.register], word & 0xFFFF)
        except ModbusError:
            return NAK
        return ACK

    def _take_exception(self, key: str) -> bool:
        for i, (_code, match) in enumerate(self._exceptions):
            if match is None or key.lower().startswith(match.lower()):
                del self._exceptions[i]
                return True
        return False

    def corrupt(self, fault: WireFault, body: bytes) -> bytes:
        if fault is WireFault.BAD_CRC:  # a bad BCC (or, on a one-byte ACK/NAK, a flipped bit)
            return body[:-1] + bytes([body[-1] ^ 0x01])
        return super().corrupt(fault, body)
