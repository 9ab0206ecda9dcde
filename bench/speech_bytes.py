"""Bytes per receiver of an emergency read aloud, and the broker's egress for a fleet, in the speech format and
in the broadcast format that speech was made in before it.

    .venv/bin/python bench/speech_bytes.py [--receivers 10000] [--text "Cảnh báo lũ quét, sơ tán ngay."]

The controller itself makes the emergency: `create_app` on a seeded world in a temporary directory, with the
in-memory bridge (no broker: nothing here is timed), `POST /api/v1/emergencies` with the text of
`bench/emergency.py` to every receiver, read by eSpeak (the offline voice: Google and the neural voice are not
asked). The signed play command is read back from the emergency's row (`Emergency.payloads`: what is published,
byte for byte). This runs twice: with speech made at the broadcast format (44.1 kHz, 64 kbps; what speech was
before the speech format) and at the speech format (`TT_AUDIO__SPEECH_SAMPLE_RATE` / `SPEECH_BITRATE_KBPS`,
22.05 kHz, 32 kbps by default).

Broker egress: every receiver gets one MQTT PUBLISH (QoS 1, MQTT 3.1.1) of the command: 1 byte of fixed header,
the remaining length (1-4 bytes), the topic (2 + its length) and the packet identifier (2) around the payload.
TCP/IP and TLS framing come on top (about 3 % for full 1460-byte segments and 16 KiB TLS records); the
receivers' acknowledgements are the broker's ingress, not counted.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402
from sqlmodel import Session  # noqa: E402

TEXT = "Cảnh báo lũ quét, sơ tán ngay."  # bench/emergency.py's


def mqtt_publish_bytes(topic: str, payload: int) -> int:
    """The size of a QoS 1 PUBLISH packet (MQTT 3.1.1) carrying `payload` bytes on `topic`."""
    remaining = 2 + len(topic.encode()) + 2 + payload
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


def measure(root: Path, text: str, rate: int, kbps: int) -> tuple[int, int, float, int, str]:
    """(MP3 bytes, signed command bytes, audio seconds, PUBLISH bytes, topic) of one emergency to all."""
    os.environ["TT_UI__ENABLED"] = "0"
    from controller.app import create_app
    from controller.bridge_memory import InMemoryBridge
    from controller.config import TtsSettings
    from controller.db.models import Emergency
    from controller.services.accounts import issue_token
    from devrig.testbed import seed_world
    from receivers.protocol import Target
    from receivers.protocol.topics import Topics

    settings, engine, _ = seed_world(root, tts=TtsSettings(emergencies=["offline"], cap=["offline"],
                                                           announcements=["offline"]))
    settings.audio.speech_sample_rate, settings.audio.speech_bitrate_kbps = rate, kbps
    with Session(engine) as s:
        token = issue_token(s, "bench", ["admin"], created_by="bench")[1]
    with TestClient(create_app(settings, bridge=InMemoryBridge)) as client:
        r = client.post("/api/v1/emergencies", headers={"Authorization": f"Bearer {token}"},
                        json={"text": text, "targets": {"all": True}, "repeat": 1})
        assert r.status_code == 202, r.text
        body = r.json()
        mp3 = len(client.get(body["media_url"]).content)
    with Session(engine) as s:
        row = s.get(Emergency, body["id"])
        assert row is not None and row.payloads is not None
        [(target, payload)] = row.payloads.items()
    engine.dispose()
    size = len(payload.encode())
    assert json.loads(json.loads(payload)["body"]).get("inline_audio"), "the audio did not travel inline"
    topic = Target.parse(target).topic(Topics(settings.mqtt_base), "play")
    return mp3, size, body["duration_s"], mqtt_publish_bytes(topic, size), topic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--receivers", type=int, default=10_000)
    parser.add_argument("--text", default=TEXT)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-speech-bytes-") as d:
        for name, rate, kbps in (("before: broadcast format", 44100, 64), ("speech format", 22050, 32)):
            rows.append((name, rate, kbps, *measure(Path(d) / f"{rate}-{kbps}", args.text, rate, kbps)))
    n = args.receivers
    print(f"text: {args.text!r}; {n:,} receivers; one publish to {rows[0][-1]} (QoS 1)")
    print("| speech made as | MP3 | audio | signed command (audio inline, base64) | MQTT PUBLISH | "
          f"broker egress for {n:,} |")
    print("|---|---|---|---|---|---|")
    for name, rate, kbps, mp3, size, seconds, publish, _ in rows:
        print(f"| {name}: {rate / 1000:g} kHz, {kbps} kbps, mono | {mp3:,} B | {seconds:.2f} s | {size:,} B | "
              f"{publish:,} B | {publish * n / 1e6:,.1f} MB |")
    before, after = rows[0][6], rows[1][6]
    print(f"per receiver: {before:,} → {after:,} B ({after / before:.0%})")


if __name__ == "__main__":
    main()
