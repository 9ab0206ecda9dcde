"""An emergency sent again to a receiver back online must get past that receiver's high-water mark."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from controller.emergencies import Tracker
from receivers.protocol import Play, Rejected, Signer, Target, Verifier
from receivers.protocol.messages import MediaRef
from receivers.protocol.signing import generate_private_key_pem, public_key_b64


class Port:
    """What the tracker needs of the bridge to send again: a signer, and `republish`."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.sent: list[tuple[Target, str, bytes]] = []

    async def republish(self, target: Target, kind: str, payload: bytes) -> None:
        self.sent.append((target, kind, payload))


def test_a_resent_emergency_is_issued_anew_with_its_id_and_passes_a_later_high_water_mark() -> None:
    pem = generate_private_key_pem()
    signer, verifier = Signer(pem), Verifier(public_key_b64(pem))
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=20)  # sent while the receiver was away
    play = Play.new(Target.commune("tra-bui"), 3600, now=issued, item_id="em-7", priority="emergency",
                    media=MediaRef(sha256="a" * 64, url="/media/a.mp3", size=10))
    original = signer.sign(play)
    # Back online, the receiver first verified a newer command (a resync's sync-schedule): its mark is now.
    mark = dt.datetime.now(dt.UTC)
    with pytest.raises(Rejected, match="issued before"):
        verifier.open(original, mark, high_water=mark)

    port = Port(signer)
    tracker = Tracker(engine=None, bridge=port)  # type: ignore[arg-type]
    asyncio.run(tracker._resend("tra-bui-thon-1-1", original, "7"))

    [(target, kind, payload)] = port.sent
    assert (target, kind) == (Target.receiver("tra-bui-thon-1-1"), "play")
    again = verifier.open(payload, mark, high_water=mark)
    assert again.command_id == play.command_id  # a copy of the original still queued is refused as a replay
    assert again.expires_at == play.expires_at and again.item_id == "em-7"
    assert again.issued_at >= mark
