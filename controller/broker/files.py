"""Broker configuration, rendered from one description of who may do what.

`Account` lists a user's password hash and the topic filters it may publish and subscribe to; `accounts()`
derives them from the receivers (each receiver: publish under its own `receivers/{rid}/…`, read its own,
its commune's and the all-receivers commands) plus the controller. `write_mosquitto()` and `write_amqtt()`
turn the same accounts into each broker's files, so the two brokers enforce the same rules: the same
topic rules, the client id bound to the account (Mosquitto's `use_username_as_clientid`; the embedded broker
does the same), and the same size limit on messages (`MAX_PAYLOAD`).

`write_file` writes every file here, and the controller's secrets (`controller.provision.write_private`):
a fresh temporary name opened `O_EXCL|O_NOFOLLOW` with its final mode, then renamed over the target, so no
other user can read it at any moment and a symlink planted at either name is never followed.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from receivers.protocol import INLINE_AUDIO_MAX, Topics
from receivers.protocol.topics import RECEIVER_LEAVES

# The largest payload either broker accepts. The largest legitimate message is a `play` with 256 KiB of inline
# audio (about 350 KB of base64 in its signed envelope); receivers' reports are a few hundred bytes. Both
# brokers have one limit for every account.
MAX_PAYLOAD = 2 * INLINE_AUDIO_MAX
# Mosquitto's limit on a whole packet (checked before the packet is read into memory; the client is
# disconnected): the payload plus room for the topic and headers.
MAX_PACKET = MAX_PAYLOAD + 4096


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


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically (temporary file, fsync, rename), with `mode` from the first byte.

    `O_EXCL|O_NOFOLLOW` on a fresh name: a file or symlink already there is an error, not a target. The rename
    replaces a symlink at `path` itself rather than writing through it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have taken bits away; never more than `mode`
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write(path: Path, text: str) -> None:
    write_file(path, text.encode(), 0o640)  # group: Mosquitto's, when started as root


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
        # The client id is the user name, whatever the client sends: nobody can take over another account's
        # session (a receiver the controller's, or another receiver's). One account per controller process.
        "use_username_as_clientid true",
        f"message_size_limit {MAX_PAYLOAD}",  # larger messages are acknowledged and dropped
        f"max_packet_size {MAX_PACKET}",  # larger packets end the connection before they are read
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
    """Write the embedded broker's config (JSON is valid YAML), its topic rules (`acl.json`, re-read when they
    change) and the shared passwd file."""
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "passwd", "".join(f"{a.username}:{a.password_hash}\n" for a in accounts))
    rules = {"publish": {a.username: a.publish for a in accounts},
             "subscribe": {a.username: a.subscribe for a in accounts}}
    _write(directory / "acl.json", json.dumps(rules, indent=1))
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{bind}:{port}", "max_connections": 0}},
        "plugins": {
            "controller.broker.amqtt_auth.MosquittoPasswordFile": {"password_file": str(directory / "passwd")},
            "controller.broker.amqtt_acl.AccountAcl": {"acl_file": str(directory / "acl.json")},
        },
        # Read by `embedded.serve`, not by amqtt; the client id rule needs no setting there (always on).
        "truyenthanh": {"max_packet_size": MAX_PAYLOAD},
    }
    path = directory / "amqtt.yaml"
    _write(path, json.dumps(config, indent=1))
    return path
