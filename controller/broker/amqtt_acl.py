"""The embedded broker's topic rules: the same `Account` rules Mosquitto enforces with its `acl` file.

`AccountAcl` is an amqtt topic plugin answering the broker's three questions per account: may it publish on
this topic (its `publish` filters), may it subscribe to this filter (the filter must lie inside one of its
`subscribe` filters), and may it receive a message on this topic (the topic matches one of its `subscribe`
filters — Mosquitto's `topic read`). amqtt's own `TopicAccessControlListPlugin` has no rule for the last one,
so every message, retained ones included, reached anyone subscribed; `embedded.GuardedBroker` asks it for
retained messages too. `matches` and `covers` are MQTT's wildcard rules, pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseTopicPlugin
from amqtt.session import Session


def matches(topic: str, topic_filter: str) -> bool:
    """Does the topic name `topic` match the filter `topic_filter` (`+` one level, `#` the rest)?"""
    if topic.startswith("$") and topic_filter.startswith(("+", "#")):
        return False  # [MQTT-4.7.2-1]
    names, levels = topic.split("/"), topic_filter.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return i == len(levels) - 1
        if i >= len(names) or level not in ("+", names[i]):
            return False
    return len(names) == len(levels)


def covers(allowed: str, requested: str) -> bool:
    """Does the filter `allowed` cover every topic the filter `requested` can match?"""
    want, have = requested.split("/"), allowed.split("/")
    for i, level in enumerate(have):
        if level == "#":
            return True
        if i >= len(want) or want[i] == "#" or (level != "+" and level != want[i]):
            return False
    return len(want) == len(have)


class AccountAcl(BaseTopicPlugin):
    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._publish: dict[str, list[str]] = self.config.publish
        self._subscribe: dict[str, list[str]] = self.config.subscribe

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        user = session.username if session else None
        if not user or not topic:
            return False
        if action == Action.PUBLISH:
            return any(matches(topic, f) for f in self._publish.get(user, []))
        if action == Action.SUBSCRIBE:
            return any(covers(f, topic) for f in self._subscribe.get(user, []))
        if action == Action.RECEIVE:
            return any(matches(topic, f) for f in self._subscribe.get(user, []))
        return False

    @dataclass
    class Config:
        publish: dict[str, list[str]] = field(default_factory=dict)
        subscribe: dict[str, list[str]] = field(default_factory=dict)
