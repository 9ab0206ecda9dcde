"""What the agent keeps on its SD card across reboots and power cuts.

`ReplayMemory` and `ItemStore` (and the outbox) are tables of one SQLite database per receiver
(`statedb.StateDb`, `agent.sqlite`): one connection, one WAL.

- `ReplayMemory`: ids of commands already seen, until they expire (SQLite, synchronous=FULL: an id is
  on disk before the command is acted on, so a replay after a power cut is still refused).
  It also remembers which plan entries were handled (`seen`, `forget`), under keys of their own, and the
  high-water mark: the latest `issued_at` of a verified command (`high_water`, `raise_high_water`), in the
  same file and transaction as the id. An id is forgotten only once it has expired *and* the mark has
  passed it by more than the tolerance, so the mark refuses whatever the memory forgot, whatever the clock.
- `KeyStore`: the controller keys the agent trusts after a key rotation (`keys.json`, written atomically);
  the key of the agent's config until then. A damaged file stops the agent (`KeysUnreadable`).
- `PersistentState`: small JSON document (volume, …) written atomically.
- `write_atomic`: the receiver's one atomic write (fresh `O_EXCL|O_NOFOLLOW` name, fsync, rename, fsync of
  the directory), used by both and by `enroll`.
- `ItemStore`: accepted items until they are finished, with where the playing one had got to.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Any

from receivers.protocol import TrustedKey

from .statedb import StateDb


class ReplayMemory:
    """Command ids already seen, the plan entries handled and the high-water mark: the tables `seen` and
    `mark` of the agent's database (`StateDb`, in the directory of `path`; `path` itself is where the
    earlier layout kept them, moved in at the first start)."""

    PRUNE_EVERY = 500  # inserts

    def __init__(self, path: Path, tolerance: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.tolerance = tolerance
        self._state = StateDb.for_file(path)
        self._db, self._lock = self._state.conn, self._state.lock
        self._inserts = 0

    def first_time(self, command_id: str, expires_at: dt.datetime, now: dt.datetime,
                   issued_at: dt.datetime | None = None) -> bool:
        """Record `command_id`; False if it was already recorded (a replay). With `issued_at` (a verified
        command), the high-water mark rises to it in the same transaction."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)",
                                   (command_id, expires_at.timestamp(),
                                    issued_at.timestamp() if issued_at else None))
            if issued_at is not None and cur.rowcount == 1:
                self._raise(issued_at)
        self._inserts += 1
        if self._inserts % self.PRUNE_EVERY == 0:
            self.prune(now)
        return cur.rowcount == 1

    def prune(self, now: dt.datetime) -> int:
        """Forget ids that need no memory; return how many. A command's id is kept until it has expired by
        the receiver's clock (an hour's margin) *and* it was issued more than the tolerance before the
        high-water mark: a clock set forward then back cannot make a forgotten command fresh again, as the
        mark refuses it. Plan keys (no `issued_at`) go by expiry alone."""
        mark = self.high_water()
        horizon = (mark - self.tolerance).timestamp() if mark else None
        with self._lock, self._db:
            cur = self._db.execute(
                "DELETE FROM seen WHERE expires_at < ? AND (issued_at IS NULL OR issued_at < ?)",
                (now.timestamp() - 3600, horizon if horizon is not None else float("-inf")))
        return cur.rowcount

    def high_water(self) -> dt.datetime | None:
        """The latest `issued_at` of a verified command (or plan), by the controller's clock; None at first."""
        with self._lock:
            row = self._db.execute("SELECT at FROM mark WHERE name = 'issued'").fetchone()
        return dt.datetime.fromtimestamp(row[0], dt.UTC) if row else None

    def raise_high_water(self, at: dt.datetime) -> None:
        with self._lock, self._db:
            self._raise(at)

    def _raise(self, at: dt.datetime) -> None:
        self._db.execute("INSERT INTO mark VALUES ('issued', ?) ON CONFLICT(name) DO UPDATE SET "
                         "at = max(at, excluded.at)", (at.timestamp(),))

    def seen(self, command_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM seen WHERE command_id = ?", (command_id,)).fetchone() is not None

    def forget(self, command_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM seen WHERE command_id = ?", (command_id,))

    def close(self) -> None:
        self._state.release()


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that a power cut leaves the old file or the new one, whole: a fresh
    temporary name opened `O_EXCL|O_NOFOLLOW` (a file or symlink planted there is an error, never a target),
    fsynced, renamed over `path` (a symlink at `path` is replaced, not written through), then the directory
    fsynced so the rename itself survives. The receiver's one helper for it (state, keys, its config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class PersistentState:
    def __init__(self, path: Path, mode: int = 0o644) -> None:
        self._path, self._mode = path, mode
        path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self._path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def save(self, data: dict[str, Any]) -> None:
        write_atomic(self._path, json.dumps(data).encode(), self._mode)


class KeysUnreadable(RuntimeError):
    """`keys.json` exists but cannot be read or parsed: the agent must not start (it would trust the key it
    was enrolled with, perhaps retired, and refuse the current one)."""


class KeyStore:
    """The controller keys this receiver trusts (`keys.json`), written at each `rotate-key`. Before the first
    rotation the file does not exist and the key of the agent's config is trusted alone. A key the file
    retires stays retired even if the config still names it (the config is written once, at enrolment);
    a config key the file does not know is trusted too. Enrolling again resets the file to the enrolled key
    (`reset`). A file that is there but unreadable, or with a bad entry, is an error (`KeysUnreadable`),
    never a silent fall-back to the config's key."""

    def __init__(self, path: Path, config_key: str) -> None:
        self._path = path
        self._config_key = config_key

    def load(self) -> list[TrustedKey]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return [TrustedKey(self._config_key)]
        except OSError as e:
            raise KeysUnreadable(f"{self._path} cannot be read ({e}); restore it, or enrol this receiver again "
                                 "(`truyenthanh-agent enroll`)") from None
        keys: list[TrustedKey] = []
        try:
            doc = json.loads(raw)
            for k in doc["keys"]:
                until = dt.datetime.fromisoformat(k["until"]) if k["until"] is not None else None
                if until is not None and until.tzinfo is None:
                    raise ValueError(f"'until' without a time zone: {k['until']!r}")
                public_key = k["public_key"]
                if not isinstance(public_key, str) or len(base64.b64decode(public_key, validate=True)) != 32:
                    raise ValueError(f"not an Ed25519 public key: {public_key!r}")
                keys.append(TrustedKey(public_key, until))
        except (ValueError, KeyError, TypeError, binascii.Error) as e:
            raise KeysUnreadable(f"{self._path} is damaged ({type(e).__name__}: {e}); restore it, or enrol this "
                                 "receiver again (`truyenthanh-agent enroll`)") from None
        if all(k.public_key != self._config_key for k in keys):
            keys.append(TrustedKey(self._config_key))
        return keys

    def _save(self, keys: list[TrustedKey]) -> None:
        write_atomic(self._path, json.dumps({"keys": [
            {"public_key": k.public_key, "until": k.until.isoformat() if k.until else None} for k in keys]}).encode())

    def reset(self) -> None:
        """Trust the config's key alone (after enrolling again: keys of an earlier enrolment are dropped)."""
        self._save([TrustedKey(self._config_key)])

    def rotate(self, new_key: str, old_key_until: dt.datetime) -> list[TrustedKey]:
        """Trust `new_key` fully, and the keys trusted fully until now (the one that signed the rotation)
        until `old_key_until`. Written atomically before it is used."""
        keys: list[TrustedKey] = []
        for k in self.load():
            if k.public_key == new_key:
                continue
            if k.until is None or k.until > old_key_until:
                k = TrustedKey(k.public_key, old_key_until)
            keys.append(k)
        keys.append(TrustedKey(new_key))
        self._save(keys)
        return keys


class ItemStore:
    """Accepted `play` commands until they are finished, so a power cut loses none of them: on restart the
    agent finds what it was told to play, and where it was in the item it was playing. `quiet` marks the
    items of the agent's own plan, which nobody waits to hear acknowledged. The table `items` of the
    agent's database (`StateDb`, in the directory of `path`, where the earlier layout kept its own file)."""

    def __init__(self, path: Path) -> None:
        self._state = StateDb.for_file(path)
        self._db, self._lock = self._state.conn, self._state.lock

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
        self._state.release()  # the last user closes it, under the lock: never under a running statement
