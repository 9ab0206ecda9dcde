"""Enrolment over HTTP, `POST {controller}/api/v1/enrol`: a new Raspberry Pi trades the one-time code the
operator gave its installer for its own credentials and the controller's public key.

- `EnrolRequest`: what the Pi sends.
- `EnrolAnswer`: what it gets back — the values of its `agent.toml` (receivers/agent/config.py), and
  warnings for the installer. The controller answers with it and the agent validates with it, so the two
  cannot drift. Unknown fields are ignored, so a newer controller can add some.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

ENROL_PATH = "/api/v1/enrol"


class EnrolRequest(BaseModel):
    code: str = Field(max_length=64, description="the one-time code, e.g. 7KQ2-M9XD-4HTB-N3PW (case, spaces "
                                                 "and dashes do not matter)")


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
