"""`Target`: the one way to name who a command is for, and its wire form inside a signed command."""

from __future__ import annotations

import pytest

from receivers.protocol import SetVolume, Target, Topics, parse_command


@pytest.mark.parametrize("target, wire", [
    (Target.receiver("tra-mai-thon-1-1"), "receiver:tra-mai-thon-1-1"),
    (Target.commune("tra-mai"), "commune:tra-mai"),
    (Target.everyone(), "all"),
])
def test_wire_form_round_trips(target: Target, wire: str) -> None:
    assert str(target) == wire
    assert Target.parse(wire) == target


@pytest.mark.parametrize("text", ["", "receiver:", "commune:Trà Mai", "village:x", "everyone", "all:x",
                                  "receiver:a/b", "receiver:+", "commune:#"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(text)


def test_topic_per_scope() -> None:
    topics = Topics("tt")
    assert Target.receiver("r1").topic(topics, "play") == "tt/receivers/r1/cmd/play"
    assert Target.commune("tra-mai").topic(topics, "stop") == "tt/communes/tra-mai/cmd/stop"
    assert Target.everyone().topic(topics, "ping") == "tt/all/cmd/ping"


def test_who_is_reached() -> None:
    assert Target.receiver("r1").reaches("r1", "tra-mai")
    assert not Target.receiver("r1").reaches("r2", "tra-mai")
    assert Target.commune("tra-mai").reaches("r2", "tra-mai")
    assert not Target.commune("tra-mai").reaches("r2", "tra-ka")
    assert Target.everyone().reaches("r9", None)


def test_a_command_carries_its_target_as_the_wire_string() -> None:
    command = SetVolume.new(Target.commune("tra-mai"), 60, volume=40)
    raw = command.model_dump_json()
    assert '"target":"commune:tra-mai"' in raw
    back = parse_command(raw.encode())
    assert back.target == Target.commune("tra-mai")
    with pytest.raises(ValueError):
        parse_command(raw.replace("commune:tra-mai", "commune:tra mai").encode())
