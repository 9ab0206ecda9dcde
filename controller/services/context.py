"""`Ctx`: what a service call runs with — the session, the acting principal, settings and ports — and
`Page`, the one paging convention of every list (`limit` 1–1000, default 100; `offset` ≥ 0; lists answer
`{data, count}` with `count` = every match)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from controller.config import Settings
from controller.errors import Unavailable
from controller.policy import Principal

from . import audit as audit_log

if TYPE_CHECKING:
    from audio.store import MediaStore
    from controller.emergencies import Tracker
    from controller.ports import CommandPort
    from controller.scheduling import Runner

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Page:
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    def apply(self, query: Any) -> Any:
        return query.offset(self.offset).limit(self.limit)

    def slice(self, rows: list[Any]) -> list[Any]:
        return rows[self.offset:self.offset + self.limit]


@dataclass
class Ctx:
    session: Session
    who: Principal
    settings: Settings
    engine: Engine
    bridge: CommandPort | None = None
    media: MediaStore | None = None
    tracker: Tracker | None = None
    runner: Runner | None = None  # the plan runner: told when programmes change

    def audit(self, action: str, outcome: str = "ok", target: str | None = None, detail: str | None = None) -> None:
        """Write one audit row for the acting principal, in its own transaction (it stays if the caller's
        session rolls back)."""
        audit_log.record(self.engine, self.who.actor, action, outcome, target=target, detail=detail,
                         address=self.who.address)

    def plans_changed(self) -> None:
        """Programmes changed: the runner recompiles the receivers' plans soon (none runs in some tests)."""
        if self.runner is not None:
            self.runner.changed()

    def require_bridge(self) -> CommandPort:
        if self.bridge is None:
            raise Unavailable("The MQTT bridge is not running on this controller.")
        return self.bridge

    def require_media(self) -> MediaStore:
        assert self.media is not None, "a service that stores audio was called without the media store"
        return self.media
