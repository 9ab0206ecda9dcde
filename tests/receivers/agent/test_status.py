"""`truyenthanh-agent status`: a summary of the state directory an agent left, read through the stores
the agent itself writes (plan envelope, item store, outbox, saved state), and nothing created by reading."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

import pytest

from receivers.agent.cli import load_settings, main
from receivers.agent.outbox import Outbox
from receivers.agent.status import format_status, read_status
from receivers.agent.store import ItemStore, PersistentState
from receivers.protocol import MediaRef, Plan, PlanEntry, PlayEvent, Signer, generate_private_key_pem, public_key_b64

KEY = generate_private_key_pem()
RID = "tra-ka-thon-2-1"
NOW = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)


def write_config(tmp_path: Path, state: Path) -> Path:
    config = tmp_path / "agent.toml"
    values = {"receiver_id": RID, "commune": "tra-ka", "mqtt_url": "mqtts://broker.example:8883", "username": RID,
              "password": "pw", "controller_public_key": public_key_b64(KEY), "state_dir": str(state),
              "controller_url": "https://tt.example"}
    config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    return config


def plan(rid: str = RID) -> Plan:
    media = MediaRef(sha256="a" * 64, url="/media/a.mp3", size=1000)
    entries = [PlanEntry(item_id=f"p1-{i}", programme_id=1, start_at=NOW + dt.timedelta(hours=h), duration_s=60,
                         media=media) for i, h in enumerate((-2, -1, 3, 5, 30))]
    version = hashlib.sha256(json.dumps([e.model_dump(mode="json") for e in entries]).encode()).hexdigest()
    return Plan(receiver_id=rid, version=version, generated_at=NOW - dt.timedelta(hours=3),
                window_start=NOW - dt.timedelta(hours=3), window_end=NOW + dt.timedelta(hours=45), entries=entries)


def event(n: int) -> PlayEvent:
    return PlayEvent(event_id=uuid.uuid4(), seq=0, event="finished", at=NOW, item_id=f"item-{n}")


def test_a_fresh_receiver_says_what_it_does_not_have_yet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    assert main(["status", "--config", str(write_config(tmp_path, state))]) == 0
    out = capsys.readouterr().out
    assert f"receiver    {RID} (commune tra-ka)" in out and "mqtts://broker.example:8883" in out
    assert "plan        none stored yet" in out and "no item store yet" in out and "no outbox yet" in out
    assert not state.exists()  # reading created nothing


def test_the_summary_of_a_working_receiver(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    p = plan()
    (state / "plan.json").write_bytes(Signer(KEY).sign(p))
    items = ItemStore(state / "items.sqlite")
    items.put("p1-2", b"{}", quiet=True)
    items.put("emergency-1", b"{}")
    items.progress("emergency-1", 12.5, 0, playing=True)
    items.close()
    outbox = Outbox(state / "outbox.sqlite")
    for n in range(3):
        outbox.append(event(n))
    outbox.close()
    PersistentState(state / "state.json").save({"volume": 55})
    status = read_status(load_settings(write_config(tmp_path, state)), NOW)
    assert status.plan is not None and status.plan.version == p.version
    assert (status.plan_to_come, status.items_queued, status.item_playing, status.outbox, status.volume) \
        == (3, 2, "emergency-1", 3, 55)
    text = "\n".join(format_status(status))
    assert f"version {p.version[:12]}" in text and "5 entries (3 still to come)" in text
    assert "2 queued (emergency-1 was playing)" in text and "3 event(s) waiting for the broker" in text
    assert "volume      55" in text


def test_a_plan_it_cannot_trust_is_named_not_shown(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    settings = load_settings(write_config(tmp_path, state))
    (state / "plan.json").write_bytes(Signer(generate_private_key_pem()).sign(plan()))
    status = read_status(settings, NOW)
    assert status.plan is None and status.plan_problem is not None and "not valid" in status.plan_problem
    (state / "plan.json").write_bytes(Signer(KEY).sign(plan("tra-ka-thon-9-9")))
    assert read_status(settings, NOW).plan_problem == "stored plan is for tra-ka-thon-9-9"


def test_a_bad_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "agent.toml"
    bad.write_text('receiver_id = "Not A Level"\n')
    with pytest.raises(SystemExit) as exit_:
        main(["status", "--config", str(bad)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "receiver_id" in err
