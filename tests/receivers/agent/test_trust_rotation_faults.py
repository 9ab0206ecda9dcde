"""Key rotation under faults (issue 12, Keys; review of the rotation): what goes wrong on a bad day must not
leave a receiver trusting the wrong key, nor the controller signing with a key nobody was told of.

Controller (in-memory bridge): one rotation at a time (a second concurrent one is refused with 409), the new
key on disk before it is announced, the old key back on disk and in memory when the announcement fails;
rotations kept on disk and sent again, oldest first, after a restart and after a later rotation; only an
`applied` ack counts. Agent (real agent, its state on disk, not connected): a rotation whose keys.json write
failed is applied when sent again (not "replayed"); one applied before is answered "applied"; a damaged
keys.json stops the agent and `status` says why; `status` checks the stored plan with the keys the agent
trusts; re-enrolling resets keys.json; the state file's temporary name is never a planted symlink."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.bridge import BrokerUnreachable
from controller.bridge_memory import InMemoryBridge
from controller.config import Settings
from controller.provision import ensure_signing_key, load_signing_key
from receivers.agent import store as agent_store
from receivers.agent.cli import main as agent_main
from receivers.agent.status import read_status
from receivers.agent.store import KeyStore, KeysUnreadable, PersistentState
from receivers.protocol import (
    Ack,
    Plan,
    RotateKey,
    Signer,
    Target,
    Topics,
    generate_private_key_pem,
    parse_receiver_message,
    public_key_b64,
    utcnow,
)
from tests.conftest import Api, Seeded, admin_token
from tests.doubles import Message, offline_agent
from tests.receivers.agent.test_enroll_cli import enrolment_code
from tests.receivers.agent.test_status import plan, write_config

RID = "tra-nu-thon-1-1"


# ------------------------------------------------------------------------------------------ controller


class GatedBridge(InMemoryBridge):
    """Holds each `rotate-key` publish until `gate` is set, noting the key file's public key at that moment;
    with `fail`, the publish raises as a lost broker would."""

    entered = threading.Event()
    gate = threading.Event()
    fail = False
    key_at_publish: list[str] = []

    async def _publish(self, target: Target, kind: str, payload: bytes) -> None:
        if kind == "rotate-key":
            type(self).key_at_publish.append(load_signing_key(self.settings)[1])
            type(self).entered.set()
            await asyncio.to_thread(type(self).gate.wait, 30)
            if type(self).fail:
                raise BrokerUnreachable("the broker went away (test)")
        await super()._publish(target, kind, payload)


@pytest.fixture
def gated(seeded: Seeded) -> Iterator[Api]:
    GatedBridge.entered, GatedBridge.gate, GatedBridge.fail, GatedBridge.key_at_publish = (
        threading.Event(), threading.Event(), False, [])
    with TestClient(create_app(seeded.settings, bridge=GatedBridge)) as client:
        yield Api(client, admin_token(seeded.engine))


def test_two_concurrent_rotations_one_is_refused_the_new_key_on_disk_before_it_is_announced(
        gated: Api, seeded: Seeded) -> None:
    old = seeded.public_key
    first: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: first.update(r=gated.post("/api/v1/signing-key/rotate",
                                                                      json={"grace_s": 60})))
    worker.start()
    assert GatedBridge.entered.wait(30), "the first rotation never reached the broker"
    second = gated.post("/api/v1/signing-key/rotate", json={"grace_s": 60})
    GatedBridge.gate.set()
    worker.join(30)
    # Before: both went ahead over the same staged file; the fleet was told of two keys, one of them lost.
    assert second.status_code == 409 and "rotation is under way" in second.json()["detail"], second.text
    assert first["r"].status_code == 200, first["r"].text
    new = first["r"].json()["public_key"]
    assert [getattr(c, "public_key", None) for c in gated.bridge.commands("rotate-key")] == [new]
    # Before: announced while the key file still held the old key (a crash then lost the new one for good).
    assert GatedBridge.key_at_publish == [new]
    assert load_signing_key(seeded.settings)[1] == new != old
    assert gated.client.app.state.signer.public_key == new  # type: ignore[attr-defined]
    assert not list(seeded.settings.key_file.parent.glob("*.next.pem"))


def test_a_failed_announcement_leaves_the_old_key_on_disk_and_in_memory(gated: Api, seeded: Seeded) -> None:
    GatedBridge.fail = True
    GatedBridge.gate.set()
    r = gated.post("/api/v1/signing-key/rotate", json={"grace_s": 60})
    assert r.status_code == 503 and "the key was not changed" in r.json()["detail"]
    assert GatedBridge.key_at_publish and GatedBridge.key_at_publish[0] != seeded.public_key  # it was installed
    assert load_signing_key(seeded.settings)[1] == seeded.public_key  # … and put back
    assert gated.client.app.state.signer.public_key == seeded.public_key  # type: ignore[attr-defined]
    keys = seeded.settings.key_file.parent
    assert not list(keys.glob("*.next.pem")) and not list((keys / "retired").glob("*"))
    assert not list((keys / "rotations").glob("*"))  # nothing left to send again
    GatedBridge.fail = False
    assert gated.post("/api/v1/signing-key/rotate", json={"grace_s": 60}).status_code == 200  # and it can retry


def _resent(api: Api) -> list[str]:
    return [s.command_id for s in api.bridge.sent if s.resent and s.kind == "rotate-key"]


def _wait_resent(api: Api, n: int) -> list[str]:
    for _ in range(200):
        api.client.portal.call(asyncio.sleep, 0.02)  # type: ignore[union-attr]  # re-sends: tasks on the app's loop
        if len(got := _resent(api)) >= n:
            return got
    raise AssertionError(f"{n} re-sends expected, got {_resent(api)}")


def test_rotations_are_sent_again_after_a_restart_and_a_later_rotation_oldest_first(seeded: Seeded) -> None:
    token = admin_token(seeded.engine)
    with TestClient(create_app(seeded.settings, bridge=InMemoryBridge)) as client:
        api = Api(client, token)
        ids = [api.post("/api/v1/signing-key/rotate", json={"grace_s": 60}).json()["command_id"] for _ in range(2)]
        api.online("tra-nu-thon-1-2")
        # Before: the second rotation closed the first one's re-sends.
        assert _wait_resent(api, 2) == ids
    # A new controller process on the same data directory: both are still sent to a receiver that missed them.
    with TestClient(create_app(seeded.settings, bridge=InMemoryBridge)) as client:
        api = Api(client, token)
        api.online(RID)
        assert _wait_resent(api, 2) == ids  # before: nothing (the announcement lived in memory)
        # The receiver applies the later one: it needs neither again.
        api.deliver(RID, Ack(command_id=ids[1], command="rotate-key", status="applied", at=utcnow()))
        api.bridge.sent.clear()
        api.online(RID, "tra-nu-thon-1-2")
        assert sorted(_wait_resent(api, 2)) == sorted(ids)  # only the other receiver's two


def test_only_an_applied_ack_counts(api: Api) -> None:
    cid = api.post("/api/v1/signing-key/rotate", json={"grace_s": 60}).json()["command_id"]
    # Before: "replayed" counted as applied — but a receiver whose keys.json write failed answered that too.
    api.deliver(RID, Ack(command_id=cid, command="rotate-key", status="rejected",
                         reason="replayed: command already received", at=utcnow()))
    api.online(RID)
    assert _wait_resent(api, 1) == [cid]


# ---------------------------------------------------------------------------------------------- agent

OLD = generate_private_key_pem()
NEW = generate_private_key_pem()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Any]:
    """A real agent (simulated hardware, its state on disk), never connected: its acks are recorded."""
    from receivers.agent import AgentSettings

    settings = AgentSettings(receiver_id=RID, commune="tra-nu", mqtt_url="mqtt://127.0.0.1:1", username=RID,
                             password="pw", controller_public_key=public_key_b64(OLD),
                             controller_url="http://127.0.0.1:1", state_dir=tmp_path / "state")
    with offline_agent(settings) as a:
        yield a


def rotation() -> tuple[RotateKey, bytes]:
    now = utcnow()
    command: RotateKey = RotateKey.new(Target.everyone(), 3600, now=now, public_key=public_key_b64(NEW),
                                       valid_from=now, old_key_until=now + dt.timedelta(minutes=10))
    return command, Signer(OLD).sign(command)


def deliver(agent: Any, payload: bytes) -> Ack:
    agent.published.clear()
    asyncio.run(agent.on_message(Message(Topics().all_cmd("rotate-key"), payload)))
    [ack] = [parse_receiver_message(p, "ack") for t, p in agent.published if t.endswith("/ack")]
    assert isinstance(ack, Ack)
    return ack


def test_a_rotation_not_written_is_applied_when_sent_again(agent: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    command, payload = rotation()
    real = agent_store.write_atomic

    def disk_full(path: Path, data: bytes, mode: int = 0o600) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(agent_store, "write_atomic", disk_full)
    failed = deliver(agent, payload)
    assert failed.status == "rejected" and "No space left" in (failed.reason or "")
    assert public_key_b64(NEW) not in {k.public_key for k in agent.verifier.keys}
    monkeypatch.setattr(agent_store, "write_atomic", real)
    again = deliver(agent, payload)
    # Before: "replayed" (its id was remembered before keys.json was written), and the key never applied.
    assert again.status == "applied", again.reason
    saved = json.loads((agent.settings.state_dir / "keys.json").read_text())["keys"]
    assert {k["public_key"]: k["until"] is None for k in saved} == {public_key_b64(OLD): False,
                                                                    public_key_b64(NEW): True}


def test_a_rotation_applied_before_is_answered_applied(agent: Any) -> None:
    command, payload = rotation()
    assert deliver(agent, payload).status == "applied"
    # Before: refused by check 8b ("must be signed with the controller's current key"), so re-sent forever.
    again = deliver(agent, payload)
    assert (again.status, again.reason) == ("applied", None)


@pytest.mark.parametrize("content", [
    b"{not json", b'{"keys": [{"public_key": "!!", "until": null}]}',
    b'{"keys": [{"public_key": "%s", "until": "tomorrow"}]}' % base64.b64encode(bytes(32)), b"[]"],
    ids=["not JSON", "not a key", "not a time", "not a document"])
def test_a_damaged_keys_file_stops_the_agent_and_status_says_why(
        tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    config = write_config(tmp_path, state)
    state.mkdir()
    (state / "keys.json").write_bytes(content)
    from receivers.agent.cli import load_settings
    settings = load_settings(config)
    # Before: the file was ignored and the enrolled key trusted alone (perhaps retired, the current one not).
    with pytest.raises(KeysUnreadable, match="keys.json is damaged"):
        KeyStore(state / "keys.json", settings.controller_public_key).load()
    assert agent_main(["status", "--config", str(config)]) == 1
    assert "keys        DAMAGED, the agent will not start" in capsys.readouterr().out
    assert agent_main(["run", "--config", str(config)]) == 1
    assert "cannot start" in caplog.text and "keys.json is damaged" in caplog.text


def test_status_checks_the_stored_plan_with_the_keys_the_agent_trusts(tmp_path: Path) -> None:
    from tests.receivers.agent.test_status import KEY
    state = tmp_path / "state"
    settings_file = write_config(tmp_path, state)
    from receivers.agent.cli import load_settings
    settings = load_settings(settings_file)
    rotated = generate_private_key_pem()
    KeyStore(state / "keys.json", public_key_b64(KEY)).rotate(public_key_b64(rotated),
                                                             utcnow() + dt.timedelta(minutes=5))
    p: Plan = plan()
    (state / "plan.json").write_bytes(Signer(rotated).sign(p))
    status = read_status(settings, utcnow())
    # Before: "stored plan not valid: bad signature" (checked with the config's key alone).
    assert status.plan_problem is None and status.plan is not None and status.plan.version == p.version


def test_re_enrolling_trusts_the_enrolled_key_alone(controller: str, env: Settings, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    KeyStore(state / "keys.json", public_key_b64(OLD)).rotate(public_key_b64(NEW), utcnow() + dt.timedelta(days=1))
    code = agent_main(["enroll", "--controller", controller, "--code", enrolment_code(), "--config",
                       str(tmp_path / "a.toml"), "--state-dir", str(state)])
    assert code == 0, capsys.readouterr()
    enrolled = ensure_signing_key(env)[1]
    # Before: keys.json still trusted the keys of the earlier enrolment (NEW fully), beside the enrolled one.
    assert [(k.public_key, k.until) for k in KeyStore(state / "keys.json", enrolled).load()] == [(enrolled, None)]


def test_the_state_file_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    path = tmp_path / "state" / "state.json"
    path.parent.mkdir()
    os.symlink(victim, path.with_suffix(".tmp"))  # the fixed temporary name it used before
    PersistentState(path).save({"volume": 40})
    assert victim.read_text() == "untouched"
    assert PersistentState(path).load() == {"volume": 40}
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json", "state.tmp"]  # no temp file left
