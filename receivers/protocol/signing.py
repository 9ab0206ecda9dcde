"""Command signing: Ed25519 by the controller over the exact bytes of the command's JSON.

On the wire a signed command is an envelope `{"v": 1, "body": "<command JSON text>", "sig": "<base64>"}`.
The body travels as a string so that the signed bytes are exactly the bytes verified: no re-serialisation
between signer and verifier. MQTT 3.1.1 has no user properties, so the signature lives in the payload.

- `Signer`: holds the private key; `sign(message) -> bytes` (a command, or a receiver's plan); `replace`
  swaps the key in place at a key rotation, so everything holding the signer signs with the new key.
- `Verifier`: holds the trusted public keys (`TrustedKey`: the current one, and a retired one until the end
  of its grace); `open(payload, now, high_water=…) -> command` and `open_plan(payload) -> Plan`, raising
  `Rejected(reason)`.
- Key helpers: `generate_private_key_pem`, `public_key_b64` (the form agents are configured with).

The high-water mark: commands are stamped with the controller's clock, so the latest `issued_at` an agent
has verified is a time it knows the controller had reached, whatever its own clock (no RTC, unauthenticated
NTP) says. A command issued more than `tolerance` before it is refused ("issued before …"), and so is one
whose expiry the mark has passed: a recorded command replayed after the receiver's clock was set back no
longer looks fresh. The tolerance covers commands issued close together and delivered out of order; inside
it, the replay memory (which keeps every id the mark has not passed) refuses a replay.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

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
        self._key = self._load(private_pem)

    @staticmethod
    def _load(private_pem: bytes) -> Ed25519PrivateKey:
        key = serialization.load_pem_private_key(private_pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the controller's signing key must be Ed25519")
        return key

    def replace(self, private_pem: bytes) -> None:
        """Sign with another key from now on (a key rotation): one object, so the bridge, the plan runner and
        the emergency service all switch at once."""
        self._key = self._load(private_pem)

    @property
    def public_key(self) -> str:
        """The public key, base64 of its raw 32 bytes."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, message: Message) -> bytes:
        body = message.to_bytes()
        sig = base64.b64encode(self._key.sign(body)).decode()
        return json.dumps({"v": ENVELOPE_VERSION, "body": body.decode(), "sig": sig},
                          separators=(",", ":")).encode()


@dataclass(frozen=True)
class TrustedKey:
    """A controller key an agent accepts. `until`: a retired key, accepted for commands verified before then
    (judged by the later of the receiver's clock and its high-water mark); None: the current key."""

    public_key: str
    until: dt.datetime | None = None


def _public(public_b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
    except (ValueError, binascii.Error) as e:
        raise ValueError(f"not an Ed25519 public key in base64: {e}") from None


class Verifier:
    def __init__(self, public_b64: str | Sequence[TrustedKey],
                 tolerance: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.tolerance = tolerance
        self.trust([TrustedKey(public_b64)] if isinstance(public_b64, str) else public_b64)

    def trust(self, keys: Sequence[TrustedKey]) -> None:
        """Replace the set of trusted keys (at a key rotation)."""
        if not keys:
            raise ValueError("no controller key to trust")
        self._keys = [(k, _public(k.public_key)) for k in keys]

    @property
    def keys(self) -> list[TrustedKey]:
        return [k for k, _ in self._keys]

    def open(self, payload: bytes, now: dt.datetime, high_water: dt.datetime | None = None) -> AnyCommandT:
        """Check envelope, signature, signing key, the high-water mark and the validity window; return the
        command. Replays are the caller's job (it owns the persistent memory of seen ids)."""
        command, _ = self.open_with_key(payload, now, high_water)
        return command

    def open_with_key(self, payload: bytes, now: dt.datetime,
                      high_water: dt.datetime | None = None) -> tuple[AnyCommandT, TrustedKey]:
        """As `open`, and which trusted key signed it."""
        body, key = self._signed_body(payload)
        try:
            command = parse_command(body)
        except ProtocolError as e:
            raise Rejected(f"signed but unreadable: {e}") from None
        latest = max(now, high_water) if high_water is not None else now
        if key.until is not None and latest >= key.until:
            raise Rejected(f"signed with a retired controller key (retired at {key.until.isoformat()})", command)
        if high_water is not None and command.issued_at < high_water - self.tolerance:
            raise Rejected(f"issued before {(high_water - self.tolerance).isoformat()}: older than the latest "
                           f"command seen ({high_water.isoformat()}), a replay whatever the clock says", command)
        if command.expires_at <= now:
            raise Rejected(f"expired at {command.expires_at.isoformat()}", command)
        if high_water is not None and command.expires_at <= high_water:
            raise Rejected(f"expired at {command.expires_at.isoformat()}, which the controller's clock had passed "
                           f"({high_water.isoformat()}): a replay whatever the clock says", command)
        if command.issued_at > now + MAX_FUTURE_SKEW:
            raise Rejected(f"issued in the future ({command.issued_at.isoformat()})", command)
        return command, key

    def open_plan(self, payload: bytes, now: dt.datetime | None = None,
                  high_water: dt.datetime | None = None) -> Plan:
        """Check envelope and signature of a plan document; return the plan. With `now` (a plan just pulled),
        a key past its grace is refused as for commands: a leaked old key must not make plans either. Without
        it (the plan the agent stored itself after checking it), any trusted key will do, so a receiver that
        restarts offline after a rotation still plays its schedule. Whether it is the caller's and newer than
        the one it has is the caller's to check."""
        body, key = self._signed_body(payload)
        if now is not None and key.until is not None:
            latest = max(now, high_water) if high_water is not None else now
            if latest >= key.until:
                raise Rejected(f"signed with a retired controller key (retired at {key.until.isoformat()})")
        try:
            return Plan.model_validate_json(body)
        except ValueError as e:
            raise Rejected(f"signed but not a plan: {str(e).splitlines()[0]}") from None

    def _signed_body(self, payload: bytes) -> tuple[bytes, TrustedKey]:
        try:
            envelope = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            raise Rejected("not JSON") from None
        if not isinstance(envelope, dict) or "body" not in envelope:
            raise Rejected("unsigned: no signed envelope")
        if envelope.get("v") != ENVELOPE_VERSION:
            raise Rejected(f"unsupported envelope version {envelope.get('v')!r:.40}")  # bounded: goes into the ack
        body, sig = envelope.get("body"), envelope.get("sig")
        if not isinstance(body, str):
            raise Rejected("malformed envelope: body is not a string")
        if not isinstance(sig, str) or not sig:
            raise Rejected("unsigned: no signature")
        try:
            signature = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            raise Rejected("bad signature") from None
        for trusted, key in self._keys:
            try:
                key.verify(signature, body.encode())
            except InvalidSignature:
                continue
            return body.encode(), trusted
        raise Rejected("bad signature")
