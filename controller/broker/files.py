"""Broker configuration, rendered from one description of who may do what.

`Account` lists a user's password hash and the topic filters it may publish and subscribe to; `accounts()`
derives them from the receivers (each receiver: publish under its own `receivers/{rid}/…`, read its own,
its commune's and the all-receivers commands) plus the controller. `write_mosquitto()` and `write_amqtt()`
turn the same accounts into each broker's files, so the two brokers enforce the same rules.
"""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import dataclass, field
from pathlib import Path

from receivers.protocol import Topics
from receivers.protocol.topics import RECEIVER_LEAVES


@dataclass
class Account:
    username: str
    password_hash: str
    publish: list[str] = field(default_factory=list)
    subscribe: list[str] = field(default_factory=list)


def controller_account(topics: Topics, username: str, password_hash: str) -> Account:
    everything = f"{topics.base}/#"
    return Account(username, password_hash, [everything], [everything])


def receiver_account(topics: Topics, rid: str, commune: str, password_hash: str) -> Account:
    return Account(
        rid, password_hash,
        publish=[topics.receiver(rid, leaf) for leaf in RECEIVER_LEAVES],
        subscribe=topics.agent_filters(rid, commune),
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o640)
    os.replace(tmp, path)


def _readable_by_mosquitto(directory: Path) -> None:
    """Started as root, Mosquitto drops to its own user: give that user the group of our files."""
    if os.geteuid() != 0:
        return
    try:
        gid = pwd.getpwnam("mosquitto").pw_gid
    except KeyError:
        return
    os.chown(directory, 0, gid)
    os.chmod(directory, 0o770)  # Mosquitto writes its persistence file here
    for p in directory.iterdir():
        os.chown(p, 0, gid)


def write_mosquitto(directory: Path, accounts: list[Account], *, port: int, bind: str = "127.0.0.1",
                    persistence: bool = False) -> Path:
    """Write passwd, acl and mosquitto.conf into `directory`; return the conf's path."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "passwd", "".join(f"{a.username}:{a.password_hash}\n" for a in accounts))
    lines = []
    for a in accounts:
        lines.append(f"user {a.username}")
        lines += [f"topic write {t}" for t in a.publish]
        lines += [f"topic read {t}" for t in a.subscribe]
        lines.append("")
    _write(directory / "acl", "\n".join(lines))
    conf = [
        "# Written by truyenthanh; edits are overwritten at the next provisioning.",
        "per_listener_settings false",
        f"listener {port} {bind}",
        "allow_anonymous false",
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        "set_tcp_nodelay true",  # small commands and acks go out at once, not after Nagle's delay
        # Room for every receiver's ack to one all-receivers command while the controller is busy or away.
        "max_queued_messages 100000",
        f"persistence {'true' if persistence else 'false'}",
        f"persistence_location {directory}/",
        # Mosquitto saves its in-memory state every autosave_interval seconds (default 1800): killed hard,
        # it loses every message queued since the last save. Each second bounds that window to ~1 s.
        "autosave_interval 1",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    _write(directory / "mosquitto.conf", "\n".join(conf) + "\n")
    _readable_by_mosquitto(directory)
    return directory / "mosquitto.conf"


def write_amqtt(directory: Path, accounts: list[Account], *, port: int, bind: str = "127.0.0.1") -> Path:
    """Write the embedded broker's config (JSON is valid YAML) and the shared passwd file."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "passwd", "".join(f"{a.username}:{a.password_hash}\n" for a in accounts))
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}", "max_connections": 0}},
        "plugins": {
            "controller.broker.amqtt_auth.MosquittoPasswordFile": {"password_file": str(directory / "passwd")},
            "amqtt.plugins.topic_checking.TopicAccessControlListPlugin": {
                "acl": {a.username: a.subscribe for a in accounts},
                "publish_acl": {a.username: a.publish for a in accounts},
            },
        },
    }
    path = directory / "amqtt.yaml"
    _write(path, json.dumps(config, indent=1))
    return path
