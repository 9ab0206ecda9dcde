"""The 4G modem, read through ModemManager's command line (`mmcli`), as Raspberry Pi OS ships it.

- `parse_keyvalues`, `parse_modem_list`, `parse_modem`: pure functions over `mmcli -K` output (the
  machine-readable `key : value` form), tested against recorded output.
- `ModemStatus`: what telemetry and `truyenthanh-agent status` show — state, signal quality (%), access
  technology, operator — and `signal_dbm`, the RSSI the quality stands for.
- `ModemReader`: runs `mmcli` off the event loop and keeps the last reading, so a slow or hung ModemManager
  never delays a command; None where there is no `mmcli` or no modem.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)

# States in which the modem is registered with a network, so its signal quality means something.
REGISTERED = frozenset({"registered", "connecting", "connected", "disconnecting"})
MMCLI_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ModemStatus:
    index: int
    state: str  # ModemManager's: disabled, enabled, searching, registered, connected, failed, ...
    signal_quality_pct: int | None  # None while not registered: a disabled modem reports 0, which is no reading
    signal_recent: bool
    access_technology: str | None  # "lte", "umts", "gsm", ... (several joined with ", ")
    operator: str | None  # the network's name, else its MCC-MNC code
    model: str | None = None

    @property
    def signal_dbm(self) -> float | None:
        """The RSSI that the quality stands for: ModemManager scales RSSI from -113 dBm (0 %) to -51 dBm
        (100 %), the 3GPP +CSQ range, so this inverts that scale. An estimate, good for trends and alarms."""
        if self.signal_quality_pct is None:
            return None
        return round(-113 + 62 * self.signal_quality_pct / 100, 1)

    def summary(self) -> str:
        if self.signal_quality_pct is None:
            return f"modem {self.index} {self.state}, no signal reading"
        return (f"modem {self.index} {self.state}, signal {self.signal_quality_pct} % (~{self.signal_dbm:.0f} dBm"
                f"{'' if self.signal_recent else ', stale'}), {self.access_technology or 'unknown technology'}, "
                f"{self.operator or 'unknown operator'}")


def parse_keyvalues(text: str) -> dict[str, str]:
    """`mmcli -K` output → {key: value}; `--` (ModemManager's "no value") and empty values are left out."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if sep and key and value and value != "--":
            values[key] = value
    return values


def _array(values: dict[str, str], key: str) -> list[str]:
    """An array field: `key.length : N` and `key.value[i] : ...`."""
    items = sorted((int(m.group(1)), v) for k, v in values.items()
                   if (m := re.fullmatch(re.escape(key) + r"\.value\[(\d+)\]", k)))
    return [v for _, v in items]


def parse_modem_list(text: str) -> list[int]:
    """`mmcli -L -K` output → modem indexes (the N of `mmcli -m N`), in order."""
    paths = _array(parse_keyvalues(text), "modem-list")
    return [int(m.group(1)) for p in paths if (m := re.search(r"/Modem/(\d+)$", p))]


def parse_modem(text: str, index: int) -> ModemStatus | None:
    """`mmcli -m N -K` output → the modem's status; None if the output describes no modem."""
    values = parse_keyvalues(text)
    state = values.get("modem.generic.state")
    if state is None:
        return None
    quality: int | None = None
    if state in REGISTERED:
        try:
            quality = max(0, min(100, int(values.get("modem.generic.signal-quality.value", ""))))
        except ValueError:
            quality = None
    tech = ", ".join(_array(values, "modem.generic.access-technologies")) or None
    operator = values.get("modem.3gpp.operator-name") or values.get("modem.3gpp.operator-code")
    return ModemStatus(index=index, state=state, signal_quality_pct=quality,
                       signal_recent=values.get("modem.generic.signal-quality.recent") == "yes",
                       access_technology=tech, operator=operator, model=values.get("modem.generic.model"))


def read_modem(mmcli: str) -> ModemStatus | None:
    """The first modem ModemManager knows, read now (blocking: up to two `mmcli` runs)."""
    listing = subprocess.run([mmcli, "-L", "-K"], capture_output=True, text=True, timeout=MMCLI_TIMEOUT_S)
    if listing.returncode != 0:
        raise OSError(listing.stderr.strip() or f"mmcli -L exited {listing.returncode}")
    indexes = parse_modem_list(listing.stdout)
    if not indexes:
        return None
    done = subprocess.run([mmcli, "-m", str(indexes[0]), "-K"], capture_output=True, text=True,
                          timeout=MMCLI_TIMEOUT_S)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mmcli -m {indexes[0]} exited {done.returncode}")
    return parse_modem(done.stdout, indexes[0])


class ModemReader:
    """The last modem reading, refreshed in a thread at most every `interval_s`: `latest()` never blocks."""

    def __init__(self, mmcli: str | None = None, interval_s: float = 30.0) -> None:
        self.mmcli = mmcli if mmcli is not None else shutil.which("mmcli")
        self.interval_s = interval_s
        self._latest: ModemStatus | None = None
        self._read_at = -float("inf")
        self._reading: threading.Thread | None = None
        self._warned = False

    def latest(self) -> ModemStatus | None:
        if self.mmcli is None:
            return None
        if time.monotonic() - self._read_at >= self.interval_s and self._reading is None:
            self._read_at = time.monotonic()
            self._reading = threading.Thread(target=self._refresh, name="mmcli", daemon=True)
            self._reading.start()
        return self._latest

    def read_now(self) -> ModemStatus | None:
        """Blocking: for the command line, where nobody else waits."""
        if self.mmcli is None:
            return None
        self._refresh()
        return self._latest

    def _refresh(self) -> None:
        assert self.mmcli is not None
        try:
            self._latest = read_modem(self.mmcli)
            self._warned = False
        except (OSError, subprocess.SubprocessError) as e:
            self._latest = None
            if not self._warned:  # ModemManager down is worth one line, not one every 30 s
                log.warning("modem not readable through mmcli: %s", e)
                self._warned = True
        finally:
            self._reading = None
