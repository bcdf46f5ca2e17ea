"""Modbus RTU slave framing for emulators: CRC-16, request parsing, replies and framing faults.

Written independently of the driver's library (minimalmodbus) on purpose, so a framing bug on
one side is not mirrored on the other. Device logic subclasses :class:`ModbusRtuEmulator` and
implements :meth:`read_holding` / :meth:`write_holding`.
"""

from __future__ import annotations

import struct

from labos.simulator.clock import Clock
from labos.simulator.emulators import LINK_FAULTS, Connection, Emulator, WireFault

__all__ = ["ModbusError", "ModbusRtuEmulator", "crc16"]


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _table()


def crc16(data: bytes) -> bytes:
    """CRC-16/MODBUS (init 0xFFFF, reflected poly 0xA001), low byte first."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return struct.pack("<H", crc)


class ModbusError(Exception):
    """Raised by register handlers; becomes an exception reply with ``code``."""

    def __init__(self, code: int):
        super().__init__(f"modbus exception {code}")
        self.code = code


class ModbusRtuEmulator(Emulator):
    """A Modbus RTU slave on a pty: functions 03, 06 and 16; everything else → exception 01."""

    #: a serial line cannot drop and frames have no line ending; framing faults instead
    supported_faults = (LINK_FAULTS - {WireFault.DROP, WireFault.WRONG_EOL}) | {
        WireFault.BAD_CRC,
        WireFault.WRONG_ADDRESS,
        WireFault.LONG,
    }

    def __init__(
        self, clock: Clock | None = None, *, slave_address: int = 1, name: str = "modbus", seed: int = 0
    ):
        super().__init__(clock, name=name, seed=seed)
        self.slave_address = slave_address
        self._exceptions: list[tuple[int, str | None]] = []
        self.frames_ignored = 0  # bad CRC or another slave's address

    @staticmethod
    def key(fc: int, address: int) -> str:
        """The ``match`` string for faults on requests with this function code and start address."""
        return f"{fc}/{address}/"

    def inject_exception(self, code: int, *, match: str | None = None, count: int = 1) -> None:
        """Answer the next ``count`` requests (matching ``key(fc, addr)``) with exception ``code``."""
        with self.lock:
            self._exceptions.extend([(code, match)] * count)

    # -- register access, implemented by devices -------------------------------------------------
    def read_holding(self, address: int) -> int:
        raise NotImplementedError

    def write_holding(self, address: int, value: int) -> None:
        raise NotImplementedError

    # -- framing ---------------------------------------------------------------------------------
    def on_data(self, conn: Connection, data: bytes) -> None:
        conn.buffer += data
        while len(conn.buffer) >= 4:
            fc = conn.buffer[1]
            if fc in (3, 4, 6):
                size = 8
            elif fc == 16:
                if len(conn.buffer) < 7:
                    return
                size = 9 + conn.buffer[6]
            else:
                size = len(conn.buffer)  # unknown function: the whole burst is one frame
            if len(conn.buffer) < size:
                return
            frame = bytes(conn.buffer[:size])
            del conn.buffer[:size]
            with self.lock:
                self._frame(conn, frame)

    def _frame(self, conn: Connection, frame: bytes) -> None:
        if crc16(frame[:-2]) != frame[-2:]:
            self.frames_ignored += 1  # a slave ignores a corrupted request: the master times out
            conn.buffer.clear()
            return
        addr, fc = frame[0], frame[1]
        if addr != self.slave_address:
            self.frames_ignored += 1
            return
        start = struct.unpack(">H", frame[2:4])[0] if len(frame) >= 6 else -1
        key = self.key(fc, start)
        self.requests.append(key)
        if self.request_lost(conn, key):
            return
        pdu = self._respond(fc, frame, key)
        self.send_frame(conn, pdu, key, fc, start)

    def _respond(self, fc: int, frame: bytes, key: str) -> bytes:
        for i, (code, match) in enumerate(self._exceptions):
            if match is None or key.startswith(match):
                del self._exceptions[i]
                return bytes([fc | 0x80, code])
        try:
            if fc in (3, 4):
                start, count = struct.unpack(">HH", frame[2:6])
                if not 1 <= count <= 125:
                    raise ModbusError(3)
                values = [self.read_holding(start + i) & 0xFFFF for i in range(count)]
                return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *values)
            if fc == 6:
                start, value = struct.unpack(">HH", frame[2:6])
                self.write_holding(start, value)
                return frame[1:6]
            if fc == 16:
                start, count, nbytes = struct.unpack(">HHB", frame[2:7])
                if nbytes != 2 * count or not 1 <= count <= 123:
                    raise ModbusError(3)
                values = struct.unpack(f">{count}H", frame[7 : 7 + nbytes])
                for i in range(count):  # validate all before writing any
                    self.check_writable(start + i, values[i])
                for i, v in enumerate(values):
                    self.write_holding(start + i, v)
                return bytes([16]) + struct.pack(">HH", start, count)
            raise ModbusError(1)
        except ModbusError as exc:
            return bytes([fc | 0x80, exc.code])

    def check_writable(self, address: int, value: int) -> None:
        """Raise ModbusError if a write would be refused (default: accept)."""

    def send_frame(self, conn: Connection, pdu: bytes, key: str, fc: int, start: int) -> None:
        adu = bytes([self.slave_address]) + pdu
        self.send_reply(conn, adu + crc16(adu), request=key, other=lambda: self._other_frame(pdu, start))

    def corrupt(self, fault: WireFault, body: bytes) -> bytes:
        """The framing faults: a bad CRC, another slave's address, trailing bytes."""
        if fault is WireFault.BAD_CRC:
            return body[:-2] + bytes([body[-2] ^ 0xFF, body[-1]])
        if fault is WireFault.WRONG_ADDRESS:
            other = bytes([(self.slave_address % 247) + 1]) + body[1:-2]
            return other + crc16(other)
        if fault is WireFault.LONG:
            return body + b"\x00\x00\x00"
        return super().corrupt(fault, body)

    def _other_frame(self, pdu: bytes, start: int) -> bytes:
        """A valid reply to a different request: reads get a different register count, writes an
        echo of another address."""
        if pdu[0] in (3, 4):
            alt = bytes([pdu[0], pdu[1] + 2]) + pdu[2:] + b"\x00\x00"
        elif pdu[0] in (6, 16):
            alt = pdu[:1] + struct.pack(">H", (start + 1) & 0xFFFF) + pdu[3:]
        else:
            alt = bytes([3, 2, 0, 0])
        adu = bytes([self.slave_address]) + alt
        return adu + crc16(adu)
