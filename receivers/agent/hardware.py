"""The agent's view of its hardware: the `Hardware` protocol, and `PiHardware` for a Raspberry Pi.

The simulated implementation lives in `firmware_sim.hardware`. Only what the spine needs is here:
volume, the amplifier relay, and the health readings that go into telemetry.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class Hardware(Protocol):
    def volume(self) -> int: ...
    def set_volume(self, volume: int) -> None: ...
    def amplifier_on(self) -> bool: ...
    def set_amplifier(self, on: bool) -> None: ...
    def temperature_c(self) -> float | None: ...
    def signal_dbm(self) -> float | None: ...
    def disk_free_mb(self, path: Path) -> float | None: ...


class PiHardware:
    """Raspberry Pi OS: volume through ALSA's `amixer`, SoC temperature from sysfs.

    Not built yet (the playback issue): the amplifier relay on a GPIO line and the modem's signal
    strength; they report `off` and `None` until then.
    """

    def __init__(self, mixer_control: str = "PCM") -> None:
        self._control = mixer_control
        self._volume = 70
        self._amplifier = False

    def volume(self) -> int:
        return self._volume

    def set_volume(self, volume: int) -> None:
        if shutil.which("amixer"):
            subprocess.run(["amixer", "-q", "sset", self._control, f"{volume}%"], check=True, timeout=5)
        else:
            log.warning("amixer not found: volume %d kept in software only", volume)
        self._volume = volume

    def amplifier_on(self) -> bool:
        return self._amplifier

    def set_amplifier(self, on: bool) -> None:
        self._amplifier = on

    def temperature_c(self) -> float | None:
        try:
            return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000
        except (OSError, ValueError):
            return None

    def signal_dbm(self) -> float | None:
        return None

    def disk_free_mb(self, path: Path) -> float | None:
        try:
            return shutil.disk_usage(path).free / 1e6
        except OSError:
            return None
