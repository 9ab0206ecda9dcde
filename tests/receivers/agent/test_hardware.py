"""The Pi's hardware: the amplifier relay on a GPIO line (against gpiozero's own MockFactory), the SoC
temperature and free disk readings, and the self-test through the relay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from receivers.agent import AgentSettings
from receivers.agent.hardware import AmplifierRelay, HardwareError, PiHardware
from receivers.agent.modem import ModemReader
from receivers.agent.selftest import check_output

PIN = 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


def no_modem() -> ModemReader:
    reader = ModemReader()
    reader.mmcli = None
    return reader


def settings(tmp_path: Path, **extra: object) -> AgentSettings:
    return AgentSettings(receiver_id="tra-ka-thon-2-1", commune="tra-ka", username="u", password="p",
                         controller_public_key="k", state_dir=tmp_path, **extra)  # type: ignore[arg-type]


def test_the_relay_starts_off_and_switches(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, pin_factory=factory)
    pin = factory.pin(PIN)
    assert relay.on is False and pin.state == 0
    relay.set(True)
    assert relay.on is True and pin.state == 1
    relay.set(False)
    assert relay.on is False and pin.state == 0


def test_an_active_low_relay_is_driven_low_to_switch_on(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, active_high=False, pin_factory=factory)
    pin = factory.pin(PIN)
    assert relay.on is False and pin.state == 1  # off from the first instant: the line is held high
    relay.set(True)
    assert relay.on is True and pin.state == 0


def test_switching_is_idempotent(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, pin_factory=factory)
    pin = factory.pin(PIN)
    relay.set(True)
    pin.clear_states()
    relay.set(True)
    relay.set(True)
    assert relay.on is True and len(pin.states) == 1  # only the starting state: no writes to the line
    relay.set(False)
    relay.set(False)
    assert [s.state for s in pin.states] == [True, False]


def test_closing_switches_off_and_releases_the_line(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, active_high=False, pin_factory=factory)
    relay.set(True)
    relay.close()
    again = AmplifierRelay(PIN, pin_factory=factory)  # the line is free again
    assert again.on is False


def test_a_line_already_held_is_a_clear_error(factory: MockFactory) -> None:
    first = AmplifierRelay(PIN, pin_factory=factory)
    with pytest.raises(HardwareError, match="GPIO 17 cannot be used"):
        AmplifierRelay(PIN, pin_factory=factory)
    first.close()


def test_settings_choose_the_relay(tmp_path: Path, factory: MockFactory) -> None:
    hw = PiHardware.from_settings(settings(tmp_path, amp_gpio_pin=PIN, amp_active_high=False), pin_factory=factory)
    assert hw.relay is not None and hw.amplifier_on() is False
    hw.set_amplifier(True)
    assert hw.amplifier_on() and factory.pin(PIN).state == 0
    hw.close()
    assert factory.pin(PIN).state == 1  # closed: the amplifier is off
    without = PiHardware.from_settings(settings(tmp_path))
    assert without.relay is None
    without.set_amplifier(True)
    assert without.amplifier_on()  # no relay: kept in software


def test_temperature_and_disk_readings(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    hw = PiHardware(modem=no_modem(), thermal_zone=zone)
    assert hw.temperature_c() == pytest.approx(48.312)
    zone.write_text("garbage")
    assert hw.temperature_c() is None
    free = hw.disk_free_mb(tmp_path)
    assert free is not None and free > 0
    assert hw.disk_free_mb(tmp_path / "missing") is None
    assert hw.signal_dbm() is None


class Sink:
    def __init__(self, check: Callable[[], None]) -> None:
        self.check = check
        self.played: list[Path] = []

    async def prepare(self, path: Path) -> None:
        pass

    async def play(self, path: Path, *, item_id: str, volume: int, offset_s: float,
                   on_start: Callable[[], None] | None = None) -> None:
        self.check()
        self.played.append(path)


def test_the_self_test_plays_through_the_relay_and_restores_it(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, pin_factory=factory)
    hw = PiHardware(relay=relay, modem=no_modem())
    sink = Sink(lambda: None if relay.on else pytest.fail("played with the amplifier off"))
    assert asyncio.run(check_output(hw, sink)) is None
    assert len(sink.played) == 1 and relay.on is False
    hw.close()
