"""Enrolment over HTTP, `POST {controller}/api/v1/enrol`: a new Raspberry Pi trades the one-time code the
operator gave its installer for its own credentials and the controller's public key.

- `EnrolRequest`: what the Pi sends.
- `EnrolAnswer`: what it gets back — the values of its `agent.toml` (receivers/agent/config.py), and
  warnings for the installer. The controller answers with it and the agent validates with it, so the two
  cannot drift. Unknown fields are ignored, so a newer controller can add some.
- `key_fingerprint(public_b64)`: 80 bits of the SHA-256 of the controller's raw public key, as 16
  characters of Crockford's base32 in groups of four (read aloud without confusion).
- `split_code(code)`: an enrolment code as staff get it is 32 characters: the 16 of the one-time secret,
  then the 16 of the fingerprint of the key the controller signs with. The installer types one thing; the
  agent checks the key it is handed against the fingerprint it was told, so a man in the middle (a false
  controller, a hijacked DNS name or Wi-Fi) cannot give a receiver a key of his own: he would need an
  Ed25519 key whose SHA-256 agrees in 80 bits, 2^80 tries.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pydantic import BaseModel, Field

ENROL_PATH = "/api/v1/enrol"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base32: 5 bits a character, no I L O U
SECRET_CHARS = 16  # the one-time secret: 80 random bits
FINGERPRINT_CHARS = 16  # the key's fingerprint: 80 bits
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def _base32(data: bytes, chars: int) -> str:
    n = int.from_bytes(data, "big") >> (len(data) * 8 - chars * 5)
    return "".join(ALPHABET[(n >> (5 * (chars - 1 - i))) & 31] for i in range(chars))


def group(raw: str) -> str:
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def key_fingerprint(public_b64: str) -> str:
    """The fingerprint of a controller's public key (base64 of the raw 32 bytes), e.g. `3F7K-…` (16 chars)."""
    raw = base64.b64decode(public_b64, validate=True)
    return group(_base32(hashlib.sha256(raw).digest()[:10], FINGERPRINT_CHARS))


def canonical(code: str) -> str:
    """A code as typed, without spaces and dashes, upper case, O/I/L read as 0/1/1."""
    return "".join(code.split()).replace("-", "").upper().translate(_READ_AS)


def split_code(code: str) -> tuple[str, str | None] | None:
    """(secret, key fingerprint) of a code as typed, both grouped; the fingerprint is None for a bare
    16-character secret. None when it cannot be a code."""
    raw = canonical(code)
    if len(raw) not in (SECRET_CHARS, SECRET_CHARS + FINGERPRINT_CHARS) or any(c not in ALPHABET for c in raw):
        return None
    return group(raw[:SECRET_CHARS]), group(raw[SECRET_CHARS:]) if len(raw) > SECRET_CHARS else None


class EnrolRequest(BaseModel):
    code: str = Field(max_length=64, description="the one-time code, e.g. 7KQ2-M9XD-4HTB-N3PW-3F7K-Q2MX-9RTA-"
                                                 "B4ND: the secret, then the fingerprint of the controller's "
                                                 "key (case, spaces and dashes do not matter)")


class EnrolAnswer(BaseModel):
    """The values of the receiver's `agent.toml`, and what its installer should know."""

    receiver_id: str
    commune: str
    mqtt_url: str
    username: str
    password: str
    base: str
    controller_public_key: str
    controller_url: str
    warnings: list[str] = Field(default_factory=list,
                                description="problems the receiver's installer should know about")

    def config_values(self) -> dict[str, Any]:
        """What goes into `agent.toml` (everything but the warnings)."""
        return self.model_dump(exclude={"warnings"})
