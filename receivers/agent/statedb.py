"""The agent's one SQLite database on its SD card: replay memory, queued items and outbox in one file.

- `StateDb.acquire(state_dir)`: the connection to `{state_dir}/agent.sqlite` (WAL, `synchronous=FULL`),
  opened at the first call and shared by every later one for the same directory until each has called
  `release`. `ReplayMemory`, `ItemStore` and `Outbox` (store.py, outbox.py) each hold one reference, so a
  receiver has one connection, one WAL and one `-shm` index, used one statement at a time (`lock`) from
  the event loop and worker threads. Durability is unchanged: each write is a transaction, on disk (the
  WAL fsynced) before the call returns.
- `StateDb.adopt(old_file)`: a receiver upgraded from the earlier layout, one database per class
  (`replay.sqlite`, `items.sqlite`, `outbox.sqlite`), gets that file's rows copied in, in one transaction
  that also records the file in `migrated`; then the old file is removed. A power cut at any point leaves
  either the old file still to copy, or the record that it was copied (the copy is never made twice: an
  item played since, or an event delivered since, does not come back).

Why one file: each SQLite connection in WAL mode cost about 150 KiB of memory (its page-cache block of
20 pages, the schema, prepared statements, the 32 KiB WAL index); three per receiver were most of a
simulated receiver's memory. Pages of 1 KiB (the tables hold short rows) and a 64 KiB page cache keep
the one connection small too (docs/PERFORMANCE.md, fan-out).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import ClassVar

log = logging.getLogger(__name__)

FILE_NAME = "agent.sqlite"
PAGE_SIZE = 1024  # takes effect when the file is created
CACHE_KIB = 64

SCHEMA = (
    # ReplayMemory: command ids (and plan keys) until they may be forgotten; the high-water mark.
    "CREATE TABLE IF NOT EXISTS seen (command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL, issued_at REAL)",
    "CREATE TABLE IF NOT EXISTS mark (name TEXT PRIMARY KEY, at REAL NOT NULL)",
    # ItemStore: accepted play commands until finished.
    "CREATE TABLE IF NOT EXISTS items (item_id TEXT PRIMARY KEY, command BLOB NOT NULL, "
    "position_s REAL NOT NULL DEFAULT 0, repeat_index INTEGER NOT NULL DEFAULT 0, "
    "playing INTEGER NOT NULL DEFAULT 0, quiet INTEGER NOT NULL DEFAULT 0)",
    # Outbox: proof-of-play events until the broker has them; `seq` never reused (AUTOINCREMENT).
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB)",
    # Files of the earlier layout whose rows were copied in (`adopt`).
    "CREATE TABLE IF NOT EXISTS migrated (file TEXT PRIMARY KEY)",
)


class StateDb:
    _open: ClassVar[dict[Path, StateDb]] = {}
    _registry: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.path = directory / FILE_NAME
        self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # before the first write, else a no-op
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
            for statement in SCHEMA:
                self.conn.execute(statement)
        except BaseException:
            self.conn.close()
            raise
        # Used from the event loop and from worker threads: one statement (or transaction) at a time, and
        # never closed under a running one. Re-entrant: a transaction calls helpers that lock too.
        self.lock = threading.RLock()
        self._users = 0

    @classmethod
    def acquire(cls, directory: Path) -> StateDb:
        """The database of `directory`, opened if no one holds it; call `release` once done with it."""
        key = directory.absolute()
        with cls._registry:
            db = cls._open.get(key)
            if db is None:
                db = cls._open[key] = StateDb(key)
            db._users += 1
            return db

    @classmethod
    def for_file(cls, old: Path) -> StateDb:
        """The database of `old`'s directory (`acquire`), with `old` — where the earlier layout kept one
        class's own file — moved in (`adopt`); released again if that fails."""
        db = cls.acquire(old.parent)
        try:
            db.adopt(old)
        except BaseException:
            db.release()
            raise
        return db

    def release(self) -> None:
        """Drop one reference; the last closes the connection."""
        with StateDb._registry:
            self._users -= 1
            if self._users > 0:
                return
            StateDb._open.pop(self.directory, None)
        with self.lock:
            self.conn.close()

    # ----------------------------------------------------------------------------- the earlier layout

    def adopt(self, old: Path) -> None:
        """Copy the rows of `old` (a database of the earlier layout, by its name) into this one, then remove
        it. Nothing to do if it does not exist; a damaged file raises `sqlite3.Error`, as opening it did."""
        copy = _COPIERS.get(old.name)
        if copy is None or old.absolute() == self.path or not old.exists():
            return
        with self.lock:
            done = self.conn.execute("SELECT 1 FROM migrated WHERE file = ?", (old.name,)).fetchone()
            if not done:
                self.conn.execute("ATTACH DATABASE ? AS old", (str(old),))
                try:
                    tables = {r[0] for r in
                              self.conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
                    self.conn.execute("BEGIN IMMEDIATE")
                    try:
                        copied = copy(self.conn, tables)
                        self.conn.execute("INSERT INTO migrated VALUES (?)", (old.name,))
                        self.conn.execute("COMMIT")
                    except BaseException:
                        if self.conn.in_transaction:
                            self.conn.execute("ROLLBACK")
                        raise
                finally:
                    self.conn.execute("DETACH DATABASE old")
                log.info("%s: %d rows of %s moved into %s", self.directory, copied, old.name, FILE_NAME)
        try:
            for suffix in ("-wal", "-shm", "-journal", ""):  # the database last: while it exists, it is retried
                old.with_name(old.name + suffix).unlink(missing_ok=True)
            _fsync_dir(old.parent)
        except OSError as e:  # copied and recorded all the same: only the space is not freed yet
            log.warning("%s: could not remove %s (%s); it is tried again at the next start", self.directory, old, e)


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA old.table_info({table})")}


def _copy_replay(conn: sqlite3.Connection, tables: set[str]) -> int:
    n = 0
    if "seen" in tables:
        issued = "issued_at" if "issued_at" in _columns(conn, "seen") else "NULL"  # before the high-water mark
        n += conn.execute(f"INSERT OR IGNORE INTO main.seen (command_id, expires_at, issued_at) "
                          f"SELECT command_id, expires_at, {issued} FROM old.seen").rowcount
    if "mark" in tables:
        n += conn.execute("INSERT INTO main.mark (name, at) SELECT name, at FROM old.mark WHERE true "
                          "ON CONFLICT(name) DO UPDATE SET at = max(at, excluded.at)").rowcount
    return n


def _copy_items(conn: sqlite3.Connection, tables: set[str]) -> int:
    if "items" not in tables:
        return 0
    quiet = "quiet" if "quiet" in _columns(conn, "items") else "0"  # a store from before plans
    return conn.execute(f"INSERT OR IGNORE INTO main.items (item_id, command, position_s, repeat_index, playing, "
                        f"quiet) SELECT item_id, command, position_s, repeat_index, playing, {quiet} "
                        f"FROM old.items").rowcount


def _copy_outbox(conn: sqlite3.Connection, tables: set[str]) -> int:
    if "events" not in tables:
        return 0
    # Events keep their `seq` (it is inside each payload too), and the counter goes on from the old one's
    # highest: a number once given is never given again.
    n = conn.execute("INSERT OR IGNORE INTO main.events (seq, payload) SELECT seq, payload FROM old.events").rowcount
    top = conn.execute("SELECT max(seq) FROM old.events").fetchone()[0] or 0
    if "sqlite_sequence" in tables:
        row = conn.execute("SELECT seq FROM old.sqlite_sequence WHERE name = 'events'").fetchone()
        top = max(top, row[0] if row else 0)
    if conn.execute("UPDATE main.sqlite_sequence SET seq = max(seq, ?) WHERE name = 'events'", (top,)).rowcount == 0:
        conn.execute("INSERT INTO main.sqlite_sequence (name, seq) VALUES ('events', ?)", (top,))
    return n


_COPIERS = {"replay.sqlite": _copy_replay, "items.sqlite": _copy_items, "outbox.sqlite": _copy_outbox}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
