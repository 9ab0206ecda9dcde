"""MQTT topic names: the only place where topic strings are built or taken apart.

- `Topics(base)`: builders for every topic in docs/PROTOCOL.md, and the subscription filters each side uses.
- `parse(topic)`: the inverse, a `TopicInfo` (scope, id, leaf, command name) or `None` for foreign topics.
- `check_level(value)`: ids, commune codes and command names are single topic levels of `a-z0-9-`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

LEVEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

ReceiverLeaf = Literal["availability", "state", "telemetry", "event", "ack"]
RECEIVER_LEAVES: tuple[ReceiverLeaf, ...] = ("availability", "state", "telemetry", "event", "ack")


def check_level(value: str) -> str:
    """Return `value` if it is a valid single topic level, else raise ValueError naming the rule."""
    if not LEVEL.match(value):
        raise ValueError(f"{value!r} is not a topic level: use 1-63 characters of a-z, 0-9 and '-'")
    return value


@dataclass(frozen=True)
class TopicInfo:
    scope: Literal["controller", "receiver", "commune", "all"]
    ident: str | None  # receiver id or commune code
    leaf: str  # availability/state/telemetry/event/ack, or "cmd"
    command: str | None = None


@dataclass(frozen=True)
class Topics:
    base: str = "truyenthanh"

    def __post_init__(self) -> None:
        for part in self.base.split("/"):
            check_level(part)

    # -- controller
    def controller_availability(self) -> str:
        return f"{self.base}/controller/availability"

    # -- receiver → controller
    def receiver(self, rid: str, leaf: ReceiverLeaf) -> str:
        return f"{self.base}/receivers/{check_level(rid)}/{leaf}"

    # -- controller → receivers
    def receiver_cmd(self, rid: str, name: str) -> str:
        return f"{self.base}/receivers/{check_level(rid)}/cmd/{check_level(name)}"

    def commune_cmd(self, code: str, name: str) -> str:
        return f"{self.base}/communes/{check_level(code)}/cmd/{check_level(name)}"

    def all_cmd(self, name: str) -> str:
        return f"{self.base}/all/cmd/{check_level(name)}"

    # -- subscription filters
    def ingest_filters(self) -> list[str]:
        """What the controller subscribes to: every receiver leaf of every receiver."""
        return [f"{self.base}/receivers/+/{leaf}" for leaf in RECEIVER_LEAVES]

    def agent_filters(self, rid: str, commune: str) -> list[str]:
        """What an agent subscribes to: its own, its commune's and the all-receivers commands."""
        return [
            f"{self.base}/receivers/{check_level(rid)}/cmd/+",
            f"{self.base}/communes/{check_level(commune)}/cmd/+",
            f"{self.base}/all/cmd/+",
            self.controller_availability(),
        ]

    def parse(self, topic: str) -> TopicInfo | None:
        prefix = self.base + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix):].split("/")
        match parts:
            case ["controller", "availability"]:
                return TopicInfo("controller", None, "availability")
            case ["receivers", rid, leaf] if leaf in RECEIVER_LEAVES and LEVEL.match(rid):
                return TopicInfo("receiver", rid, leaf)
            case ["receivers", rid, "cmd", name] if LEVEL.match(rid) and LEVEL.match(name):
                return TopicInfo("receiver", rid, "cmd", name)
            case ["communes", code, "cmd", name] if LEVEL.match(code) and LEVEL.match(name):
                return TopicInfo("commune", code, "cmd", name)
            case ["all", "cmd", name] if LEVEL.match(name):
                return TopicInfo("all", None, "cmd", name)
        return None
