"""Reading the 4G modem through ModemManager: `mmcli -L -K` and `mmcli -m 0 -K` output in the states a
receiver meets, parsed by pure functions. The samples follow ModemManager 1.20's key-value format for a
Quectel EC25 (as Raspberry Pi OS Bookworm ships it); they were written for these tests, not captured from a
device, so check them against a real modem's output when one is at hand."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from receivers.agent.hardware import PiHardware
from receivers.agent.modem import ModemReader, parse_keyvalues, parse_modem, parse_modem_list

SAMPLES = Path(__file__).parent / "mmcli_samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_the_modem_list_gives_the_indexes() -> None:
    assert parse_modem_list(sample("list-one.txt")) == [0]
    assert parse_modem_list(sample("list-none.txt")) == []
    assert parse_modem_list("") == []


def test_key_values_leave_out_modemmanagers_empty_marker() -> None:
    values = parse_keyvalues(sample("modem-connected-lte.txt"))
    assert values["modem.generic.state"] == "connected"
    assert values["modem.generic.ports.value[1]"] == "cdc-wdm0 (qmi)"  # a value with spaces and parentheses
    assert values["modem.generic.supported-modes.value[1]"] == "allowed: 2g, 3g, 4g; preferred: none"  # a colon
    assert "modem.3gpp.pco" not in values and "modem.cdma.meid" not in values


def test_a_connected_lte_modem() -> None:
    status = parse_modem(sample("modem-connected-lte.txt"), 0)
    assert status is not None
    assert (status.state, status.signal_quality_pct, status.signal_recent) == ("connected", 67, True)
    assert (status.access_technology, status.operator) == ("lte", "Viettel")
    assert status.model == "QUECTEL Mobile Broadband Module"
    assert status.signal_dbm == pytest.approx(-71.5)  # -113 dBm + 67 % of the 62 dB +CSQ range
    assert "signal 67 %" in status.summary() and "Viettel" in status.summary()


def test_a_weak_stale_reading_on_3g_without_an_operator_name() -> None:
    status = parse_modem(sample("modem-registered-3g-weak.txt"), 0)
    assert status is not None
    assert (status.state, status.signal_quality_pct, status.signal_recent) == ("registered", 12, False)
    assert (status.access_technology, status.operator) == ("umts", "45202")  # the MCC-MNC code instead
    assert status.signal_dbm == pytest.approx(-105.6)
    assert "stale" in status.summary()


@pytest.mark.parametrize("name", ["modem-disabled.txt", "modem-searching.txt"])
def test_no_signal_reading_while_not_registered(name: str) -> None:
    # A disabled modem reports quality 0 and a searching one an old figure: neither is a reading.
    status = parse_modem(sample(name), 0)
    assert status is not None and status.state in ("disabled", "searching")
    assert status.signal_quality_pct is None and status.signal_dbm is None
    assert status.access_technology is None and status.operator is None
    assert "no signal reading" in status.summary()


def test_output_that_describes_no_modem() -> None:
    assert parse_modem("error: couldn't find modem\n", 0) is None


def fake_mmcli(tmp_path: Path, listing: str, modem: str) -> str:
    """A stand-in `mmcli` that prints the recorded samples (the reader's subprocess path, no ModemManager)."""
    exe = tmp_path / "mmcli"
    exe.write_text(f"#!/bin/sh\nif [ \"$1\" = -L ]; then cat '{SAMPLES / listing}'; else cat '{SAMPLES / modem}'; fi\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe)


def test_the_reader_runs_mmcli_and_the_pi_reports_the_signal(tmp_path: Path) -> None:
    reader = ModemReader(fake_mmcli(tmp_path, "list-one.txt", "modem-connected-lte.txt"))
    status = reader.read_now()
    assert status is not None and status.operator == "Viettel"
    hw = PiHardware(modem=reader, thermal_zone=tmp_path / "none")
    assert hw.signal_dbm() == pytest.approx(-71.5)
    assert hw.temperature_c() is None


def test_no_modem_and_no_mmcli_are_none(tmp_path: Path) -> None:
    assert ModemReader(fake_mmcli(tmp_path, "list-none.txt", "modem-disabled.txt")).read_now() is None
    nothing = ModemReader(mmcli=str(tmp_path / "absent"))
    assert nothing.read_now() is None  # not installed: a warning in the log, no exception
    reader = ModemReader()
    reader.mmcli = None  # as where ModemManager is not installed
    assert reader.latest() is None and reader.read_now() is None
