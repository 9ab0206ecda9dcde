"""Key rotation across a running fleet (issue 12, Keys): the controller announces a new signing key with a
`rotate-key` command signed with the old one; every receiver keeps the new key on its disk, plays what the
new key signs, accepts the old key for the grace the command states (commands already on their way), and
refuses it afterwards — after a restart too. A receiver away during the rotation is sent it when it returns."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller.app import create_app
from controller.bridge import BridgeBase
from devrig.testbed import Testbed
from receivers.protocol import Ack, Command, Play, SetVolume, Signer, Target, Verifier
from receivers.protocol.enrolment import key_fingerprint
from tests.conftest import Api, FleetThread, admin_token, wait_for
from tests.samples import make

pytestmark = pytest.mark.integration
# Covers the rotation, six agents' acks and a command round trip on a busy 2-core machine with a wide margin
# (0.1 s here on a quiet machine): the in-flight command leaves right behind the rotation, and the checks that
# need no end of grace run inside it, so only the last checks wait for it.
GRACE_S = 20.0


class Acks:
    """Every ack the controller's bridge hears, by command id."""

    def __init__(self, bridge: BridgeBase) -> None:
        self.by_command: dict[str, dict[str, Ack]] = {}
        self._lock = threading.Lock()
        bridge.ack_watchers.append(self._heard)

    def _heard(self, rid: str, ack: Ack) -> None:
        with self._lock:
            self.by_command.setdefault(str(ack.command_id), {})[rid] = ack

    def final(self, command_id: object, rids: set[str]) -> dict[str, Ack]:
        """Wait until each of `rids` has answered the command with a final ack; return them."""
        finals = ("applied", "rejected", "done", "failed")

        def answered() -> dict[str, Ack]:
            with self._lock:
                got = {r: a for r, a in self.by_command.get(str(command_id), {}).items() if a.status in finals}
            return {r: got[r] for r in rids} if rids <= set(got) else {}
        return wait_for(answered, 30, f"final acks of {command_id} from {len(rids)} receivers")


