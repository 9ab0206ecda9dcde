"""Enrolment codes and the API shapes of enrolment (kept apart from `models.py`; registered with Alembic
through `migrations/env.py`).

- `EnrolmentCode`: a one-time code an operator gives the person installing a receiver. Only its SHA-256 is
  stored; the code itself is shown once, when it is made.
- `EnrolmentCodePublic`: what the operator gets back (the code, and until when it works).
- What a Raspberry Pi sends to enrol, and the agent config it gets, are wire shapes shared with the agent:
  `receivers.protocol.enrolment` (`EnrolRequest`, `EnrolAnswer`).
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Field, SQLModel

from controller.db.models import utcnow


class EnrolmentCode(SQLModel, table=True):
    # sha256 of the normalised code; the code has 80 random bits, so a plain hash is enough (as for tokens)
    code_hash: str = Field(primary_key=True, max_length=64)
    receiver_id: str = Field(foreign_key="receiver.id", index=True)
    created_by: str  # "token:<id>:<name>" or "cli"
    created_at: dt.datetime = Field(default_factory=utcnow)
    expires_at: dt.datetime
    used_at: dt.datetime | None = None


class EnrolmentCodePublic(SQLModel):
    receiver_id: str
    code: str
    expires_at: dt.datetime
