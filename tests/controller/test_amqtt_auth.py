"""The embedded broker's password plugin follows its password file as the controller rewrites it (at
enrolment), without a restart; a file that vanishes keeps the accounts it had."""

from __future__ import annotations

import asyncio
from pathlib import Path

from amqtt.contexts import BaseContext
from amqtt.session import Session

from controller.broker.amqtt_auth import MosquittoPasswordFile
from controller.broker.passwords import hash_password


def write(path: Path, users: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")  # as the controller writes it: a new file moved into place
    tmp.write_text("".join(f"{u}:{hash_password(p)}\n" for u, p in users.items()))
    tmp.replace(path)


def login(plugin: MosquittoPasswordFile, username: str, password: str) -> bool | None:
    session = Session()
    session.username, session.password = username, password
    return asyncio.run(plugin.authenticate(session=session))


def test_a_rewritten_password_file_is_used_at_the_next_login(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    write(passwd, {"controller": "c-pw", "rx-1": "old"})
    context = BaseContext()
    context.config = MosquittoPasswordFile.Config(password_file=str(passwd))  # type: ignore[assignment]
    plugin = MosquittoPasswordFile(context)
    assert login(plugin, "rx-1", "old") is True
    assert login(plugin, "rx-2", "new") is False

    write(passwd, {"controller": "c-pw", "rx-1": "new", "rx-2": "new"})
    assert login(plugin, "rx-1", "old") is False
    assert login(plugin, "rx-1", "new") is True
    assert login(plugin, "rx-2", "new") is True

    passwd.unlink()
    assert login(plugin, "rx-1", "new") is True
    assert login(plugin, "controller", "wrong") is False
