"""Keys and credentials the controller creates and hands out.

- `load_signing_key`: the controller's Ed25519 key; a missing one is created only when asked
  (`create=True`: the demo, `truyenthanh serve --create-key`, `truyenthanh provision`), else
  `MissingSigningKey` — a silently made new key would make every receiver refuse every command.
  `ensure_signing_key` is `load_signing_key(create=True)`; `current_public_key` reads the key file.
- `rotate_signing_key`: a new key, announced to every receiver by a `rotate-key` command signed with the
  old one (which they accept for the grace it states), then signed with from then on.
- `issue_receiver_password`: a fresh MQTT password for a receiver (only its hash is stored).
- `demo_fleet_file`: the demo's credentials for every receiver, kept in `var/fleet.json` (mode 0600) so
  a restarted demo reuses them.
- `broker_accounts` + `write_broker_files`: the broker's users and ACLs, from the database.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
from pathlib import Path

from sqlmodel import Session, select

from controller.broker.files import (
    Account,
    controller_account,
    receiver_account,
    write_amqtt,
    write_file,
    write_mosquitto,
)
from controller.broker.passwords import hash_password, verify_password
from controller.config import Settings
from controller.db.models import Commune, Receiver
from controller.ports import CommandPort
from receivers.protocol import RotateKey, Signer, Target, Topics, generate_private_key_pem, public_key_b64, utcnow
from receivers.protocol.enrolment import key_fingerprint

log = logging.getLogger(__name__)
# How long a queued `rotate-key` stays valid for a receiver that is away (at least the grace).
ROTATION_TTL = dt.timedelta(days=7)


class MissingSigningKey(RuntimeError):
    """The controller's signing key is not where the settings say; the message says what to do."""


def write_private(path: Path, data: bytes) -> None:
    """A secret (key, password, credentials): mode 0600 from the first byte, no symlink followed."""
    write_file(path, data, 0o600)


def _staged(path: Path, data: bytes) -> Path:
    """`data` in a new private file beside `path` (`….next.pem`), to be moved onto `path`."""
    staged = path.with_name(f"{path.stem}.next{path.suffix}")
    write_private(staged, data)
    return staged


def load_signing_key(settings: Settings, *, create: bool = False) -> tuple[Signer, str]:
    """The signer and its public key (base64). A missing key is made only with `create`."""
    path = settings.key_file
    if not path.exists():
        if not create:
            raise MissingSigningKey(
                f"the controller's signing key {path} is missing. Receivers trust only the key they were "
                "enrolled with: a new one would make every receiver refuse every command ('bad signature'). "
                "Restore the file from a backup (and check TT_DATA_DIR); on a new installation, create it with "
                "`truyenthanh serve --create-key` or `truyenthanh provision`.")
        staged = _staged(path, generate_private_key_pem())
        try:
            os.link(staged, path)  # never over a key another process made meanwhile: that one is used
            log.warning("created the controller's signing key %s (fingerprint %s)", path,
                        key_fingerprint(current_public_key(settings)))
        except FileExistsError:
            pass
        finally:
            staged.unlink(missing_ok=True)
    signer = Signer(path.read_bytes())
    return signer, signer.public_key


def ensure_signing_key(settings: Settings) -> tuple[Signer, str]:
    """Load the signing key, creating it if missing (the demo, test beds, `provision`)."""
    return load_signing_key(settings, create=True)


def current_public_key(settings: Settings) -> str:
    """The public key (base64) of the key the controller signs with now."""
    return public_key_b64(settings.key_file.read_bytes())


async def rotate_signing_key(settings: Settings, signer: Signer, port: CommandPort, grace: dt.timedelta,
                             issued_by: str) -> tuple[RotateKey, bytes]:
    """Make a new key, announce it to every receiver (`rotate-key`, signed with the current key, to all),
    then sign with it. Receivers accept the old key for `grace` more (commands already on their way), not
    after. Nothing changes when the announcement cannot be sent (`CommandNotSent`). Returns the command and
    its signed payload (to send again to receivers that missed it).

    The new key is on disk before anyone is told of it; the old one is kept in `keys/retired/`."""
    new_pem = generate_private_key_pem()
    now = utcnow()
    command: RotateKey = RotateKey.new(Target.everyone(), max(grace, ROTATION_TTL).total_seconds(), now=now,
                                       public_key=public_key_b64(new_pem), valid_from=now, old_key_until=now + grace)
    current = settings.key_file
    staged = _staged(current, new_pem)
    payload = signer.sign(command)
    try:
        await port.publish_signed(command, payload, issued_by)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    retired = current.parent / "retired" / f"{now:%Y%m%dT%H%M%SZ}-{key_fingerprint(signer.public_key)}.pem"
    retired.parent.mkdir(mode=0o700, exist_ok=True)
    os.link(current, retired)
    os.replace(staged, current)
    signer.replace(new_pem)
    log.warning("signing key rotated: now %s (the old key, %s, is accepted by receivers until %s)",
                key_fingerprint(command.public_key), retired.name, command.old_key_until.isoformat())
    return command, payload


def issue_receiver_password(receiver: Receiver) -> str:
    password = secrets.token_urlsafe(24)
    receiver.mqtt_password_hash = hash_password(password)
    return password


def demo_controller_password(settings: Settings) -> str:
    path = settings.data_dir / "secrets" / "controller-mqtt-password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24).encode())
    return path.read_text().strip()


def demo_fleet_file(session: Session, path: Path, *, mqtt_url: str, base: str, public_key: str,
                    controller_url: str | None = None) -> int:
    """Write credentials for every receiver to `path`, reusing those still valid; return how many were
    (re)issued."""
    known: dict[str, str] = {}
    if path.exists():
        known = {r["receiver_id"]: r["password"] for r in json.loads(path.read_text())["receivers"]}
    issued = 0
    rows = []
    for receiver, commune in session.exec(select(Receiver, Commune).where(Receiver.commune_id == Commune.id)
                                          .order_by(Commune.id, Receiver.id)):  # type: ignore[arg-type]
        password = known.get(receiver.id)
        if not (password and receiver.mqtt_password_hash and verify_password(password, receiver.mqtt_password_hash)):
            password = issue_receiver_password(receiver)
            session.add(receiver)
            issued += 1
        rows.append({"receiver_id": receiver.id, "commune": commune.code, "username": receiver.id,
                     "password": password})
    session.commit()
    doc = {"mqtt_url": mqtt_url, "base": base, "controller_public_key": public_key, "controller_url": controller_url,
           "receivers": rows}
    write_private(path, json.dumps(doc, ensure_ascii=False, indent=1).encode())
    return issued


def broker_accounts(session: Session, topics: Topics, controller_user: str, controller_password: str) -> list[Account]:
    accounts = [controller_account(topics, controller_user, hash_password(controller_password))]
    for receiver, commune in session.exec(select(Receiver, Commune).where(Receiver.commune_id == Commune.id)):
        if receiver.mqtt_password_hash:
            accounts.append(receiver_account(topics, receiver.id, commune.code, receiver.mqtt_password_hash))
    return accounts


def write_broker_files(kind: str, directory: Path, accounts: list[Account], port: int, *,
                       bind: str = "127.0.0.1", persistence: bool = False) -> Path:
    if kind == "mosquitto":
        return write_mosquitto(directory, accounts, port=port, bind=bind, persistence=persistence)
    if kind == "amqtt":
        return write_amqtt(directory, accounts, port=port, bind=bind)
    raise ValueError(f"unknown broker kind {kind!r}: use 'mosquitto' or 'amqtt'")
