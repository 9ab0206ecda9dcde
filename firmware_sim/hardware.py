"""Simulated receiver hardware: remembers what it was told, reports plausible, slowly varying readings."""

from __future__ import annotations

import random
import shutil
from pathlib import Path


class SimHardware:
    def __init__(self, seed: int | str = 0, volume: int = 70) -> None:
        self._rng = random.Random(seed)
        self._volume = volume
        self._amplifier = False
        self._temperature = self._rng.uniform(38, 52)
        self._signal = self._rng.uniform(-105, -65)
        self.volume_changes: list[int] = []

    def volume(self) -> int:
        return self._volume

    def set_volume(self, volume: int) -> None:
        self._volume = volume
        self.volume_changes.append(volume)

    def amplifier_on(self) -> bool:
        return self._amplifier

    def set_amplifier(self, on: bool) -> None:
        self._amplifier = on

    def temperature_c(self) -> float:
        self._temperature = min(85.0, max(25.0, self._temperature + self._rng.uniform(-0.5, 0.5)))
        return round(self._temperature, 1)

    def signal_dbm(self) -> float:
        self._signal = min(-50.0, max(-120.0, self._signal + self._rng.uniform(-2, 2)))
        return round(self._signal, 1)

    def disk_free_mb(self, path: Path) -> float | None:
        try:
            return round(shutil.disk_usage(path).free / 1e6, 1)
        except OSError:
            return None
