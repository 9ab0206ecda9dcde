"""Command signing: Ed25519 by the controller over the exact bytes of the command's JSON.

On the wire a signed command is an envelope `{"v": 1, "body": "<command JSON text>", "sig": "<base64>"}`.
The body travels as a string so that the signed bytes are exactly the bytes verified: no re-serialisation
between signer and verifier. MQTT 3.1.1 has no user properties, so the signature lives in the payload.

- `Signer`: holds the private key; `sign(message) -> bytes` (a command, or a receiver's plan).
- `Verifier`: holds the public key; `open(payload, now) -> command` and `open_plan(payload) -> Plan`,
  raising `Rejected(reason)`.
- Key helpers: `generate_private_key_pem`, `public_key_b64` (the form agents are configured with).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .messages import AnyCommandT, Message, Plan, ProtocolError, parse_command

ENVELOPE_VERSION = 1
# Clock tolerance: a command issued up to this far in the receiver's future is still accepted.
MAX_FUTURE_SKEW = dt.timedelta(seconds=30)


class Rejected(Exception):
    """A command the agent must not act on; `reason` goes into the log and the ack."""

    def __init__(self, reason: str, command: AnyCommandT | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command


def generate_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_key_b64(private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class Signer:
    def __init__(self, private_pem: bytes) -> None:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the controller's signing key must be Ed25519")
        self._key = key

    def sign(self, message: Message) -> bytes:
        body = message.to_bytes()
        sig = base64.b64encode(self._key.sign(body)).decode()
        return json.dumps({"v": ENVELOPE_VERSION, "body": body.decode(), "sig": sig},
                          separators=(",", ":")).encode()


class Verifier:
    def __init__(self, public_b64: str) -> None:
        try:
            self._key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        except (ValueError, binascii.Error) as e:
            raise ValueError(f"not an Ed25519 public key in base64: {e}") from None

    def open(self, payload: bytes, now: dt.datetime) -> AnyCommandT:
        """Check envelope, signature and validity window; return the command. Replays are the caller's
        job (it owns the persistent memory of seen ids)."""
        body = self._signed_body(payload)
        try:
            command = parse_command(body)
        except ProtocolError as e:
            raise Rejected(f"signed but unreadable: {e}") from None
        if command.expires_at <= now:
            raise Rejected(f"expired at {command.expires_at.isoformat()}", command)
        if command.issued_at > now + MAX_FUTURE_SKEW:
            raise Rejected(f"issued in the future ({command.issued_at.isoformat()})", command)
        return command

    def open_plan(self, payload: bytes) -> Plan:
        """Check envelope and signature of a plan document; return the plan. Whether it is the caller's and
        newer than the one it has is the caller's to check."""
        body = self._signed_body(payload)
        try:
            return Plan.model_validate_json(body)
        except ValueError as e:
            raise Rejected(f"signed but not a plan: {str(e).splitlines()[0]}") from None

    def _signed_body(self, payload: bytes) -> bytes:
        try:
            envelope = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise Rejected("not JSON") from None
        if not isinstance(envelope, dict) or "body" not in envelope:
            raise Rejected("unsigned: no signed envelope")
        if envelope.get("v") != ENVELOPE_VERSION:
            raise Rejected(f"unsupported envelope version {envelope.get('v')!r}")
        body, sig = envelope.get("body"), envelope.get("sig")
        if not isinstance(body, str):
            raise Rejected("malformed envelope: body is not a string")
        if not isinstance(sig, str) or not sig:
            raise Rejected("unsigned: no signature")
        try:
            self._key.verify(base64.b64decode(sig, validate=True), body.encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise Rejected("bad signature") from None
        return body.encode()
