"""The agent's view of its hardware: the `Hardware` protocol, and `PiHardware` for a Raspberry Pi.

The simulated implementation lives in `firmware_sim.hardware`. Only what the agent needs is here: volume,
the amplifier relay, and the health readings that go into telemetry.

- `PiHardware`: volume through ALSA's `amixer`; the amplifier relay on a GPIO line (`AmplifierRelay`,
  gpiozero on the lgpio pin factory, which drives /dev/gpiochip* on every Pi model under Bookworm);
  SoC temperature from sysfs; the 4G modem's signal through ModemManager (`modem.ModemReader`); free disk
  space of the state directory.
- `HardwareError`: a configured part that cannot be used (a GPIO line another process holds, no lgpio).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .modem import ModemReader, ModemStatus

if TYPE_CHECKING:
    from .config import AgentSettings

log = logging.getLogger(__name__)

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


class HardwareError(RuntimeError):
    """A configured part of the hardware cannot be used; the message says which and why."""


class Hardware(Protocol):
    def volume(self) -> int: ...
    def set_volume(self, volume: int) -> None: ...
    def amplifier_on(self) -> bool: ...
    def set_amplifier(self, on: bool) -> None: ...
    def temperature_c(self) -> float | None: ...
    def signal_dbm(self) -> float | None: ...
    def disk_free_mb(self, path: Path) -> float | None: ...


class AmplifierRelay:
    """The relay that powers the amplifier, on one GPIO line (BCM numbering). Off when made and when closed.

    `active_high=False` is for the common relay boards that switch on when their input is pulled low.
    `pin_factory` is gpiozero's: the lgpio one by default, `gpiozero.pins.mock.MockFactory` in tests."""

    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None) -> None:
        try:
            from gpiozero import OutputDevice

            if pin_factory is None:
                from gpiozero.pins.lgpio import LGPIOFactory

                pin_factory = LGPIOFactory()
            self._device = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=pin_factory)
        except ImportError as e:
            raise HardwareError(f"amplifier relay on GPIO {pin}: {e.name or e} is not installed "
                                "(it comes with truyenthanh-agent on a Raspberry Pi)") from None
        except Exception as e:  # gpiozero's and lgpio's errors share no base class
            raise HardwareError(f"amplifier relay on GPIO {pin} cannot be used: {e} (is another process, such as "
                                "a running agent, holding the line?)") from None
        self.pin = pin

    @property
    def on(self) -> bool:
        return bool(self._device.value)

    def set(self, on: bool) -> None:
        if on != self.on:  # idempotent: no needless writes to the line
            self._device.value = on

    def close(self) -> None:
        self._device.off()
        self._device.close()


class PiHardware:
    """Raspberry Pi OS. Without a relay (`amp_gpio_pin` unset) the amplifier is taken to be always powered:
    its state is kept in software only."""

    def __init__(self, mixer_control: str = "PCM", *, relay: AmplifierRelay | None = None,
                 modem: ModemReader | None = None, thermal_zone: Path = THERMAL_ZONE) -> None:
        self._control = mixer_control
        self._volume = 70
        self._amplifier = False
        self.relay = relay
        self.modem = modem if modem is not None else ModemReader()
        self._thermal_zone = thermal_zone

    @classmethod
    def from_settings(cls, settings: AgentSettings, *, pin_factory: Any = None) -> PiHardware:
        relay = None
        if settings.amp_gpio_pin is not None:
            relay = AmplifierRelay(settings.amp_gpio_pin, active_high=settings.amp_active_high,
                                   pin_factory=pin_factory)
        return cls(settings.mixer_control, relay=relay)

    def volume(self) -> int:
        return self._volume

    def set_volume(self, volume: int) -> None:
        if shutil.which("amixer"):
            subprocess.run(["amixer", "-q", "sset", self._control, f"{volume}%"], check=True, timeout=5)
        else:
            log.warning("amixer not found: volume %d kept in software only", volume)
        self._volume = volume

    def amplifier_on(self) -> bool:
        return self.relay.on if self.relay is not None else self._amplifier

    def set_amplifier(self, on: bool) -> None:
        if self.relay is not None:
            self.relay.set(on)
        else:
            self._amplifier = on

    def temperature_c(self) -> float | None:
        try:
            return int(self._thermal_zone.read_text()) / 1000
        except (OSError, ValueError):
            return None

    def modem_status(self) -> ModemStatus | None:
        return self.modem.latest()

    def signal_dbm(self) -> float | None:
        status = self.modem.latest()
        return status.signal_dbm if status is not None else None

    def disk_free_mb(self, path: Path) -> float | None:
        try:
            return shutil.disk_usage(path).free / 1e6
        except OSError:
            return None

    def close(self) -> None:
        """Switch the amplifier off and release the GPIO line."""
        if self.relay is not None:
            self.relay.close()
