"""Who a command is for: one receiver, one commune, or every receiver.

`Target` is the one way to name a command's addressee: builders (`Target.receiver(rid)`,
`Target.commune(code)`, `Target.everyone()`), the parser of its wire form (`Target.parse("commune:tra-mai")`),
the topic it is published on (`target.topic(topics, kind)`) and the check an agent makes
(`target.reaches(rid, commune)`). On the wire it is the string `receiver:{id}`, `commune:{code}` or `all`,
signed with the rest of the command so that nobody can re-route it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from .topics import Topics, check_level

Scope = Literal["receiver", "commune", "all"]


@dataclass(frozen=True, order=True)
class Target:
    scope: Scope
    ident: str | None = None  # the receiver id or commune code; None for `all`

    def __post_init__(self) -> None:
        if self.scope == "all":
            if self.ident is not None:
                raise ValueError("the all-receivers target names nobody in particular")
        elif self.scope in ("receiver", "commune"):
            check_level(self.ident or "")
        else:
            raise ValueError(f"not a target scope: {self.scope!r}")

    @classmethod
    def receiver(cls, rid: str) -> Target:
        return cls("receiver", rid)

    @classmethod
    def commune(cls, code: str) -> Target:
        return cls("commune", code)

    @classmethod
    def everyone(cls) -> Target:
        return cls("all")

    @classmethod
    def parse(cls, text: str) -> Target:
        """The inverse of `str(target)`; ValueError for anything else."""
        if text == "all":
            return cls.everyone()
        scope, sep, ident = text.partition(":")
        if not sep or scope not in ("receiver", "commune"):
            raise ValueError(f"not a command target: {text!r} (receiver:<id>, commune:<code> or all)")
        return cls(scope, ident)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "all" if self.scope == "all" else f"{self.scope}:{self.ident}"

    def topic(self, topics: Topics, kind: str) -> str:
        """The command topic this target is published on."""
        if self.scope == "receiver":
            return topics.receiver_cmd(self.ident or "", kind)
        if self.scope == "commune":
            return topics.commune_cmd(self.ident or "", kind)
        return topics.all_cmd(kind)

    def reaches(self, rid: str, commune: str | None) -> bool:
        """Whether a receiver `rid` of `commune` is among this target's addressees."""
        if self.scope == "all":
            return True
        return self.ident == (rid if self.scope == "receiver" else commune)


def _validate(value: Any) -> Target:
    if isinstance(value, Target):
        return value
    if isinstance(value, str):
        return Target.parse(value)
    raise ValueError("a command target is a string: receiver:<id>, commune:<code> or all")


# The type of a message field holding a target: parsed from and written as its wire string.
TargetField = Annotated[Target, PlainValidator(_validate), PlainSerializer(str, return_type=str),
                        WithJsonSchema({"type": "string", "examples": ["receiver:tra-mai-1-1", "commune:tra-mai",
                                                                       "all"]})]
