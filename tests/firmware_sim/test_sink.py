"""`RecordingSink` records what each simulated receiver played, from that receiver's own copy of the audio."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

from firmware_sim.hardware import SimHardware
from firmware_sim.sink import PcmCache, RecordingSink, decode_pcm
from tests.samples import make

SHA_NAME = "ab" * 32  # both receivers' copies carry the same content name, as in the agent's cache


def test_each_receiver_hashes_its_own_copy_even_under_the_same_name(tmp_path: Path) -> None:
    good = make(tmp_path / "good.wav", seconds=0.5, source="sine")
    other = make(tmp_path / "other.wav", seconds=0.5, gain_db=-6.0, source="sine")
    a, b = tmp_path / "a" / f"{SHA_NAME}.wav", tmp_path / "b" / f"{SHA_NAME}.wav"
    for src, dst in ((good, a), (other, b)):
        dst.parent.mkdir()
        shutil.copy(src, dst)
    cache = PcmCache()  # one cache for both, as in a fleet
    sinks = [RecordingSink(SimHardware(), speed=50, cache=cache) for _ in range(2)]

    async def both() -> None:
        await sinks[0].play(a, item_id="x", volume=70, offset_s=0)
        await sinks[1].play(b, item_id="x", volume=70, offset_s=0)

    asyncio.run(both())
    [played_a], [played_b] = sinks[0].played, sinks[1].played
    # Receiver b's copy differs: it must not be credited with receiver a's decode.
    assert played_a.pcm_sha256 == hashlib.sha256(asyncio.run(decode_pcm(good))).hexdigest()
    assert played_b.pcm_sha256 == hashlib.sha256(asyncio.run(decode_pcm(other))).hexdigest()
    assert played_a.pcm_sha256 != played_b.pcm_sha256


def test_a_copy_changed_on_disk_is_decoded_again(tmp_path: Path) -> None:
    path = tmp_path / f"{SHA_NAME}.wav"
    make(path, seconds=0.5, source="sine")
    sink = RecordingSink(SimHardware(), speed=50, cache=PcmCache())
    asyncio.run(sink.play(path, item_id="x", volume=70, offset_s=0))
    make(path, seconds=0.5, gain_db=-3.0, source="sine")  # the card's copy is damaged after the first play
    asyncio.run(sink.play(path, item_id="x", volume=70, offset_s=0))
    first, second = sink.played
    assert second.pcm_sha256 == hashlib.sha256(asyncio.run(decode_pcm(path))).hexdigest() != first.pcm_sha256
