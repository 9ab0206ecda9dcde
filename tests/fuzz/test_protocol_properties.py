"""Hypothesis against every decoder of the wire protocol: what a receiver, the broker or someone with a
broker account can put in front of the controller or an agent.

Arbitrary bytes, arbitrary JSON, and valid messages mutated (a field replaced by any JSON value, a field
dropped, bytes flipped, cut short) go into `parse_receiver_message`, `parse_command`, `Verifier.open`
and `open_plan` (with the real key over arbitrary signed bodies too), `Topics.parse`, `Target.parse`, the
agent's enrolment (`request_config` over a fake transport) and the agent's `on_message`. Each either
decodes, or refuses with its documented type (`ProtocolError`, `Rejected`, `ValueError`, `EnrolFailed`)
and a reason fit for a log line: a non-empty single line of bounded length. Nothing else escapes.

Derandomized: the same examples on every run.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receivers.protocol import (
    COMMAND_KINDS,
    Ack,
    Availability,
    MediaRef,
    Ping,
    Plan,
    PlanEntry,
    Play,
    PlayEvent,
    ProtocolError,
    ReceiverState,
    Rejected,
    SetVolume,
    Signer,
    Stop,
    Target,
    Telemetry,
    Topics,
    Verifier,
    generate_private_key_pem,
    parse_command,
    parse_receiver_message,
    public_key_b64,
)
from receivers.protocol.messages import LEAF_KIND
from receivers.protocol.topics import RECEIVER_LEAVES
from tests.doubles import Message, offline_agent

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
MAX_REASON = 1000  # characters: a reason goes into a log line and, on an agent, into its ack

PEM = generate_private_key_pem()
KEY = load_pem_private_key(PEM, None)
PUBLIC = public_key_b64(PEM)
NOW = dt.datetime(2026, 11, 26, 6, 0, tzinfo=dt.UTC)
SHA = "ab" * 32


def reason_of(e: BaseException) -> str:
    """The refusal's reason, checked to be fit for a log line."""
    reason = e.reason if isinstance(e, Rejected) else str(e)
    assert isinstance(reason, str) and reason.strip(), f"{type(e).__name__} without a reason"
    assert len(reason) <= MAX_REASON, f"a reason of {len(reason)} characters: {reason[:200]}…"
    assert "\n" not in reason and "\r" not in reason, f"a reason over several lines: {reason[:300]!r}"
    return reason


# ------------------------------------------------------------------------------------- strategies

# Text as JSON can carry it: any code point, lone surrogates included (`"\ud800"` is valid JSON).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(any_text, inner, max_size=4), max_leaves=12)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: surrogates become \ud800 escapes, NaN becomes NaN


def receiver_samples() -> list[tuple[str, bytes]]:
    """(topic leaf, payload) of one valid message of each kind a receiver sends."""
    return [
        ("availability", Availability(status="online", at=NOW, agent_version="1.0", keepalive_s=30).to_bytes()),
        ("state", ReceiverState(at=NOW, volume=40, amplifier="on", playing="x-1").to_bytes()),
        ("telemetry", Telemetry(at=NOW, uptime_s=12.5, temperature_c=48.0, signal_dbm=-71).to_bytes()),
        ("ack", Ack(command_id=uuid.uuid4(), command="play", status="failed", reason="no audio", item_id="x-1",
                    at=NOW).to_bytes()),
        ("event", PlayEvent(event_id=uuid.uuid4(), seq=3, event="finished", at=NOW, item_id="x-1",
                            media_sha256=SHA, position_s=12.0).to_bytes()),
    ]


def command_samples() -> list[Any]:
    media = MediaRef(sha256=SHA, url="/media/" + SHA + ".mp3", size=1000)
    return [
        Ping.new(Target.everyone(), 60, now=NOW),
        SetVolume.new(Target.receiver("tra-mai-1-1"), 60, now=NOW, volume=40),
        Play.new(Target.commune("tra-mai"), 600, now=NOW, item_id="em-1", priority="emergency", media=media,
                 repeat=2, title="Lũ quét"),
        Stop.new(Target.receiver("tra-mai-1-1"), 60, now=NOW, priority="normal"),
    ]


