"""Enrolment: a new Raspberry Pi fetches its own credentials with a one-time code, so nobody has to copy a
broker password by hand.

- `new_code`, `normalise_code`, `hash_code`: the secret is 16 characters of Crockford's base32 (no I, L, O
  or U, so nothing is misread aloud or on paper), shown as four groups of four: 80 random bits. Reading it
  back, case, spaces and dashes do not matter, and O/I/L count as 0/1/1.
- `create_code`: store a new code's hash for a receiver, replacing its older unused codes; return the code
  staff hand out: the secret followed by the fingerprint of the controller's signing key
  (`receivers.protocol.enrolment.split_code`), which the agent checks the key it receives against.
- `enrol`: use a code once: check it, mark it used, issue the receiver a new MQTT password, rewrite the
  broker's files and reload the broker; return the agent's config values, or `Refused` with the reason.
- `refresh_broker_files`, `reload_broker`: rewrite the password and ACL files in `TT_BROKER_DIR` (keeping
  the broker's listener as `provision` wrote it), then run `TT_BROKER_RELOAD`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import secrets
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import update
from sqlmodel import Session, col

from controller.config import Settings
from controller.db.enrolment import EnrolmentCode
from controller.db.models import Commune, Receiver, utcnow
from controller.provision import broker_accounts, issue_receiver_password, write_broker_files
from receivers.protocol import Topics
from receivers.protocol.enrolment import EnrolAnswer, key_fingerprint, split_code

log = logging.getLogger(__name__)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: 5 bits a character
CODE_CHARS = 16

# One enrolment at a time in this process: the broker files are written from the database, and two
# enrolments interleaving could each write a file that lacks the other's new password.
_lock = threading.Lock()


class Refused(Exception):
    """An enrolment code that does not work; the message says why, for the person at the receiver."""

    def __init__(self, message: str, receiver_id: str | None = None) -> None:
        super().__init__(message)
        self.receiver_id = receiver_id


class BrokerFilesError(RuntimeError):
    pass


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS))
    return "-".join(raw[i:i + 4] for i in range(0, CODE_CHARS, 4))


def normalise_code(code: str) -> str | None:
    """The secret's canonical form (16 characters, no dashes), or None if it cannot be a code. A code with
    the key's fingerprint after the secret gives its secret."""
    parts = split_code(code)
    return parts[0].replace("-", "") if parts else None


def hash_code(code: str) -> str:
    canonical = normalise_code(code)
    if canonical is None:
        raise ValueError("not an enrolment code")
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_code(session: Session, receiver_id: str, created_by: str, ttl_h: float,
                public_key: str) -> tuple[str, dt.datetime]:
    """A new code for `receiver_id`, valid for `ttl_h` hours, ending with the fingerprint of `public_key` (the
    controller's); older unused codes of that receiver stop working (an operator who makes a new code has
    lost or distrusts the old one)."""
    now = utcnow()
    session.exec(update(EnrolmentCode)
                 .where(col(EnrolmentCode.receiver_id) == receiver_id, col(EnrolmentCode.used_at).is_(None),
                        col(EnrolmentCode.expires_at) > now)
                 .values(expires_at=now))
    code = new_code()
    expires_at = now + dt.timedelta(hours=ttl_h)
    session.add(EnrolmentCode(code_hash=hash_code(code), receiver_id=receiver_id, created_by=created_by,
                              created_at=now, expires_at=expires_at))
    session.commit()
    return f"{code}-{key_fingerprint(public_key)}", expires_at


@dataclass
class Enrolment:
    config: EnrolAnswer
    created_by: str


def _claim(session: Session, code: str, public_key: str) -> EnrolmentCode:
    """Mark the code used, or raise `Refused`. The lookup is by hash, so its timing says nothing about
    which codes exist; the conditional UPDATE makes a code usable once even by simultaneous requests.
    A code whose fingerprint is not that of the key the controller signs with now (made before a key
    rotation) is refused unused: the agent would refuse the answer anyway, after the code was spent."""
    parts = split_code(code)
    if parts is None:
        raise Refused(f"That is not an enrolment code: expected {2 * CODE_CHARS} letters and digits such as "
                      "7KQ2-M9XD-4HTB-N3PW-3F7K-Q2MX-9RTA-B4ND. Check it with the operator.")
    canonical = parts[0].replace("-", "")
    if parts[1] is not None and parts[1] != key_fingerprint(public_key):
        raise Refused("This enrolment code was made for another signing key of the controller (its key was "
                      "changed since, or the code was mistyped). Ask the operator for a new one.")
    row = session.get(EnrolmentCode, hash_code(canonical))
    now = utcnow()
    if row is None:
        raise Refused("Unknown enrolment code. Check that it was typed correctly, or ask the operator for a new "
                      "one.")
    if row.used_at is not None:
        raise Refused(f"This enrolment code was already used ({row.used_at:%Y-%m-%d %H:%M} UTC). Ask the "
                      "operator for a new one.", row.receiver_id)
    if row.expires_at <= now:
        raise Refused(f"This enrolment code expired at {row.expires_at:%Y-%m-%d %H:%M} UTC, or was replaced by "
                      "a newer one. Ask the operator for a new one.", row.receiver_id)
    claimed = session.exec(update(EnrolmentCode)
                           .where(col(EnrolmentCode.code_hash) == row.code_hash,
                                  col(EnrolmentCode.used_at).is_(None))
                           .values(used_at=now))
    if claimed.rowcount != 1:
        raise Refused("This enrolment code was just used by another request. Ask the operator for a new one.",
                      row.receiver_id)
    return row


