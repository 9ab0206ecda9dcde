"""Mosquitto's password hash (`$7$`: PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte key), made and checked in
Python so the controller can write Mosquitto's password file without `mosquitto_passwd`, and the embedded
broker can read the very same file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ITERATIONS = 101  # mosquitto_passwd's default


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(12)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, version, iterations, salt, key = stored.split("$")
        if version != "7":
            return False
        expected = base64.b64decode(key)
        got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)