def plan_sample() -> Plan:
    media = MediaRef(sha256=SHA, url="/media/" + SHA + ".mp3", size=1000)
    entry = PlanEntry(item_id="p-1-0", programme_id=1, title="Bản tin sáng", start_at=NOW, duration_s=60.0,
                      media=media)
    return Plan(receiver_id="tra-mai-1-1", version=SHA, generated_at=NOW, window_start=NOW,
                window_end=NOW + dt.timedelta(hours=48), entries=[entry])


@st.composite
def mutated_json(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` (a JSON object) with one to three fields replaced by any JSON value, dropped or added."""
    obj = json.loads(original)
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(obj)) | any_text) if obj else draw(any_text)
        if key in obj and draw(st.booleans()):
            del obj[key]
        else:
            obj[key] = draw(json_values)
    return dumps(obj)


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few bytes changed, inserted or removed, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[i]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


def signed_raw(body: str) -> bytes:
    """An envelope around `body` signed with the controller's real key, whatever `body` is."""
    sig = base64.b64encode(KEY.sign(body.encode("utf-8", "surrogatepass"))).decode()  # type: ignore[union-attr, call-arg]
    return json.dumps({"v": 1, "body": body, "sig": sig}).encode()


# ---------------------------------------------------------------------------- receiver → controller


def _check_receiver_message(payload: bytes, leaf: str) -> None:
    try:
        msg = parse_receiver_message(payload, leaf)
    except ProtocolError as e:
        reason_of(e)
        return
    assert LEAF_KIND.get(leaf) == msg.kind
    # What was accepted is stored and shown: it must survive its own round trip.
    assert parse_receiver_message(msg.to_bytes(), leaf) == msg


@FUZZ
@given(payload=st.binary(max_size=600), leaf=st.sampled_from([*RECEIVER_LEAVES, "cmd", "x"]))
def test_receiver_message_from_arbitrary_bytes(payload: bytes, leaf: str) -> None:
    _check_receiver_message(payload, leaf)


@FUZZ
@given(value=json_values, leaf=st.sampled_from(RECEIVER_LEAVES))
def test_receiver_message_from_arbitrary_json(value: Any, leaf: str) -> None:
    _check_receiver_message(dumps(value), leaf)


@FUZZ
@given(data=st.data(), sample=st.sampled_from(receiver_samples()))
def test_receiver_message_mutated(data: st.DataObject, sample: tuple[str, bytes]) -> None:
    leaf, payload = sample
    mutation = data.draw(st.sampled_from([mutated_json, mutated_bytes]))
    _check_receiver_message(data.draw(mutation(payload)), leaf)


def _numeric_fields() -> list[tuple[str, bytes, str]]:
    out = []
    for leaf, payload in receiver_samples():
        for key, value in json.loads(payload).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append((leaf, payload, key))
    return out


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize(("leaf", "payload", "key"), _numeric_fields())
def test_a_non_finite_number_is_refused(leaf: str, payload: bytes, key: str, value: str) -> None:
    """Python's JSON reads NaN and Infinity (JSON has neither); stored, a NaN became NULL in a NOT NULL column
    and failed the controller's whole batch of reports, every receiver's, at each retry."""
    obj = json.loads(payload)
    obj[key] = "__x__"
    with pytest.raises(ProtocolError) as e:
        parse_receiver_message(json.dumps(obj).replace('"__x__"', value).encode(), leaf)
    reason_of(e.value)


# ---------------------------------------------------------------------------- controller → receivers


def _check_command_body(body: bytes) -> None:
    try:
        command = parse_command(body)
    except ProtocolError as e:
        reason_of(e)
        return
    assert command.kind in COMMAND_KINDS
    assert parse_command(command.to_bytes()) == command


@FUZZ
@given(body=st.binary(max_size=600))
def test_command_from_arbitrary_bytes(body: bytes) -> None:
    _check_command_body(body)


@FUZZ
@given(data=st.data(), command=st.sampled_from(command_samples()))
def test_command_mutated(data: st.DataObject, command: Any) -> None:
    _check_command_body(data.draw(mutated_json(command.to_bytes()) | mutated_bytes(command.to_bytes())))


def _open(payload: bytes, verifier: Verifier | None = None) -> Any:
    """`Verifier.open`: the command, or None if refused (with a reason)."""
    try:
        return (verifier or Verifier(PUBLIC)).open(payload, NOW)
    except Rejected as e:
        reason_of(e)
        return None


@FUZZ
@given(payload=st.binary(max_size=600) | json_values.map(dumps))
def test_verifier_refuses_arbitrary_payloads(payload: bytes) -> None:
    assert _open(payload) is None, "an unsigned payload was accepted"


@FUZZ
@given(v=json_values, body=json_values, sig=json_values | st.binary(max_size=80).map(
    lambda b: base64.b64encode(b).decode()))
def test_verifier_refuses_arbitrary_envelopes(v: Any, body: Any, sig: Any) -> None:
    assert _open(dumps({"v": v, "body": body, "sig": sig})) is None


def test_a_huge_envelope_field_is_not_echoed_whole() -> None:
    """The agent sends the reason back in its ack: a megabyte of `v` must not become a megabyte of ack."""
    assert _open(dumps({"v": "x" * 1_000_000, "body": "", "sig": ""})) is None
    assert _open(signed_raw(json.dumps({"kind": "\n" * 100_000}))) is None


@FUZZ
@given(data=st.data(), command=st.sampled_from(command_samples()))
def test_tampered_signed_command_is_refused_or_unchanged(data: st.DataObject, command: Any) -> None:
    """Whatever is done to a signed command on the way, the agent gets the command that was signed or none."""
    signed = Signer(PEM).sign(command)
    opened = _open(data.draw(mutated_json(signed) | mutated_bytes(signed)))
    assert opened is None or opened == command


@FUZZ
@given(body=any_text | json_values.map(json.dumps))
def test_signed_garbage_is_refused_with_a_reason(body: str) -> None:
    """A body the real key signed but that is no command (a controller bug, a signed plan replayed as a
    command): refused, not raised."""
    opened = _open(signed_raw(body))
    assert opened is None or opened.kind in COMMAND_KINDS


@FUZZ
@given(data=st.data(), command=st.sampled_from(command_samples()))
def test_signed_mutated_command_is_refused_or_valid(data: st.DataObject, command: Any) -> None:
    body = data.draw(mutated_json(command.to_bytes())).decode()
    opened = _open(signed_raw(body))
    assert opened is None or opened.kind in COMMAND_KINDS


def _open_plan(payload: bytes) -> Plan | None:
    try:
        return Verifier(PUBLIC).open_plan(payload)
    except Rejected as e:
        reason_of(e)
        return None


@FUZZ
@given(data=st.data())
def test_plan_from_arbitrary_or_mutated_payloads(data: st.DataObject) -> None:
    plan = plan_sample()
    signed = Signer(PEM).sign(plan)
    payload = data.draw(st.one_of(
        st.binary(max_size=400), json_values.map(dumps),
        mutated_json(signed), mutated_bytes(signed),
        mutated_json(plan.to_bytes()).map(lambda b: signed_raw(b.decode())),
        json_values.map(lambda v: signed_raw(json.dumps(v)))))
    opened = _open_plan(payload)
    if opened is not None and payload in (signed,):
        assert opened == plan


def test_tampered_plan_is_never_another_plan() -> None:
    """The plan's own check, over one tampering that keeps the JSON valid: a changed entry is refused."""
    plan = plan_sample()
    env = json.loads(Signer(PEM).sign(plan))
    env["body"] = env["body"].replace("p-1-0", "p-1-9")
    with pytest.raises(Rejected, match="bad signature"):
        Verifier(PUBLIC).open_plan(json.dumps(env).encode())


# ------------------------------------------------------------------------------------ names on the wire


@FUZZ
@given(topic=any_text | st.lists(any_text | st.sampled_from(
    ["truyenthanh", "receivers", "communes", "all", "cmd", "controller", "availability", "ack", "tra-mai",
     "+", "#", ""]), max_size=6).map("/".join))
def test_topic_parse_never_raises(topic: str) -> None:
    info = Topics().parse(topic)
    if info is not None:
        assert info.scope in ("controller", "receiver", "commune", "all")
        if info.leaf == "cmd":
            assert info.command is not None and "/" not in info.command and "+" not in info.command


@FUZZ
@given(rid=st.from_regex(r"\A[a-z0-9][a-z0-9-]{0,62}\Z"), leaf=st.sampled_from(RECEIVER_LEAVES),
       name=st.sampled_from(COMMAND_KINDS))
def test_topics_round_trip(rid: str, leaf: Any, name: str) -> None:
    topics = Topics()
    assert Topics().parse(topics.receiver(rid, leaf)) is not None
    info = topics.parse(topics.receiver_cmd(rid, name))
    assert info is not None and (info.ident, info.command) == (rid, name)
    info = topics.parse(topics.commune_cmd(rid, name))
    assert info is not None and (info.scope, info.ident) == ("commune", rid)


@FUZZ
@given(text=any_text | st.tuples(st.sampled_from(["receiver", "commune", "all", ""]), any_text).map(":".join))
def test_target_parse_refuses_with_a_reason(text: str) -> None:
    try:
        target = Target.parse(text)
    except ValueError as e:
        reason_of(e)
        return
    assert str(target) == text
    assert Target.parse(str(target)) == target


# ------------------------------------------------------------------------------------ enrolment answer


def _enrol_with(status: int, content: bytes, tmp_path: Path) -> Any:
    from receivers.agent.enroll import EnrolFailed, render_config, request_config
    from receivers.protocol.enrolment import key_fingerprint

    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=content))
    code = "7KQ2-M9XD-4HTB-N3PW-" + key_fingerprint(PUBLIC)
    try:
        answer = request_config("http://127.0.0.1:8080", code, tmp_path, transport=transport)
    except EnrolFailed as e:
        # For the installer at a terminal, so it may span lines (a validation error lists each field).
        assert str(e).strip() and len(str(e)) <= 5000, str(e)[:300]
        return None
    # What the agent accepted is written as agent.toml: it must read back as the same values.
    text = render_config(answer, tmp_path, "http://127.0.0.1:8080", NOW).decode()
    values = tomllib.loads(text)
    for key, value in answer.config_values().items():
        assert values[key] == value, key
    return answer


def enrol_answer() -> dict[str, Any]:
    return {"receiver_id": "tra-mai-1-1", "commune": "tra-mai", "mqtt_url": "mqtt://127.0.0.1:1883",
            "username": "tra-mai-1-1", "password": "pw-0123456789abcdef", "base": "truyenthanh",
            "controller_public_key": PUBLIC, "controller_url": "http://127.0.0.1:8080", "warnings": []}


@FUZZ
@given(data=st.data())
def test_enrolment_answer_is_refused_with_a_reason_or_usable(data: st.DataObject, tmp_path: Path) -> None:
    valid = json.dumps(enrol_answer()).encode()
    status = data.draw(st.sampled_from([200, 200, 200, 400, 403, 422, 500, 503]))
    content = data.draw(st.one_of(st.binary(max_size=300), json_values.map(dumps), mutated_json(valid),
                                  mutated_bytes(valid)))
    _enrol_with(status, content, tmp_path)


def test_the_valid_enrolment_answer_is_accepted(tmp_path: Path) -> None:
    """The mutations start from an answer the agent takes (else they would only test refusals)."""
    assert _enrol_with(200, json.dumps(enrol_answer()).encode(), tmp_path) is not None


# ------------------------------------------------------------------------------------ the agent itself


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real agent (simulated hardware, its state on disk) that is never connected: what it publishes is
    recorded instead."""
    from receivers.agent import AgentSettings

    settings = AgentSettings(receiver_id="tra-mai-1-1", commune="tra-mai", mqtt_url="mqtt://127.0.0.1:1",
                             username="tra-mai-1-1", password="pw", controller_public_key=PUBLIC,
                             controller_url="http://127.0.0.1:1", state_dir=tmp_path_factory.mktemp("agent"))
    with offline_agent(settings, clock=lambda: NOW) as a:
        yield a


@FUZZ
@given(data=st.data())
def test_agent_on_message_rejects_with_an_ack(agent: Any, data: st.DataObject) -> None:
    """Anything on one of the agent's command topics: no exception, and a rejection is acknowledged with
    its reason (or, for a command that is still the signed one, handled as usual)."""
    topics = Topics()
    kind = data.draw(st.sampled_from(["ping", "set-volume", "stop", "play"]))
    command = data.draw(st.sampled_from(command_samples()))
    signed = Signer(PEM).sign(command)
    payload = data.draw(st.one_of(st.binary(max_size=300), json_values.map(dumps), mutated_json(signed),
                                  mutated_bytes(signed), any_text.map(signed_raw)))
    agent.published.clear()
    asyncio.run(agent.on_message(Message(topics.receiver_cmd("tra-mai-1-1", kind), payload)))
    acks = [parse_receiver_message(p, "ack") for t, p in agent.published if t.endswith("/ack")]
    for ack in acks:
        assert isinstance(ack, Ack)
        if ack.status == "rejected":
            assert ack.reason and ack.reason.strip()
