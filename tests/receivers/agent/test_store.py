"""The agent's on-disk memory survives a restart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from receivers.agent.store import PersistentState, ReplayMemory


def test_replay_memory_survives_reopen(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    m = ReplayMemory(tmp_path / "r.sqlite")
    assert m.first_time("a", now + dt.timedelta(minutes=1), now)
    assert not m.first_time("a", now + dt.timedelta(minutes=1), now)
    m.close()
    m = ReplayMemory(tmp_path / "r.sqlite")
    assert not m.first_time("a", now + dt.timedelta(minutes=1), now)
    assert m.first_time("b", now + dt.timedelta(minutes=1), now)
    m.close()


def test_state_file_tolerates_damage(tmp_path: Path) -> None:
    s = PersistentState(tmp_path / "state.json")
    assert s.load() == {}
    s.save({"volume": 33})
    assert PersistentState(tmp_path / "state.json").load() == {"volume": 33}
    (tmp_path / "state.json").write_text("{truncated")
    assert s.load() == {}
