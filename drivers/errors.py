"""Typed device errors: every status or error code a device can send maps to one of these."""

from __future__ import annotations

from labos.errors import LabosError


class DeviceError(LabosError):
    """A device refused, failed or could not be reached. ``code`` is the device's own code."""

    def __init__(
        self, message: str, *, device: str = "", code: str | int | None = None, safe_to_retry: bool = False
    ):
        super().__init__(f"{device}: {message}" if device else message)
        self.device = device
        self.code = code
        self.safe_to_retry = safe_to_retry


class DeviceTimeout(DeviceError):
    """No (complete) reply in time. The command may or may not have been executed."""


class ProtocolError(DeviceError):
    """A reply that does not follow the protocol (garbage, wrong length, bad checksum, wrong echo)."""


class DeviceFault(DeviceError):
    """The device is in a fault state (sensor break, emergency stop...) that needs an explicit reset."""


class DeviceBusy(DeviceError):
    """The device is busy or the command is not executable now."""


class SafetyLimitError(DeviceError):
    """The driver refused a command before sending it because it breaks a configured safety limit."""
