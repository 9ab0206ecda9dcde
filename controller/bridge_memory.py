"""`InMemoryBridge`: the `CommandPort` without a broker, for tests of everything that is not MQTT itself.

It is the real bridge's transport-independent half (`BridgeBase`: command records, batched ingest into the
database, listeners, request/answer matching) with delivery replaced by a list: every command is signed as
for the wire and recorded in `sent`. A `request` is answered at once by a rule (`answer`, `answers`): by
default every receiver applies every command; `None` means no answer, and the request returns None with
the command recorded as `no_answer`, without waiting out the timeout. Commands that are only sent (not
requested) are not answered: what a receiver reports is fed with `deliver`, through the same ingest as the
MQTT bridge's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias, cast

from sqlalchemy.engine import Engine

from controller.config import Settings
from receivers.protocol import Ack, AnyCommandT, Availability, Command, Signer, Target, parse_command, utcnow
from receivers.protocol.messages import AckStatus

from .bridge import BridgeBase, BrokerUnreachable, ReceiverReport

Answer: TypeAlias = AckStatus | Ack | None
# The answer to a requested command: a status for every one, or a function of the command.
AnswerRule: TypeAlias = AckStatus | None | Callable[[AnyCommandT], Answer]


@dataclass(frozen=True)
class Sent:
    """One signed payload handed to the transport."""

    kind: str
    target: Target
    payload: bytes  # exactly what would have been published: the signed envelope
    resent: bool = False  # `republish` of a payload sent before

    @property
    def command(self) -> AnyCommandT:
        """The command inside the envelope (the signature is not checked here; see `Verifier.open`)."""
        return parse_command(json.loads(self.payload)["body"].encode())

    @property
    def command_id(self) -> str:
        return str(self.command.command_id)


class InMemoryBridge(BridgeBase):
    def __init__(self, settings: Settings, engine: Engine, signer: Signer, *, answer: AnswerRule = "applied",
                 answers: dict[str, Answer] | None = None) -> None:
        """`answers` overrides `answer` by receiver id, then by command kind (e.g. {"set-volume": "rejected"},
        {"tra-nu-thon-1-01": None})."""
        super().__init__(settings, engine, signer)
        self.answer: AnswerRule = answer
        self.answers: dict[str, Answer] = dict(answers or {})
        self.sent: list[Sent] = []
        self.is_connected = True  # set False to see how callers handle a broker that is down
        self._replies: dict[str, tuple[str, Ack]] = {}

    @property
    def connected(self) -> bool:
        return self.is_connected

    def commands(self, kind: str | None = None) -> list[AnyCommandT]:
        """The commands sent (not the re-sends), oldest first; only those of `kind` when given."""
        return [s.command for s in self.sent if not s.resent and (kind is None or s.kind == kind)]

    # ------------------------------------------------------------------------------- the transport

    def _check_connected(self) -> None:
        if not self.is_connected:
            raise BrokerUnreachable("not connected (the in-memory bridge was told so)")

    async def _publish(self, target: Target, kind: str, payload: bytes) -> None:
        self._check_connected()
        sent = Sent(kind, target, payload)
        self.sent.append(sent)
        reply = self._replies.pop(sent.command_id, None)
        if reply is not None:
            self._accept(*reply)

    async def republish(self, target: Target, kind: str, payload: bytes) -> None:
        self._check_connected()
        self.sent.append(Sent(kind, target, payload, resent=True))

    async def request(self, command: Command, issued_by: str, timeout: float) -> Ack | None:
        rid = command.target.ident if command.target.scope == "receiver" else None
        ack = self._answer(cast(AnyCommandT, command), rid) if rid is not None else None
        if ack is not None and rid is not None:
            self._replies[str(command.command_id)] = (rid, ack)  # delivered by `_publish`, as the receiver would
        # No answer is coming: do not wait out `timeout` (a timeout of 0 ends at once, as a late one would).
        return await super().request(command, issued_by, timeout if ack is not None else 0.0)

    def _answer(self, command: AnyCommandT, rid: str) -> Ack | None:
        if rid in self.answers:
            rule: AnswerRule | Answer = self.answers[rid]
        elif command.kind in self.answers:
            rule = self.answers[command.kind]
        else:
            rule = self.answer
        answer = rule(command) if callable(rule) else rule
        if answer is None or isinstance(answer, Ack):
            return answer
        reason = None if answer in ("applied", "received", "fetched", "playing", "done") else "refused (in-memory rule)"
        return Ack(command_id=command.command_id, command=command.kind, status=answer, reason=reason,
                   item_id=getattr(command, "item_id", None), at=utcnow())

    # ------------------------------------------------------------------------ what receivers report

    async def deliver(self, rid: str, *reports: ReceiverReport, retain: bool = False, flush: bool = True) -> None:
        """Ingest `reports` from receiver `rid` as the MQTT bridge would, then write them (unless `flush` is
        False). Raises ValueError for a receiver the controller does not know (the MQTT bridge drops those)."""
        if rid not in self._known:
            raise ValueError(f"unknown receiver {rid!r} (known: {len(self._known)} from the database at start)")
        for report in reports:
            self._accept(rid, report, retain=retain)
        if flush:
            await self.flush()

    async def bring_online(self, *rids: str, keepalive_s: int | None = None) -> None:
        """Each receiver says it is online (as an agent does on connecting), written at once."""
        for rid in rids:
            await self.deliver(rid, Availability(status="online", at=utcnow(), keepalive_s=keepalive_s),
                               flush=False)
        await self.flush()
