"""The embedded broker's topic rules: the same `Account` rules Mosquitto enforces with its `acl` file.

`AccountAcl` is an amqtt topic plugin answering the broker's three questions per account: may it publish on
this topic (its `publish` filters), may it subscribe to this filter (the filter must lie inside one of its
`subscribe` filters), and may it receive a message on this topic (the topic matches one of its `subscribe`
filters — Mosquitto's `topic read`). amqtt's own `TopicAccessControlListPlugin` has no rule for the last one,
so every message, retained ones included, reached anyone subscribed; `embedded.GuardedBroker` asks it for
retained messages too. `matches` and `covers` are MQTT's wildcard rules, pure.

The rules live in a JSON file (`acl_file`: `{"publish": {user: [filters]}, "subscribe": {…}}`, written by
`files.write_amqtt`) that is read again when it changes, checked at each SUBSCRIBE (one `stat`): an account
added at enrolment may subscribe at once, as the password file is re-read at each login.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

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
        self._file = Path(self.config.acl_file) if self.config.acl_file else None
        self._stamp: tuple[int, int, int] | None = None
        self._refresh()  # a missing file at start is an error

    def _refresh(self) -> None:
        if self._file is None:
            return
        try:
            with self._file.open(encoding="utf-8") as f:
                st = os.fstat(f.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    return
                rules = json.load(f)
        except (OSError, ValueError) as e:
            if self._stamp is None:
                raise
            # keep the rules we have rather than lock everybody out
            self.context.logger.warning("cannot re-read ACL file %s: %s", self._file, e)
            return
        first = self._stamp is None
        self._publish, self._subscribe, self._stamp = rules["publish"], rules["subscribe"], stamp
        if not first:
            self.context.logger.info("ACL file %s re-read: %d accounts", self._file, len(self._subscribe))

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        user = session.username if session else None
        if not user or not topic:
            return False
        if action == Action.PUBLISH:
            return any(matches(topic, f) for f in self._publish.get(user, []))
        if action == Action.SUBSCRIBE:
            self._refresh()
            return any(covers(f, topic) for f in self._subscribe.get(user, []))
        if action == Action.RECEIVE:
            return any(matches(topic, f) for f in self._subscribe.get(user, []))
        return False

    @dataclass
    class Config:
        publish: dict[str, list[str]] = field(default_factory=dict)
        subscribe: dict[str, list[str]] = field(default_factory=dict)
        acl_file: str = ""  # if given, the rules come from this file instead