def test_the_key_is_rotated_across_a_running_fleet(api: Api, fleet: FleetThread, tmp_path: Path) -> None:
    agents = fleet.start(fleet.settings(6))
    rids = {a.rid for a in agents}
    wait_for(lambda: all(api.get(f"/api/v1/receivers/{r}").json()["availability"] == "online" for r in rids), 20,
             "the fleet online")
    bridge = api.client.app.state.bridge  # type: ignore[attr-defined]
    acks = Acks(bridge)
    key_file = fleet.testbed.settings.key_file
    old = Signer(key_file.read_bytes())

    def publish(command: Command, signer: Signer) -> None:
        api.client.portal.call(bridge.publish_signed, command, signer.sign(command), "test")  # type: ignore[union-attr]

    r = api.post("/api/v1/signing-key/rotate", json={"grace_s": GRACE_S})
    assert r.status_code == 200, r.text
    body = r.json()
    rotated_at = time.monotonic()
    new_key = body["public_key"]
    assert new_key != old.public_key and body["fingerprint"] == key_fingerprint(new_key)
    assert api.get("/api/v1/signing-key").json()["public_key"] == new_key
    assert Signer(key_file.read_bytes()).public_key == new_key  # the controller's key file holds the new key
    [retired] = (key_file.parent / "retired").iterdir()
    assert Signer(retired.read_bytes()).public_key == old.public_key

    # In the grace: a command the old key signed (already on its way, right behind the rotation) still works.
    in_flight = SetVolume.new(Target.everyone(), 60, volume=31)
    publish(in_flight, old)

    # Every receiver applied the rotation and keeps the new key on its disk.
    assert {a.status for a in acks.final(body["command_id"], rids).values()} == {"applied"}
    for agent in agents:
        saved = json.loads((agent.settings.state_dir / "keys.json").read_text())["keys"]
        assert {k["public_key"]: k["until"] is None for k in saved} == {old.public_key: False, new_key: True}
    assert {a.status for a in acks.final(in_flight.command_id, rids).values()} == {"applied"}, "refused in the grace"
    assert time.monotonic() - rotated_at < GRACE_S, "too slow to check the grace; raise GRACE_S"

    # The controller signs with the new key: a play reaches every receiver and plays.
    data = make(tmp_path / "after.mp3", seconds=0.3).read_bytes()
    play = Play.new(Target.everyone(), 60, item_id="after-rotation", inline_audio=base64.b64encode(data).decode(),
                    inline_sha256=hashlib.sha256(data).hexdigest())
    api.client.portal.call(bridge.send, play, "test")  # type: ignore[union-attr]
    assert {a.status for a in acks.final(play.command_id, rids).values()} == {"done"}
    for agent in agents:
        assert [p.item_id for p in agent.sink.played] == ["after-rotation"]  # type: ignore[attr-defined]
    plan = api.client.app.state.runner.signed_plan(agents[0].rid)  # type: ignore[attr-defined]
    if plan is not None:  # plans are signed with the new key too
        Verifier(new_key).open_plan(plan[1])

    # A receiver that was away all along (no broker session, so nothing queued for it) is sent the rotation
    # when it comes online; it applies it (its config's key signed it) and obeys the new key.
    [away] = fleet.start(fleet.settings(7)[6:])
    assert away.rid not in rids
    assert acks.final(body["command_id"], {away.rid})[away.rid].status == "applied"
    welcome = SetVolume.new(Target.receiver(away.rid), 60, volume=12)
    api.client.portal.call(bridge.send, welcome, "test")  # type: ignore[union-attr]
    assert acks.final(welcome.command_id, {away.rid})[away.rid].status == "applied" and away.hardware.volume() == 12

    # After the grace, the old key is refused everywhere, and the volume stays.
    wait_for(lambda: time.monotonic() - rotated_at > GRACE_S + 0.5, GRACE_S + 5, "the end of the grace")
    late = SetVolume.new(Target.everyone(), 60, volume=7)
    publish(late, old)
    refused = acks.final(late.command_id, rids)
    assert {(a.status, (a.reason or "").split(" (")[0]) for a in refused.values()} == {
        ("rejected", "signed with a retired controller key")}
    assert {a.hardware.volume() for a in agents} == {31}
    assert away.hardware.volume() == 12

    # A receiver restarted keeps its trust: the old key stays refused, the new one works.
    fleet.stop_one(agents[0].rid)
    [again] = fleet.start(fleet.settings(1))
    one = {again.rid}
    replay_late = SetVolume.new(Target.receiver(again.rid), 60, volume=8)
    publish(replay_late, old)
    assert acks.final(replay_late.command_id, one)[again.rid].status == "rejected"
    fresh = SetVolume.new(Target.receiver(again.rid), 60, volume=9)
    api.client.portal.call(bridge.send, fresh, "test")  # type: ignore[union-attr]
    assert acks.final(fresh.command_id, one)[again.rid].status == "applied" and again.hardware.volume() == 9


def test_a_receiver_away_through_a_controller_restart_still_learns_the_new_key(testbed: Testbed,
                                                                              fleet: FleetThread) -> None:
    """Rotations are kept on the controller's disk: a receiver away when two were sent, and still away while
    the controller restarts, is sent both, oldest first, when it comes online, applies them, and obeys the
    newest key."""
    token = admin_token(testbed.engine)

    def controller() -> TestClient:
        client = TestClient(create_app(testbed.settings))
        client.__enter__()
        wait_for(lambda: client.get("/healthz").json()["mqtt"] == "connected", 20, "the controller on the broker")
        return client

    first = controller()
    try:  # two rotations: the second is signed with the key the first announced
        bodies = [Api(first, token).post("/api/v1/signing-key/rotate", json={"grace_s": 3600}) for _ in range(2)]
        assert [r.status_code for r in bodies] == [200, 200], [r.text for r in bodies]
    finally:
        first.__exit__(None, None, None)
    body = bodies[-1].json()
    again = controller()  # a new controller process on the same data directory
    try:
        bridge = again.app.state.bridge  # type: ignore[attr-defined]
        acks = Acks(bridge)
        [away] = fleet.start(fleet.settings(1))
        # Both are sent, oldest first, and applied. Before: nothing was sent (the announcement lived in the
        # first process's memory, and the second rotation had dropped the first), no ack came.
        for r in bodies:
            assert acks.final(r.json()["command_id"], {away.rid})[away.rid].status == "applied"
        welcome = SetVolume.new(Target.receiver(away.rid), 60, volume=17)
        again.portal.call(bridge.send, welcome, "test")  # type: ignore[union-attr]
        assert acks.final(welcome.command_id, {away.rid})[away.rid].status == "applied"
        assert away.hardware.volume() == 17 and again.app.state.signer.public_key == body["public_key"]  # type: ignore[attr-defined]
    finally:
        again.__exit__(None, None, None)
