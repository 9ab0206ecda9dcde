"""An amqtt authentication plugin that reads Mosquitto's password file format (`$7$` hashes), so the
embedded demo broker and Mosquitto share one password file. No anonymous access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from .passwords import verify_password


class MosquittoPasswordFile(BaseAuthPlugin):
    def __init__(self, context) -> None:
        super().__init__(context)
        self._users: dict[str, str] = {}
        for line in Path(self.config.password_file).read_text(encoding="utf-8").splitlines():
            user, sep, stored = line.strip().partition(":")
            if sep and not user.startswith("#"):
                self._users[user] = stored

    async def authenticate(self, *, session: Session) -> bool | None:
        stored = self._users.get(session.username or "")
        ok = stored is not None and verify_password(session.password or "", stored)
        if not ok:
            self.context.logger.warning("refused MQTT login for %r", session.username)
        return ok

    @dataclass
    class Config:
        password_file: str = ""
