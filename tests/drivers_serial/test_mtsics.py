"""MT-SICS balance driver against its emulator on a real pty: normal use and every fault."""

from __future__ import annotations

import logging

import pytest
from labos.drivers.errors import DeviceBusy, DeviceTimeout, ProtocolError
from labos.drivers.mtsics import MtSicsBalance, WeightOutOfRange
from labos.drivers.protocols import Balance
from labos.simulator.emulators import WireFault


def test_identify_zero_tare_and_weigh(balance, balance_emu, manual_clock, caplog):
    assert isinstance(balance, Balance)
    caplog.set_level(logging.DEBUG, logger="labos.drivers.transport")
    assert balance.identify() == "XPE206DR 220.00000 g SN B948123456"
    assert any("> b'I2\\r\\n'" in r.getMessage() for r in caplog.records)  # every exchange is logged
    assert any("< b'I2 A" in r.getMessage() for r in caplog.records)

    balance.zero()
    balance_emu.place(12_345.67)
    manual_clock.advance(30)
    assert balance.weight_mg() == pytest.approx(12_345.67, abs=0.05)
    assert balance.tare() == pytest.approx(12_345.67, abs=0.05)
    assert balance.tare_value_mg() == pytest.approx(12_345.67, abs=0.05)
    assert balance.weight_mg() == pytest.approx(0.0, abs=0.05)
    balance_emu.place(250.0)
    manual_clock.advance(30)
    assert balance.weight_mg() == pytest.approx(250.0, abs=0.05)
    balance.clear_tare()
    assert balance.weight_mg() == pytest.approx(12_595.67, abs=0.05)
    assert balance.reset() == "B948123456"


def test_immediate_weight_while_settling_is_dynamic(balance, balance_emu, manual_clock):
    balance_emu.place(5000.0)
    manual_clock.advance(0.5)  # settling (tau 1 s): far from the final value
    w = balance.weight_mg(stable=False)
    assert 500 < w < 4900
    manual_clock.advance(30)
    assert balance.weight_mg(stable=False) == pytest.approx(5000.0, abs=0.05)


def test_stable_weight_waits_for_settling(fast_clock):
    from labos.drivers.registry import DeviceSpec, open_device
    from labos.simulator.emulators.mtsics import MtSicsEmulator

    with MtSicsEmulator(fast_clock, settle_tau_s=3.0) as emu:
        dev = open_device(
            DeviceSpec(name="b", kind="mtsics_balance", **emu.address, options={"timeout_s": 0.5})
        )
        try:
            emu.place(1000.0)
            assert dev.weight_mg(stable=True) == pytest.approx(1000.0, abs=0.06)
        finally:
            dev.close()


@pytest.mark.parametrize("code", ["ES", "EL"])
def test_general_errors_are_typed_and_not_retried(balance, balance_emu, code):
    balance_emu.inject_error(code, match="Z")
    with pytest.raises(ProtocolError) as ei:
        balance.zero()
    assert ei.value.code == code
    assert balance_emu.requests.count("Z") == 1
    balance.zero()  # the balance is fine afterwards


def test_transmission_error_is_retried_once(balance, balance_emu):
    balance_emu.inject_error("ET", match="SI")
    balance.weight_mg(stable=False)
    assert balance_emu.requests.count("SI") == 2
    balance_emu.inject_error("ET", match="SI", count=2)
    with pytest.raises(ProtocolError) as ei:
        balance.weight_mg(stable=False)
    assert ei.value.code == "ET" and ei.value.safe_to_retry


def test_never_stable_gives_busy(balance, balance_emu, fast_clock):
    balance_emu.clock = fast_clock  # let the stability timeout pass in fast virtual time
    balance_emu.never_stable = True
    with pytest.raises(DeviceBusy) as ei:
        balance.weight_mg(stable=True)
    assert ei.value.code == "I"
    with pytest.raises(DeviceBusy):
        balance.tare()
    assert balance.weight_mg(stable=False) is not None


def test_drift_is_dynamic_and_never_stable(balance, balance_emu, fast_clock):
    balance_emu.clock = fast_clock
    balance_emu.set_drift(0.02)
    assert isinstance(balance.weight_mg(stable=False), float)
    assert balance_emu.requests[-1] == "SI"
    with pytest.raises(DeviceBusy):
        balance.weight_mg(stable=True)


def test_overload_and_underload(balance, balance_emu, manual_clock):
    balance_emu.overload()
    manual_clock.advance(30)
    for stable in (True, False):
        with pytest.raises(WeightOutOfRange) as ei:
            balance.weight_mg(stable=stable)
        assert ei.value.code == "+"
    with pytest.raises(WeightOutOfRange):
        balance.zero()
    balance_emu.underload()
    manual_clock.advance(30)
    with pytest.raises(WeightOutOfRange) as ei:
        balance.weight_mg()
    assert ei.value.code == "-"


def test_zero_outside_range_is_refused(balance, balance_emu, manual_clock):
    balance_emu.place(50_000.0)  # more than 2 % of 220 g
    manual_clock.advance(30)
    with pytest.raises(WeightOutOfRange):
        balance.zero()


RECOVERABLE = [
    WireFault.NO_REPLY,
    WireFault.PARTIAL,
    WireFault.LATE,
    WireFault.GARBAGE,
    WireFault.WRONG_EOL,
    WireFault.OTHER_REPLY,
]


@pytest.mark.parametrize("fault", RECOVERABLE)
def test_link_fault_on_a_read_is_retried(balance, balance_emu, manual_clock, fault):
    balance_emu.place(100.0)
    manual_clock.advance(30)
    balance_emu.inject(fault, match="SI", delay_s=0.25)
    assert balance.weight_mg(stable=False) == pytest.approx(100.0, abs=0.05)
    assert balance_emu.requests.count("SI") == 2
    # whatever arrives late is discarded, the next command gets its own reply
    assert balance.tare_value_mg() == pytest.approx(0.0)


@pytest.mark.parametrize(
    "fault, error",
    [
        (WireFault.NO_REPLY, DeviceTimeout),
        (WireFault.PARTIAL, DeviceTimeout),
        (WireFault.GARBAGE, ProtocolError),
        (WireFault.WRONG_EOL, ProtocolError),
        (WireFault.OTHER_REPLY, ProtocolError),
    ],
)
def test_persistent_link_fault_gives_typed_error(balance, balance_emu, fault, error):
    balance_emu.inject(fault, count=2, match="SI")
    with pytest.raises(error):
        balance.weight_mg(stable=False)
    assert balance_emu.requests.count("SI") == 2  # one retry, bounded
    balance.weight_mg(stable=False)  # and the link works again


def test_serial_emulator_cannot_drop_a_connection(balance_emu):
    with pytest.raises(ValueError, match="does not apply"):
        balance_emu.inject(WireFault.DROP)


def test_unknown_command_is_es(balance):
    assert isinstance(balance, MtSicsBalance)
    with pytest.raises(ProtocolError) as ei:
        balance.command("XYZ")
    assert ei.value.code == "ES"
