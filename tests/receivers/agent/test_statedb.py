"""One SQLite database per receiver (`statedb.StateDb`), and receivers upgraded from three databases.

The old files are written with the SQL of the earlier layout (as `git show d6daf77:receivers/agent/store.py`
and `outbox.py` wrote them), then opened the way the agent opens its stores.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest

from receivers.agent.outbox import Outbox
from receivers.agent.statedb import FILE_NAME, StateDb
from receivers.agent.store import ItemStore, ReplayMemory
from receivers.protocol import PlayEvent

NOW = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)


def event(item_id: str) -> PlayEvent:
    return PlayEvent(event_id=uuid.uuid4(), seq=0, event="finished", at=NOW, item_id=item_id)


def old_db(path: Path, *statements: str, rows: list[tuple[str, tuple[object, ...]]]) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    for s in statements:
        db.execute(s)
    for sql, values in rows:
        db.execute(sql, values)
    db.close()


def write_old_layout(state: Path, *, oldest: bool = False) -> None:
    """replay.sqlite, items.sqlite and outbox.sqlite as the earlier agent left them. `oldest`: the schemas
    from before the high-water mark (`seen` without `issued_at`, no `mark`) and before plans (no `quiet`)."""
    state.mkdir(parents=True, exist_ok=True)
    if oldest:
        old_db(state / "replay.sqlite",
               "CREATE TABLE seen (command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
               rows=[("INSERT INTO seen VALUES (?, ?)", ("cmd-1", LATER.timestamp()))])
        old_db(state / "items.sqlite",
               "CREATE TABLE items (item_id TEXT PRIMARY KEY, command BLOB NOT NULL, position_s REAL NOT NULL "
               "DEFAULT 0, repeat_index INTEGER NOT NULL DEFAULT 0, playing INTEGER NOT NULL DEFAULT 0)",
               rows=[("INSERT INTO items (item_id, command, position_s, playing) VALUES (?, ?, ?, ?)",
                      ("emergency-1", b"{play}", 12.5, 1))])
    else:
        old_db(state / "replay.sqlite",
               "CREATE TABLE seen (command_id TEXT PRIMARY KEY, expires_at REAL NOT NULL, issued_at REAL)",
               "CREATE TABLE mark (name TEXT PRIMARY KEY, at REAL NOT NULL)",
               rows=[("INSERT INTO seen VALUES (?, ?, ?)", ("cmd-1", LATER.timestamp(), NOW.timestamp())),
                     ("INSERT INTO seen VALUES (?, ?, NULL)", ("plan:p1-2", LATER.timestamp())),
                     ("INSERT INTO mark VALUES ('issued', ?)", (NOW.timestamp(),))])
        old_db(state / "items.sqlite",
               "CREATE TABLE items (item_id TEXT PRIMARY KEY, command BLOB NOT NULL, position_s REAL NOT NULL "
               "DEFAULT 0, repeat_index INTEGER NOT NULL DEFAULT 0, playing INTEGER NOT NULL DEFAULT 0, "
               "quiet INTEGER NOT NULL DEFAULT 0)",
               rows=[("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", ("emergency-1", b"{play}", 12.5, 2, 1, 0)),
                     ("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?)", ("p1-2", b"{plan}", 0, 0, 0, 1))])
    # Events 1..4 were numbered, 1 and 4 delivered (removed): 2 and 3 wait, and 1..4 are never given again.
    old_db(state / "outbox.sqlite",
           "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB)",
           rows=[*(("INSERT INTO events (payload) VALUES (?)", (f"event-{n}".encode(),)) for n in (1, 2, 3, 4)),
                 ("DELETE FROM events WHERE seq IN (1, 4)", ())])


def close(*stores: ReplayMemory | ItemStore | Outbox) -> None:
    for s in stores:
        s.close()


def test_the_three_stores_share_one_file_and_one_connection(tmp_path: Path) -> None:
    state = tmp_path / "state"
    replay, items, outbox = (ReplayMemory(state / "replay.sqlite"), ItemStore(state / "items.sqlite"),
                             Outbox(state / "outbox.sqlite"))
    assert replay._db is items._db is outbox._db
    assert replay.first_time("cmd-1", LATER, NOW, NOW)
    items.put("emergency-1", b"{play}")
    assert outbox.append(event("emergency-1")).seq == 1
    assert sorted(p.name for p in state.iterdir() if p.suffix == ".sqlite") == [FILE_NAME]
    assert sqlite3.connect(state / FILE_NAME).execute("PRAGMA page_size").fetchone()[0] == 1024
    replay.close()
    items.close()
    assert outbox.pending()[0][0] == 1  # still open for the last user
    outbox.close()
    with pytest.raises(sqlite3.ProgrammingError):  # the last one closed the connection
        outbox.pending()
    # A restart (a new agent on the same disk) finds all of it, on a new connection.
    replay, items, outbox = (ReplayMemory(state / "replay.sqlite"), ItemStore(state / "items.sqlite"),
                             Outbox(state / "outbox.sqlite"))
    assert not replay.first_time("cmd-1", LATER, NOW, NOW)
    assert [i[0] for i in items.all()] == ["emergency-1"]
    assert outbox.append(event("emergency-1")).seq == 2
    close(replay, items, outbox)


@pytest.mark.parametrize("oldest", [False, True], ids=["previous schema", "oldest schema"])
def test_an_upgraded_receiver_keeps_its_replay_ids_items_and_outbox(tmp_path: Path, oldest: bool) -> None:
    state = tmp_path / "state"
    write_old_layout(state, oldest=oldest)
    replay, items, outbox = (ReplayMemory(state / "replay.sqlite"), ItemStore(state / "items.sqlite"),
                             Outbox(state / "outbox.sqlite"))

    assert not replay.first_time("cmd-1", LATER, NOW, NOW)  # a replay of a command seen before the upgrade
    if oldest:
        assert replay.high_water() is None
        assert items.all() == [("emergency-1", b"{play}", 12.5, 0, True, False)]
    else:
        assert replay.seen("plan:p1-2")
        assert replay.high_water() == NOW
        assert sorted(items.all()) == [("emergency-1", b"{play}", 12.5, 2, True, False),
                                       ("p1-2", b"{plan}", 0.0, 0, False, True)]
    assert outbox.pending() == [(2, b"event-2"), (3, b"event-3")]
    assert len(outbox) == 2
    assert outbox.append(event("emergency-1")).seq == 5  # the old numbers are never given again
    assert sorted(p.name for p in state.iterdir()) == [FILE_NAME, f"{FILE_NAME}-shm", f"{FILE_NAME}-wal"]

    # Afterwards, only the new file counts: what is played and delivered does not come back at a restart.
    items.remove("emergency-1")
    outbox.remove(2)
    close(replay, items, outbox)
    replay, items, outbox = (ReplayMemory(state / "replay.sqlite"), ItemStore(state / "items.sqlite"),
                             Outbox(state / "outbox.sqlite"))
    assert [i[0] for i in items.all()] == ([] if oldest else ["p1-2"])
    assert [seq for seq, _ in outbox.pending()] == [3, 5]
    assert not replay.first_time("cmd-1", LATER, NOW, NOW)
    close(replay, items, outbox)


def test_a_power_cut_before_the_old_files_are_gone_copies_nothing_twice(tmp_path: Path) -> None:
    """The rows were copied and the copy recorded (one transaction), but the old files' removal did not
    reach the card: at the next start they are removed, not copied again."""
    state, saved = tmp_path / "state", tmp_path / "saved"
    write_old_layout(state)
    shutil.copytree(state, saved)
    items, outbox = ItemStore(state / "items.sqlite"), Outbox(state / "outbox.sqlite")
    items.remove("emergency-1")  # played since
    outbox.remove(2)  # delivered since
    close(items, outbox)
    for name in ("items.sqlite", "outbox.sqlite"):
        for f in saved.glob(f"{name}*"):
            shutil.copy(f, state / f.name)

    items, outbox = ItemStore(state / "items.sqlite"), Outbox(state / "outbox.sqlite")
    assert [i[0] for i in items.all()] == ["p1-2"]
    assert [seq for seq, _ in outbox.pending()] == [3]
    assert not (state / "items.sqlite").exists() and not (state / "outbox.sqlite").exists()
    close(items, outbox)


def test_a_damaged_old_file_stops_the_store_and_leaves_the_file(tmp_path: Path) -> None:
    """As before the upgrade, a replay memory that cannot be read is an error, not an empty memory; the
    file stays for someone to look at, and the database is not left held open."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "replay.sqlite").write_bytes(b"not a database, " * 512)
    with pytest.raises(sqlite3.DatabaseError):
        ReplayMemory(state / "replay.sqlite")
    assert (state / "replay.sqlite").exists()
    assert state.absolute() not in StateDb._open


def test_worker_threads_and_the_loop_share_the_connection_one_statement_at_a_time(tmp_path: Path) -> None:
    state = tmp_path / "state"
    replay, items, outbox = (ReplayMemory(state / "replay.sqlite"), ItemStore(state / "items.sqlite"),
                             Outbox(state / "outbox.sqlite"))
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for n in range(50):
                items.put(f"item-{k}-{n}", b"{}")
                outbox.append(event(f"item-{k}-{n}"))
                assert replay.first_time(f"cmd-{k}-{n}", LATER, NOW, NOW)
                items.progress(f"item-{k}-{n}", 1.0, 0, True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(items.all()) == 200 and len(outbox) == 200
    assert sorted(seq for seq, _ in outbox.pending(limit=1000)) == list(range(1, 201))
    close(replay, items, outbox)
