"""Register links: how the furnace driver reaches a controller's parameters, whatever the wire.

Why a separate layer: the furnace logic (programme upload, run, status, sensor break, limits, never
restarting a programme blindly) is the same for a 2416 on Modbus RTU, an EPC3016 on Modbus TCP and
an older controller on EI-Bisynch; only the framing differs. A :class:`RegisterLink` shows the
controller as Modbus-numbered 16-bit words (the controllers' own parameter numbering) and types
every failure as a :mod:`labos.drivers.errors` exception. The shared retry policy lives in
:class:`LinkBase`: reads and idempotent writes are retried after a timeout, a busy reply or a damaged
frame, never after the controller's considered refusal, and a caller can forbid retries (the
programme RUN command).

* :class:`ModbusRtuLink` — minimalmodbus over a :class:`~labos.drivers.transport.SerialLine`
  (framing and CRC-16 by minimalmodbus; this module adds logging of every frame, early return on
  exception replies and detection of trailing bytes).
* :class:`ModbusTcpLink` — the pymodbus 3.x synchronous TCP client (MBAP framing, transaction and
  unit-id checks by pymodbus); every packet is logged through the transport logger and the
  connection is re-opened after any failure so a late reply is never read as the next answer.
* :class:`labos.drivers.bisynch.BisynchLink` — EI-Bisynch (ASCII mnemonics), in its own module.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import minimalmodbus
from labos.drivers.errors import DeviceBusy, DeviceError, DeviceFault, DeviceTimeout, ProtocolError
from labos.drivers.transport import ConnectionLost, LineTransport, retry_call

log = logging.getLogger("labos.drivers.transport")

__all__ = ["LinkBase", "ModbusRtuLink", "ModbusTcpLink", "RegisterLink", "modbus_exception"]

T = TypeVar("T")

#: Modbus exception codes the controllers send (PROTOCOLS.md §2)
MODBUS_EXCEPTIONS = {
    1: "illegal function",
    2: "illegal data address (or read-only register)",
    3: "illegal data value",
    4: "device failure",
    6: "busy",
}
#: ProtocolError codes that mean "the frame was damaged on the wire": safe to ask again
DAMAGED = ("crc", "address", "frame", "garbage", "partial", "bcc")


@runtime_checkable
class RegisterLink(Protocol):
    """What the furnace logic needs from a wire: numbered 16-bit words, typed errors."""

    name: str
    #: False where the protocol cannot reach the programmer's segment table (EI-Bisynch)
    supports_programs: bool

    def supports(self, register: int) -> bool: ...
    def read(self, register: int, count: int = 1) -> list[int]: ...
    def read_set(self, registers: Sequence[int]) -> dict[int, int]: ...
    def write(self, register: int, value: int, *, retry: bool) -> None: ...
    def write_block(self, register: int, values: Sequence[int], *, retry: bool) -> None: ...
    def close(self) -> None: ...


def modbus_exception(code: int, what: str, device: str, retry_safe: bool) -> DeviceError:
    """The typed error for a Modbus exception reply ``code`` (the same for RTU and TCP)."""
    meaning = MODBUS_EXCEPTIONS.get(code, "unknown exception")
    text = f"{what}: {meaning} (exception {code:02d})"
    if code == 6:
        return DeviceBusy(text, device=device, code=6, safe_to_retry=retry_safe)
    if code in (1, 2, 3):
        return ProtocolError(text, device=device, code=code)
    return DeviceFault(text, device=device, code=code)


class LinkBase:
    """Retry policy and the word-level API; subclasses implement the ``_*_once`` methods."""

    supports_programs = True
    #: read neighbouring registers in one request (Modbus) instead of one by one
    block_reads = True
    max_block = 16

    def __init__(self, name: str, retries: int):
        if retries < 0:
            raise ValueError(f"{name}: retries must be >= 0, got {retries}")
        self.name = name
        self.retries = retries

    # -- implemented per wire --------------------------------------------------------------------
    def _read_once(self, register: int, count: int) -> list[int]:
        raise NotImplementedError

    def _write_once(self, register: int, value: int) -> None:
        raise NotImplementedError

    def _write_block_once(self, register: int, values: list[int]) -> None:
        raise NotImplementedError

    def _after_failure(self, exc: DeviceError, again: bool) -> None:
        """Clean the line after a failed exchange (flush, reconnect)."""

    def supports(self, register: int) -> bool:
        return True

    # -- shared ----------------------------------------------------------------------------------
    def _call(self, what: str, op: Callable[[], T], *, retry: bool) -> T:
        def once() -> T:
            try:
                return op()
            except DeviceError as exc:
                exc.safe_to_retry = retry and _retryable(exc)
                if not exc.device:
                    exc.device = self.name
                raise

        return retry_call(
            once,
            retries=self.retries if retry else 0,
            what=what,
            catch=(DeviceError,),
            retry_if=_retryable,
            on_failure=self._after_failure,
        )

    def read(self, register: int, count: int = 1) -> list[int]:
        """``count`` unsigned words from ``register`` on (function 03); safe to retry."""
        return self._call(f"read register {register}", lambda: self._read_once(register, count), retry=True)

    def read_set(self, registers: Sequence[int]) -> dict[int, int]:
        """Several registers: one block request where they lie close together, else one each."""
        regs = sorted(set(registers))
        if self.block_reads and regs and regs[-1] - regs[0] < self.max_block:
            words = self.read(regs[0], regs[-1] - regs[0] + 1)
            return {r: words[r - regs[0]] for r in regs}
        return {r: self.read(r)[0] for r in regs}

    def write(self, register: int, value: int, *, retry: bool) -> None:
        """One word (function 06); ``value`` may be negative (two's complement on the wire)."""
        self._call(
            f"write register {register}", lambda: self._write_once(register, value & 0xFFFF), retry=retry
        )

    def write_block(self, register: int, values: Sequence[int], *, retry: bool) -> None:
        """Consecutive words (function 16)."""
        words = [v & 0xFFFF for v in values]
        self._call(
            f"write {len(words)} registers at {register}",
            lambda: self._write_block_once(register, words),
            retry=retry,
        )


def _retryable(err: DeviceError) -> bool:
    return isinstance(err, DeviceTimeout | DeviceBusy) or (
        isinstance(err, ProtocolError) and err.code in DAMAGED
    )


# -- Modbus RTU (minimalmodbus) ----------------------------------------------------------------
#: minimalmodbus 2.x has Instrument._perform_command(functioncode, payload) -> reply payload
_FAST_READ = callable(getattr(minimalmodbus.Instrument, "_perform_command", None))


class _ModbusPort:
    """The serial-port surface minimalmodbus uses, over a :class:`LineTransport`.

    It logs through the transport, returns exception replies (5 bytes) as soon as they arrive
    instead of waiting out the timeout, and appends any bytes already waiting after a frame so a
    long frame fails the CRC check instead of polluting the next exchange.
    """

    def __init__(self, line: LineTransport, baudrate: int, timeout: float):
        self.line = line
        self.port = line.name
        self.baudrate = baudrate
        self.timeout = timeout
        self.last_rx = b""

    @property
    def is_open(self) -> bool:
        return not self.line.closed

    def open(self) -> None:
        if self.line.closed:
            raise DeviceError("serial port is closed", device=self.line.name)

    def close(self) -> None:
        self.line.close()

    def reset_input_buffer(self) -> None:
        self.line.flush_input()

    def reset_output_buffer(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def write(self, data: bytes) -> int:
        self.line.write(data)
        return len(data)

    def read(self, n: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        head = self.line.read_up_to(min(n, 2), self.timeout)
        if len(head) == 2 and head[1] & 0x80:
            want = 3  # exception reply: addr, fc|0x80, code, crc lo, crc hi
        else:
            want = n - len(head)
        rest = self.line.read_up_to(want, max(0.0, deadline - time.monotonic())) if want > 0 else b""
        data = head + rest + self.line.pending()
        self.last_rx = data
        return data


class ModbusRtuLink(LinkBase):
    """One slave address on a serial line, through minimalmodbus."""

    def __init__(
        self,
        line: LineTransport,
        *,
        slave_address: int = 1,
        baudrate: int = 9600,
        timeout_s: float = 0.5,
        retries: int = 2,
        name: str | None = None,
    ):
        super().__init__(name or line.name, retries)
        if not 1 <= slave_address <= 247:
            from labos.errors import ConfigError

            raise ConfigError(f"Modbus slave address must be 1..247, got {slave_address}")
        self.line = line
        self.port = _ModbusPort(line, baudrate, timeout_s)
        self.inst = minimalmodbus.Instrument(self.port, slave_address)  # type: ignore[arg-type]
        self.inst.clear_buffers_before_each_transaction = True
        self.inst.close_port_after_each_call = False

    def _typed(self, exc: Exception, what: str) -> DeviceError:
        rx = self.port.last_rx
        if isinstance(exc, minimalmodbus.NoResponseError):
            return DeviceTimeout(f"{what}: no reply", device=self.name, code="timeout")
        if isinstance(exc, minimalmodbus.SlaveReportedException):
            code = (
                rx[2]
                if len(rx) >= 3 and rx[1] & 0x80
                else 6
                if isinstance(exc, minimalmodbus.SlaveDeviceBusyError)
                else 4
            )
            return modbus_exception(code, what, self.name, False)
        if isinstance(exc, minimalmodbus.InvalidResponseError):
            text = str(exc)
            code = (
                "crc"
                if "CRC" in text or "checksum" in text
                else "address"
                if "slave" in text.lower()
                else "frame"
            )
            return ProtocolError(f"{what}: invalid reply ({code}): {rx!r}", device=self.name, code=code)
        if isinstance(exc, DeviceError):
            return exc
        return ProtocolError(f"{what}: {exc}", device=self.name, code="modbus")

    def _mm(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except (minimalmodbus.ModbusException, OSError, DeviceError) as exc:
            raise self._typed(exc, what) from exc

    def _read_once(self, register: int, count: int) -> list[int]:
        what = f"read register {register}"
        if not _FAST_READ:
            return self._mm(what, self.inst.read_registers, register, count, functioncode=3)
        # Hot path (every status poll): minimalmodbus's public read spends about as long checking
        # its own arguments as the pty round trip takes; its internal _perform_command (2.x) still
        # builds the frame and checks the reply's CRC, address, function code and exception bit.
        if not (0 <= register <= 0xFFFF and 1 <= count <= 125):
            raise ValueError(f"{self.name}: cannot read {count} registers at {register}")
        payload = self._mm(what, self.inst._perform_command, 3, struct.pack(">HH", register, count))
        if len(payload) != 1 + 2 * count or payload[0] != 2 * count:
            raise ProtocolError(f"{what}: reply carries {payload!r}", device=self.name, code="frame")
        return list(struct.unpack(f">{count}H", payload[1:]))

    def _write_once(self, register: int, value: int) -> None:
        self._mm(f"write register {register}", self.inst.write_register, register, value, 0, functioncode=6)

    def _write_block_once(self, register: int, values: list[int]) -> None:
        self._mm(f"write registers {register}", self.inst.write_registers, register, values)

    def close(self) -> None:
        self.line.close()

    @property
    def closed(self) -> bool:
        return self.line.closed


# -- Modbus TCP (pymodbus) ---------------------------------------------------------------------
class ModbusTcpLink(LinkBase):
    """A Modbus TCP server (EPC3016, a gateway) through the pymodbus 3.x synchronous client.

    pymodbus does the MBAP framing and checks transaction and unit ids; its own retries are off
    (``retries=0``) so that :class:`LinkBase` decides what may be repeated. Every packet goes to
    the ``labos.drivers.transport`` logger. After any failure the connection is closed and opened
    afresh on the next request, so a late reply can never be taken for the next answer.
    """

    def __init__(
        self,
        host: str,
        port: int = 502,
        *,
        unit_id: int = 1,
        timeout_s: float = 0.5,
        retries: int = 2,
        name: str = "",
    ):
        from pymodbus.client import ModbusTcpClient

        super().__init__(name or f"{host}:{port}", retries)
        if not 0 <= unit_id <= 255:
            from labos.errors import ConfigError

            raise ConfigError(f"Modbus TCP unit id must be 0..255, got {unit_id}")
        self.unit_id = unit_id
        self.rx = bytearray()  # what arrived during the current request
        self.client = ModbusTcpClient(host, port=port, timeout=timeout_s, retries=0, trace_packet=self._trace)
        self._closed = False
        if not self.client.connect():
            raise ConnectionLost(f"cannot connect to {host}:{port}", device=self.name, code="connect")

    def _trace(self, sending: bool, data: bytes) -> bytes:
        log.debug("%s %s %r", self.name, ">" if sending else "<", data)
        if not sending:
            self.rx += data
        return data

    def _pm(self, what: str, fc: int, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        if self._closed:
            raise ConnectionLost(f"{what}: link is closed", device=self.name)
        self.rx.clear()
        try:
            reply = fn(*args, device_id=self.unit_id, **kw)
        except ConnectionException as exc:
            raise ConnectionLost(f"{what}: connection lost: {exc}", device=self.name) from exc
        except ModbusIOException as exc:
            text = str(exc)
            if "device id" in text:
                raise ProtocolError(
                    f"{what}: reply from another unit id", device=self.name, code="address"
                ) from exc
            if "transaction id" in text:
                raise ProtocolError(
                    f"{what}: reply to another request (transaction id)", device=self.name, code="frame"
                ) from exc
            if len(self.rx) >= 7 and self.rx[2:4] == b"\x00\x00" and self.rx[6] != self.unit_id:
                raise ProtocolError(
                    f"{what}: reply from unit id {self.rx[6]}, not {self.unit_id}",
                    device=self.name,
                    code="address",
                ) from exc
            if self.rx:  # bytes came, but no valid frame: garbage or a frame cut short
                raise ProtocolError(
                    f"{what}: invalid reply {bytes(self.rx)!r}", device=self.name, code="garbage"
                ) from exc
            raise DeviceTimeout(f"{what}: no reply", device=self.name, code="timeout") from exc
        except (ModbusException, ValueError, IndexError, KeyError) as exc:  # decode failures
            raise ProtocolError(
                f"{what}: invalid reply {bytes(self.rx)!r}: {exc}", device=self.name, code="frame"
            ) from exc
        except OSError as exc:
            raise ConnectionLost(f"{what}: {exc}", device=self.name) from exc
        if reply.isError():
            code = getattr(reply, "exception_code", None)
            if code is None:
                raise ProtocolError(f"{what}: error reply {reply}", device=self.name, code="frame")
            raise modbus_exception(int(code), what, self.name, False)
        if getattr(reply, "function_code", fc) != fc:  # pymodbus decodes any known reply type
            raise ProtocolError(
                f"{what}: reply has function code {reply.function_code}, not {fc}",
                device=self.name,
                code="frame",
            )
        return reply

    def _after_failure(self, exc: DeviceError, again: bool) -> None:
        self.client.close()  # reconnects on the next request

    def _read_once(self, register: int, count: int) -> list[int]:
        reply = self._pm(
            f"read register {register}", 3, self.client.read_holding_registers, register, count=count
        )
        words = list(getattr(reply, "registers", ()))
        if len(words) != count:
            raise ProtocolError(
                f"read register {register}: {len(words)} words for {count} asked",
                device=self.name,
                code="frame",
            )
        return words

    def _write_once(self, register: int, value: int) -> None:
        reply = self._pm(f"write register {register}", 6, self.client.write_register, register, value)
        if getattr(reply, "address", register) != register:
            raise ProtocolError(
                f"write register {register}: echo names register {reply.address}",
                device=self.name,
                code="frame",
            )

    def _write_block_once(self, register: int, values: list[int]) -> None:
        reply = self._pm(f"write registers {register}", 16, self.client.write_registers, register, values)
        if getattr(reply, "address", register) != register or getattr(reply, "count", len(values)) != len(
            values
        ):
            raise ProtocolError(
                f"write registers {register}: echo does not match", device=self.name, code="frame"
            )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.client.close()

    @property
    def closed(self) -> bool:
        return self._closed
