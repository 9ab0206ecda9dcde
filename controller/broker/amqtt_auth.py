"""An amqtt authentication plugin that reads Mosquitto's password file format (`$7$` hashes), so the
embedded demo broker and Mosquitto share one password file. No anonymous access.

The file is re-read when it changes (checked at each login: one `stat`), so a password issued at
enrolment works without restarting the broker, as Mosquitto's does after a SIGHUP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session

from .passwords import verify_password


def _parse(text: str) -> dict[str, str]:
    users: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, stored = line.strip().partition(":")
        if sep and not user.startswith("#"):
            users[user] = stored
    return users


class MosquittoPasswordFile(BaseAuthPlugin):
    def __init__(self, context) -> None:
        super().__init__(context)
        self._path = Path(self.config.password_file)
        self._stamp: tuple[int, int, int] | None = None
        self._users: dict[str, str] = {}
        self._load()  # a missing file at start is an error, as before

    def _load(self) -> None:
        # The controller replaces the file atomically (new inode), so inode, mtime and size together notice
        # every rewrite; reading through the same descriptor keeps stamp and contents consistent.
        with self._path.open(encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            users = _parse(f.read())
        first = self._stamp is None
        self._users, self._stamp = users, stamp
        if not first:
            self.context.logger.info("password file %s re-read: %d accounts", self._path, len(users))

    def _refresh(self) -> None:
        try:
            st = os.stat(self._path)
            if (st.st_ino, st.st_mtime_ns, st.st_size) != self._stamp:
                self._load()
        except OSError as e:  # keep the accounts we have rather than lock everybody out
            self.context.logger.warning("cannot re-read password file %s: %s", self._path, e)

    async def authenticate(self, *, session: Session) -> bool | None:
        self._refresh()
        stored = self._users.get(session.username or "")
        ok = stored is not None and verify_password(session.password or "", stored)
        if not ok:
            self.context.logger.warning("refused MQTT login for %r", session.username)
        return ok

    @dataclass
    class Config:
        password_file: str = ""
