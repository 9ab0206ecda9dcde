"""Mosquitto's `$7$` password hash, made in Python (the e2e tests prove Mosquitto accepts it)."""

from __future__ import annotations

from controller.broker.passwords import hash_password, verify_password

# Made by `mosquitto_passwd -b -c pw alice s3cret` (Mosquitto 2.0.11).
MOSQUITTO_MADE = ("$7$101$6C/DPeMSVBF+sIN8$ro1RyGpBvRjC7M3pWltu5ETcXmsQDWkYyzlu11A9zQVHGtd5N1AsGE+ZU5rAh2Kyzrud0MF0TLg"
                  "IvAU877gTTA==")


def test_hash_round_trip_and_salt() -> None:
    h = hash_password("mật khẩu")
    assert h.startswith("$7$101$") and verify_password("mật khẩu", h)
    assert not verify_password("mat khau", h)
    assert hash_password("x") != hash_password("x")


def test_reads_mosquittos_own_hashes() -> None:
    assert verify_password("s3cret", MOSQUITTO_MADE)
    assert not verify_password("s3cret!", MOSQUITTO_MADE)


def test_garbage_hash_is_just_a_mismatch() -> None:
    for bad in ("", "$6$abc$def", "$7$x$y$z", "plain"):
        assert not verify_password("x", bad)
