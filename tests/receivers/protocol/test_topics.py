"""Topic builders and the parser agree, and reject what is not a topic level."""

from __future__ import annotations

import pytest

from receivers.protocol import COMMAND_KINDS, Topics
from receivers.protocol.topics import RECEIVER_LEAVES


def test_every_built_topic_parses_back() -> None:
    t = Topics("truyenthanh")
    for leaf in RECEIVER_LEAVES:
        info = t.parse(t.receiver("tra-bui-thon-1-1", leaf))
        assert info is not None and (info.scope, info.ident, info.leaf) == ("receiver", "tra-bui-thon-1-1", leaf)
    for kind in COMMAND_KINDS:
        assert t.parse(t.receiver_cmd("r1", kind)).command == kind  # type: ignore[union-attr]
        assert t.parse(t.commune_cmd("tra-ka", kind)).ident == "tra-ka"  # type: ignore[union-attr]
        assert t.parse(t.all_cmd(kind)).scope == "all"  # type: ignore[union-attr]
    assert t.parse(t.controller_availability()).scope == "controller"  # type: ignore[union-attr]


@pytest.mark.parametrize("topic", ["other/receivers/r1/state", "truyenthanh/receivers/r1/secrets",
                                   "truyenthanh/receivers/R1/state", "truyenthanh/receivers/+/state",
                                   "truyenthanh/all/cmd", "truyenthanh"])
def test_foreign_topics_parse_to_none(topic: str) -> None:
    assert Topics().parse(topic) is None


@pytest.mark.parametrize("bad", ["", "Trà-Bui", "a/b", "+", "#", "a b", "x" * 64])
def test_levels_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        Topics().receiver_cmd(bad, "ping")


def test_agent_subscriptions_cover_its_own_commune_and_all_only() -> None:
    filters = Topics("tt").agent_filters("r1", "tra-ka")
    assert filters == ["tt/receivers/r1/cmd/+", "tt/communes/tra-ka/cmd/+", "tt/all/cmd/+",
                       "tt/controller/availability"]
