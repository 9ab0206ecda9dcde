"""Keys and credentials the controller creates and hands out.

- `ensure_signing_key`: the controller's Ed25519 key pair, made on first start (private key mode 0600).
- `issue_receiver_password`: a fresh MQTT password for a receiver (only its hash is stored).
- `demo_fleet_file`: the demo's credentials for every receiver, kept in `var/fleet.json` (mode 0600) so
  a restarted demo reuses them.
- `broker_accounts` + `write_broker_files`: the broker's users and ACLs, from the database.
"""

from __future__ import annotations

import json
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
from receivers.protocol import Signer, Topics, generate_private_key_pem, public_key_b64


def write_private(path: Path, data: bytes) -> None:
    """A secret (key, password, credentials): mode 0600 from the first byte, no symlink followed."""
    write_file(path, data, 0o600)


def ensure_signing_key(settings: Settings) -> tuple[Signer, str]:
    """Load (or create on first start) the signing key; return the signer and the public key (base64)."""
    if not settings.key_file.exists():
        write_private(settings.key_file, generate_private_key_pem())
    pem = settings.key_file.read_bytes()
    return Signer(pem), public_key_b64(pem)


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
