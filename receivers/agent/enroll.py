"""Enrolment, the receiver's side: trade the operator's one-time code for this receiver's config.

- `request_config(controller, code)`: `POST {controller}/api/v1/enrol`, the answer checked against the
  protocol's `EnrolAnswer`, against `AgentSettings`, and its controller key against the fingerprint that ends
  the code (`receivers.protocol.enrolment.split_code`): a man in the middle cannot hand the receiver a key
  of his own. `EnrolFailed` says why not, in words an installer can act on; nothing is written then.
  `http://` to another machine is refused unless `allow_cleartext` (a closed private network).
- `render_config(answer, ...)`: the `agent.toml` text (TOML strings written as JSON strings, which TOML
  reads the same for the values enrolment hands out).
- `write_private(path, data)`: atomic and mode 0600 from the first byte (`store.write_atomic`: a fresh
  temporary name opened `O_EXCL|O_NOFOLLOW`, fsync, rename, fsync of the directory): the file holds the
  receiver's broker password.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
from pydantic import ValidationError

from receivers.protocol.enrolment import ENROL_PATH, EnrolAnswer, EnrolRequest, key_fingerprint, split_code
from receivers.protocol.urls import cleartext_problem

from .config import AgentSettings
from .store import write_atomic


class EnrolFailed(Exception):
    """Enrolment came to nothing; the message is for the installer."""


class BadCode(ValueError):
    """The code as typed cannot be a code (checked before anything is sent)."""


def request_config(controller: str, code: str, state_dir: Path, *, timeout: float = 30.0,
                   allow_cleartext: bool = False, transport: httpx.BaseTransport | None = None) -> EnrolAnswer:
    if not controller.startswith(("http://", "https://")):
        raise ValueError("give the controller's URL with http:// or https://")
    problem = None if allow_cleartext else cleartext_problem(controller, "the controller's URL")
    if problem:
        raise ValueError(f"{problem} (--allow-cleartext)")
    parts = split_code(code)
    if parts is None or parts[1] is None:
        raise BadCode("an enrolment code is 32 letters and digits in eight groups, e.g. 7KQ2-M9XD-4HTB-N3PW-3F7K-"
                      "Q2MX-9RTA-B4ND: the last four groups are the fingerprint of the controller's key. Copy the "
                      "whole code the operator gave you")
    fingerprint = parts[1]
    url = controller.rstrip("/") + ENROL_PATH
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            r = client.post(url, json=EnrolRequest(code=code).model_dump())
    except httpx.HTTPError as e:
        raise EnrolFailed(f"cannot reach the controller at {controller}: {e or type(e).__name__}") from None
    try:
        body = r.json()
    except ValueError:
        body = {"detail": r.text[:300]}
    if r.status_code != 200:
        detail = body.get("detail") if isinstance(body, dict) else body
        what = "refused the code" if r.status_code == 403 else f"answered {r.status_code}"
        raise EnrolFailed(f"the controller {what}: {detail}")
    try:
        answer = EnrolAnswer.model_validate(body)
        received = key_fingerprint(answer.controller_public_key)
    except (ValidationError, ValueError) as e:
        raise EnrolFailed(f"the controller's answer is not a usable agent config: {e}") from None
    if received != fingerprint:
        raise EnrolFailed(f"the controller's key has fingerprint {received}, not {fingerprint} as the code says. "
                          "Either the code was mistyped, or something between this receiver and the controller "
                          "answered in its place (a false server, a hijacked network): nothing was written. Check "
                          "the code with the operator (`truyenthanh receiver enrolment-code` prints the key's "
                          "fingerprint); the code is used up, ask for a new one")
    try:
        AgentSettings(**answer.config_values(), state_dir=state_dir, allow_cleartext=allow_cleartext)
    except (ValidationError, ValueError) as e:
        raise EnrolFailed(f"the controller's answer is not a usable agent config: {e}") from None
    return answer


def render_config(answer: EnrolAnswer, state_dir: Path, controller: str, now: dt.datetime, *,
                  allow_cleartext: bool = False) -> bytes:
    values = {**answer.config_values(), "state_dir": str(state_dir)}
    if allow_cleartext:  # the installer said so: a closed private network
        values["allow_cleartext"] = True
    header = (f"# Written by `truyenthanh-agent enroll` from {controller} at {now:%Y-%m-%d %H:%M} UTC.\n"
              "# Holds this receiver's broker password: keep it mode 0600.\n"
              "# The amplifier relay: amp_gpio_pin = 17 (BCM number), amp_active_high = false for relay boards\n"
              "# that switch on when pulled low. See receivers/agent/config.py for every setting.\n")
    return (header + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())).encode()


def write_private(path: Path, data: bytes) -> None:
    """A secret (the agent's config): mode 0600 from the first byte, written atomically (`write_atomic`)."""
    write_atomic(path, data, 0o600)
