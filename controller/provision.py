"""Keys and credentials the controller creates and hands out.

- `load_signing_key`: the controller's Ed25519 key; a missing one is created only when asked
  (`create=True`: the demo, `truyenthanh serve --create-key`, `truyenthanh provision`), else
  `MissingSigningKey` — a silently made new key would make every receiver refuse every command.
  `ensure_signing_key` is `load_signing_key(create=True)`; `current_public_key` reads the key file.
- `rotate_signing_key`: a new key, announced to every receiver by a `rotate-key` command signed with the
  old one (which they accept for the grace it states), then signed with from then on. `save_rotation`,
  `load_rotations`: each announcement kept on disk (`keys/rotations/`) until it expires.
- `issue_receiver_password`: a fresh MQTT password for a receiver (only its hash is stored).
- `demo_fleet_file`: the demo's credentials for every receiver, kept in `var/fleet.json` (mode 0600) so
  a restarted demo reuses them.
- `broker_accounts` + `write_broker_files`: the broker's users and ACLs, from the database.
"""

from __future__ import annotations

import base64
import dataclasses
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
    """`data` in a new private file beside `path` (`….<random>.next.pem`: two at once never share it), to be
    moved onto `path`."""
    staged = path.with_name(f"{path.stem}.{secrets.token_hex(6)}.next{path.suffix}")
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


def _fsync_dir(directory: Path) -> None:
    """Make the renames and links in `directory` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclasses.dataclass(frozen=True)
class Rotation:
    """A signed `rotate-key` kept on disk (`keys/rotations/`) until it expires, to be sent again to receivers
    that missed it — after a controller restart too."""

    command_id: str
    public_key: str
    expires_at: dt.datetime
    payload: bytes
    path: Path


def _rotations_dir(settings: Settings) -> Path:
    return settings.key_file.parent / "rotations"


def save_rotation(settings: Settings, command: RotateKey, payload: bytes) -> Rotation:
    directory = _rotations_dir(settings)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{command.issued_at:%Y%m%dT%H%M%S%fZ}-{command.command_id}.json"
    doc = {"command_id": str(command.command_id), "public_key": command.public_key,
           "expires_at": command.expires_at.isoformat(), "payload": base64.b64encode(payload).decode()}
    write_private(path, json.dumps(doc).encode())
    _fsync_dir(directory)
    return Rotation(str(command.command_id), command.public_key, command.expires_at, payload, path)


def load_rotations(settings: Settings, current_key: str, now: dt.datetime | None = None) -> list[Rotation]:
    """The unexpired rotations, oldest first. Expired ones are deleted; so is a last one whose key the
    controller does not sign with (a crash between recording it and installing its key: never announced)."""
    directory = _rotations_dir(settings)
    if not directory.is_dir():
        return []
    now = now or utcnow()
    found: list[Rotation] = []
    for path in sorted(directory.glob("*.json")):
        try:
            doc = json.loads(path.read_bytes())
            rotation = Rotation(str(doc["command_id"]), str(doc["public_key"]),
                                dt.datetime.fromisoformat(doc["expires_at"]), base64.b64decode(doc["payload"]), path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.error("key rotation record %s unreadable (%s): not sent again", path, e)
            continue
        if rotation.expires_at <= now:
            path.unlink(missing_ok=True)
            continue
        found.append(rotation)
    if found and found[-1].public_key != current_key:
        log.warning("key rotation %s was recorded but its key never installed: dropped", found[-1].command_id)
        found.pop().path.unlink(missing_ok=True)
    return found


async def rotate_signing_key(settings: Settings, signer: Signer, port: CommandPort, grace: dt.timedelta,
                             issued_by: str) -> tuple[RotateKey, Rotation]:
    """Make a new key, announce it to every receiver (`rotate-key`, signed with the current key, to all),
    then sign with it. Receivers accept the old key for `grace` more (commands already on their way), not
    after. Nothing changes when the announcement cannot be sent (`CommandNotSent`): the old key is put back
    on disk and kept in memory. Returns the command and its record (to send again to receivers that missed
    it). The caller makes sure no two rotations run at once.

    Before anyone is told of it, the announcement is recorded (`keys/rotations/`) and the new key installed
    (`os.replace`, directory fsynced); the old one is kept in `keys/retired/`."""
    new_pem = generate_private_key_pem()
    old_pem = settings.key_file.read_bytes()
    now = utcnow()
    command: RotateKey = RotateKey.new(Target.everyone(), max(grace, ROTATION_TTL).total_seconds(), now=now,
                                       public_key=public_key_b64(new_pem), valid_from=now, old_key_until=now + grace)
    current = settings.key_file
    payload = signer.sign(command)
    rotation = save_rotation(settings, command, payload)
    retired = current.parent / "retired" / f"{now:%Y%m%dT%H%M%S%fZ}-{key_fingerprint(signer.public_key)}.pem"
    retired.parent.mkdir(mode=0o700, exist_ok=True)
    try:
        staged = _staged(current, new_pem)
        os.link(current, retired)
        _fsync_dir(retired.parent)
        os.replace(staged, current)
        _fsync_dir(current.parent)
        await port.publish_signed(command, payload, issued_by)
    except BaseException:
        if current.read_bytes() != old_pem:
            os.replace(_staged(current, old_pem), current)
            _fsync_dir(current.parent)
        retired.unlink(missing_ok=True)
        rotation.path.unlink(missing_ok=True)
        raise
    signer.replace(new_pem)
    log.warning("signing key rotated: now %s (the old key, %s, is accepted by receivers until %s)",
                key_fingerprint(command.public_key), retired.name, command.old_key_until.isoformat())
    return command, rotation


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