def enrol(session: Session, settings: Settings, public_key: str, code: str) -> Enrolment:
    """Use `code` once; raise `Refused` (nothing changed) or return the receiver's config.

    The broker's files are written before the database commits: if they cannot be written, the code
    stays unused and the receiver's old password keeps working."""
    agent_mqtt_url = receiver_broker_url(settings)  # fails (ValueError) before anything changes
    with _lock:
        row = _claim(session, code, public_key)
        receiver = session.get(Receiver, row.receiver_id)
        assert receiver is not None  # foreign key
        commune = session.get(Commune, receiver.commune_id)
        assert commune is not None
        password = issue_receiver_password(receiver)
        session.add(receiver)
        session.flush()
        warnings: list[str] = []
        if settings.broker_dir is not None:
            refresh_broker_files(session, settings, settings.broker_dir)
        else:
            warnings.append("The controller does not manage the broker's files (TT_BROKER_DIR is unset): the "
                            "broker accepts the new password only after the operator runs `truyenthanh "
                            "provision` and reloads it.")
        session.commit()
        created_by = row.created_by
        config = EnrolAnswer(
            receiver_id=receiver.id, commune=commune.code, mqtt_url=agent_mqtt_url, username=receiver.id,
            password=password, base=settings.mqtt_base, controller_public_key=public_key,
            controller_url=settings.public_url, warnings=warnings)
    if settings.broker_dir is not None and settings.broker_reload:
        problem = reload_broker(settings.broker_reload)
        if problem:
            config.warnings.append(f"The broker could not be told to re-read its password file ({problem}); "
                                   "the new password works once the operator reloads it.")
    elif settings.broker_dir is not None and broker_kind(settings.broker_dir) == "mosquitto":
        config.warnings.append("TT_BROKER_RELOAD is unset: Mosquitto accepts the new password after the "
                               "operator reloads it (systemctl reload mosquitto).")
    return Enrolment(config, created_by)


def receiver_broker_url(settings: Settings) -> str:
    """The broker URL for receivers; refuses one that names the controller's own machine (outside the demo),
    which a Pi would never reach: better no enrolment than a receiver that cannot connect."""
    url = settings.agent_mqtt_url
    host = urlsplit(url).hostname or ""
    if not settings.receiver_mqtt_url and not settings.demo and (host == "localhost" or _loopback(host)):
        raise ValueError(f"receivers would be told to use the broker at {url}, this machine; set "
                         "TT_RECEIVER_MQTT_URL to the broker's address as the receivers reach it")
    return url


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def broker_kind(directory: Path) -> str:
    """Which broker the files in `directory` are for: `amqtt.yaml` means the embedded one."""
    return "amqtt" if (directory / "amqtt.yaml").exists() else "mosquitto"


def _listener(directory: Path, kind: str) -> tuple[int, str, bool]:
    """Port, address and persistence of the broker config `provision` wrote, so rewriting keeps them."""
    if kind == "amqtt":
        bind = json.loads((directory / "amqtt.yaml").read_text(encoding="utf-8"))["listeners"]["default"]["bind"]
        host, _, number = str(bind).rpartition(":")
        return int(number), host, False
    conf = directory / "mosquitto.conf"
    if not conf.exists():
        raise BrokerFilesError(f"{conf} is missing: run `truyenthanh provision --out {directory}` once first")
    port: int | None = None
    address: str | None = None
    persistence = False
    for line in conf.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "listener":
            port, address = int(words[1]), words[2]
        elif len(words) == 2 and words[0] == "persistence":
            persistence = words[1] == "true"
    if port is None or address is None:
        raise BrokerFilesError(f"{conf} has no 'listener PORT ADDRESS' line: was it written by `truyenthanh "
                               "provision`?")
    return port, address, persistence


def refresh_broker_files(session: Session, settings: Settings, directory: Path) -> Path:
    """Rewrite the broker's password and ACL files from the database (pending changes included)."""
    kind = broker_kind(directory)
    try:
        port, address, persistence = _listener(directory, kind)
    except (OSError, ValueError, KeyError) as e:
        raise BrokerFilesError(f"cannot read the broker config in {directory}: {e}") from e
    mqtt = settings.mqtt
    accounts = broker_accounts(session, Topics(settings.mqtt_base), mqtt.username or "controller",
                               mqtt.password or "")
    return write_broker_files(kind, directory, accounts, port, bind=address, persistence=persistence)


def reload_broker(command: str, timeout: float = 30.0) -> str | None:
    """Run the reload command; return what went wrong, or None."""
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.error("broker reload %r failed: %s", command, e)
        return str(e)
    if done.returncode != 0:
        problem = f"`{command}` exited with {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}"
        log.error("broker reload failed: %s", problem)
        return problem
    return None

