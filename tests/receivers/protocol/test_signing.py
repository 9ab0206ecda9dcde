"""Signing and verification of commands, without a broker."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from receivers.protocol import (
    Ping,
    Rejected,
    SetVolume,
    Signer,
    Target,
    Verifier,
    generate_private_key_pem,
    public_key_b64,
)

PEM = generate_private_key_pem()
NOW = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)


def test_round_trip_keeps_every_field() -> None:
    cmd = SetVolume.new(Target.receiver("r1"), 60, now=NOW, volume=40)
    opened = Verifier(public_key_b64(PEM)).open(Signer(PEM).sign(cmd), NOW)
    assert opened == cmd


def test_signature_covers_the_exact_body() -> None:
    env = json.loads(Signer(PEM).sign(SetVolume.new(Target.receiver("r1"), 60, now=NOW, volume=40)))
    env["body"] = env["body"].replace('"volume":40', '"volume":100')
    with pytest.raises(Rejected, match="bad signature"):
        Verifier(public_key_b64(PEM)).open(json.dumps(env).encode(), NOW)
    # Re-serialising the same content differently is also a different body.
    env = json.loads(Signer(PEM).sign(Ping.new(Target.everyone(), 60, now=NOW)))
    env["body"] = json.dumps(json.loads(env["body"]), indent=2)
    with pytest.raises(Rejected, match="bad signature"):
        Verifier(public_key_b64(PEM)).open(json.dumps(env).encode(), NOW)


def test_validity_window() -> None:
    v = Verifier(public_key_b64(PEM))
    signed = Signer(PEM).sign(Ping.new(Target.everyone(), 60, now=NOW))
    assert v.open(signed, NOW + dt.timedelta(seconds=59)).kind == "ping"
    with pytest.raises(Rejected, match="expired"):
        v.open(signed, NOW + dt.timedelta(seconds=60))
    with pytest.raises(Rejected, match="future"):
        v.open(signed, NOW - dt.timedelta(minutes=5))


def test_signed_but_invalid_command_is_rejected_not_raised() -> None:
    cmd = SetVolume.new(Target.receiver("r1"), 60, now=NOW, volume=40)
    body = cmd.to_bytes().decode().replace('"volume":40', '"volume":400')
    key = load_pem_private_key(PEM, None)
    sig = base64.b64encode(key.sign(body.encode())).decode()  # type: ignore[union-attr, call-arg]
    with pytest.raises(Rejected, match="signed but unreadable: .*volume: Input should be less than or equal to 100"):
        Verifier(public_key_b64(PEM)).open(json.dumps({"v": 1, "body": body, "sig": sig}).encode(), NOW)


def test_bad_public_key_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Ed25519 public key"):
        Verifier("not-a-key")


def test_a_plan_pulled_after_its_keys_grace_is_refused_but_a_stored_one_still_loads() -> None:
    from receivers.protocol import Plan
    from receivers.protocol.signing import TrustedKey

    old_pem, new_pem = generate_private_key_pem(), generate_private_key_pem()
    until = NOW + dt.timedelta(hours=1)
    verifier = Verifier([TrustedKey(public_key_b64(old_pem), until), TrustedKey(public_key_b64(new_pem))])
    plan = Plan(receiver_id="rx-1", version="a" * 64, generated_at=NOW, window_start=NOW,
                window_end=NOW + dt.timedelta(hours=48), entries=[])
    forged = Signer(old_pem).sign(plan)  # a leaked old key, after the rotation
    assert verifier.open_plan(forged, NOW).version == plan.version  # within the grace
    with pytest.raises(Rejected, match="retired controller key"):
        verifier.open_plan(forged, until + dt.timedelta(seconds=1))
    with pytest.raises(Rejected, match="retired controller key"):  # a clock set back does not help
        verifier.open_plan(forged, NOW, high_water=until)
    assert verifier.open_plan(Signer(new_pem).sign(plan), until + dt.timedelta(days=1)).version == plan.version
    assert verifier.open_plan(forged).version == plan.version  # the agent's own stored copy
