"""The embedded broker's password plugin follows its password file as the controller rewrites it (at
enrolment), without a restart; a file that vanishes keeps the accounts it had."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
import pytest
from amqtt.contexts import BaseContext
from amqtt.session import Session

from controller.broker import amqtt_auth
from controller.broker.amqtt_auth import MosquittoPasswordFile
from controller.broker.embedded import OWN_SECTION, GuardedBroker
from controller.broker.files import Account, write_amqtt
from controller.broker.passwords import hash_password
from devrig.ports import free_port


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


def test_the_embedded_broker_checks_a_password_once_per_connect(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: GuardedBroker checked the login, then amqtt checked it again: two PBKDF2-SHA512 on the broker's
    # event loop for every CONNECT (a reconnecting fleet paid twice).
    checks: list[str] = []
    real = amqtt_auth.verify_password

    def counted(password: str, stored: str) -> bool:
        checks.append(password)
        return real(password, stored)

    monkeypatch.setattr(amqtt_auth, "verify_password", counted)
    port = free_port()
    config = json.loads(write_amqtt(tmp_path, [Account("rx-1", hash_password("pw"), [], ["tt/#"])], port=port)
                        .read_text())
    config.pop(OWN_SECTION)

    async def go() -> list[tuple[str, int]]:
        broker = GuardedBroker(config)
        await broker.start()
        seen = []
        try:
            for password, clean in (("pw", True), ("pw", False), ("pw", False), ("wrong", True)):
                before = len(checks)
                try:
                    async with aiomqtt.Client("127.0.0.1", port, username="rx-1", password=password,
                                              identifier="rx-1", clean_session=clean) as c:
                        await c.subscribe("tt/x", qos=1)  # connected and served
                    outcome = "connected"
                except aiomqtt.MqttError:
                    outcome = "refused"
                seen.append((outcome, len(checks) - before))
        finally:
            await broker.shutdown()
        return seen

    # A fresh session, the account's persistent session taken up twice, and a wrong password: one check each.
    assert asyncio.run(go()) == [("connected", 1), ("connected", 1), ("connected", 1), ("refused", 1)]
