"""The outbox: proof-of-play events on the receiver's disk until the broker has them.

`append` writes an event (SQLite, synchronous=FULL: on disk before anything else happens; the table
`events` of the agent's one database, `statedb.StateDb`) and numbers it (`seq`, never reused). The
agent's drain task publishes pending events in order, QoS 1, and `remove`s each only once the broker
acknowledged it. A receiver offline for a week delivers all its events when it is
back, in order; an event re-sent because its acknowledgement was lost is counted once by the controller
(it dedupes on `event_id`).
"""

from __future__ import annotations

from pathlib import Path

from receivers.protocol import PlayEvent

from .statedb import StateDb


class Outbox:
    """The table `events` of the agent's database (`StateDb`, in the directory of `path`, where the earlier
    layout kept its own file), shared with the replay memory and the item store: one statement at a time."""

    def __init__(self, path: Path) -> None:
        self._state = StateDb.for_file(path)
        self._db, self._lock = self._state.conn, self._state.lock

    def append(self, event: PlayEvent) -> PlayEvent:
        """Store `event` with the next sequence number; return it as stored."""
        with self._lock:
            return self._append(event)

    def _append(self, event: PlayEvent) -> PlayEvent:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            seq = self._db.execute("INSERT INTO events (payload) VALUES (x'')").lastrowid
            assert seq is not None
            stored = event.model_copy(update={"seq": seq})
            self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (stored.to_bytes(), seq))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:  # SQLite may have rolled back already (disk full)
                self._db.execute("ROLLBACK")
            raise
        return stored

    def pending(self, limit: int = 100) -> list[tuple[int, bytes]]:
        with self._lock:
            return list(self._db.execute("SELECT seq, payload FROM events ORDER BY seq LIMIT ?", (limit,)))

    def remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM events WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        self._state.release()  # the last user closes it, under the lock: never under a running statement
