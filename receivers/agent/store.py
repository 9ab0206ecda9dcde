"""What the agent keeps on its SD card across reboots and power cuts.

- `ReplayMemory`: ids of commands already seen, until they expire (SQLite, synchronous=FULL: an id is
  on disk before the command is acted on, so a replay after a power cut is still refused).
  It also remembers which plan entries were handled (`seen`, `forget`), under keys of their own.
- `PersistentState`: small JSON document (volume, …) written atomically (temp file, fsync, rename).
- `ItemStore`: accepted items until they are finished, with where the playing one had got to.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any


class ReplayMemory:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
        self._inserts = 0

    def first_time(self, command_id: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
        """Record `command_id`; False if it was already recorded (a replay)."""
        cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (command_id, expires_at.timestamp()))
        self._inserts += 1
        if self._inserts % 500 == 0:
            # Expired ids need no memory: the expiry check refuses those commands anyway.
            self._db.execute("DELETE FROM seen WHERE expires_at < ?", (now.timestamp() - 3600,))
        return cur.rowcount == 1

    def seen(self, command_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM seen WHERE command_id = ?", (command_id,)).fetchone() is not None

    def forget(self, command_id: str) -> None:
        self._db.execute("DELETE FROM seen WHERE command_id = ?", (command_id,))

    def close(self) -> None:
        self._db.close()


class PersistentState:
    def __init__(self, path: Path) -> None:
        self._path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict[str, Any]) -> None:
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self._path)


class ItemStore:
    """Accepted `play` commands until they are finished, so a power cut loses none of them: on restart the
    agent finds what it was told to play, and where it was in the item it was playing. `quiet` marks the
    items of the agent's own plan, which nobody waits to hear acknowledged."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, command BLOB NOT NULL, "
                         "position_s REAL NOT NULL DEFAULT 0, repeat_index INTEGER NOT NULL DEFAULT 0, "
                         "playing INTEGER NOT NULL DEFAULT 0, quiet INTEGER NOT NULL DEFAULT 0)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(items)")}
        if "quiet" not in columns:  # a store written by an agent from before plans
            self._db.execute("ALTER TABLE items ADD COLUMN quiet INTEGER NOT NULL DEFAULT 0")
        # Used from the event loop and from worker threads: one statement at a time, and never closed
        # under a running one.
        self._lock = threading.Lock()

    def put(self, item_id: str, command: bytes, quiet: bool = False) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO items (item_id, command, quiet) VALUES (?, ?, ?)",
                             (item_id, command, int(quiet)))

    def progress(self, item_id: str, position_s: float, repeat_index: int, playing: bool) -> None:
        with self._lock:
            self._db.execute("UPDATE items SET position_s = ?, repeat_index = ?, playing = ? WHERE item_id = ?",
                             (position_s, repeat_index, int(playing), item_id))

    def remove(self, item_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM items WHERE item_id = ?", (item_id,))

    def all(self) -> list[tuple[str, bytes, float, int, bool, bool]]:
        """(item_id, command, position_s, repeat_index, playing, quiet) of every stored item."""
        with self._lock:
            return [(i, c, p, r, bool(pl), bool(q)) for i, c, p, r, pl, q in
                    self._db.execute("SELECT item_id, command, position_s, repeat_index, playing, quiet FROM items")]

    def close(self) -> None:
        with self._lock:
            self._db.close()
