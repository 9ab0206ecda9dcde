"""Database tables and API shapes (FastAPI-template style: `XBase`, `X(table=True)`, `XPublic`, `XsPublic`).

Inventory: `Commune` ⊃ `Village` ⊃ `Receiver`. Live status: `ReceiverStatus` (one row per receiver, written
by the MQTT bridge). People and access: `User` (an account with a role and communes), `ApiToken` (owned by a
user, or a named service). Accountability: `AuditEntry`, `CommandRecord`.
All datetimes are UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Commune(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=63)
    name: str
    kind: str = "xa"
    # Content made by a commune operator waits for a leader's approval (duyệt tin) before it can go on air.
    approval_required: bool = True


class Village(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    commune_id: int = Field(foreign_key="commune.id", index=True)
    code: str = Field(max_length=63)
    name: str
    lat: float | None = None  # WGS 84, for the staff UI's map; None: not known
    lon: float | None = None


class Receiver(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=63)
    name: str
    commune_id: int = Field(foreign_key="commune.id", index=True)
    village_id: int | None = Field(default=None, foreign_key="village.id", index=True)
    # Mosquitto's PBKDF2-SHA512 form; the password itself is shown once, at provisioning/enrolment.
    mqtt_password_hash: str | None = None
    # Receives CAP alerts of status Test / Exercise (a test loudspeaker at the district office, say).
    accepts_tests: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow)
    lat: float | None = None  # WGS 84, for the staff UI's map; None: not known
    lon: float | None = None


class ReceiverStatus(SQLModel, table=True):
    receiver_id: str = Field(primary_key=True, foreign_key="receiver.id")
    availability: str = "unknown"  # online | offline | stopped | unknown (never heard from)
    availability_at: dt.datetime | None = None
    last_seen: dt.datetime | None = None
    volume: int | None = None
    amplifier: str | None = None
    playing: str | None = None
    state_at: dt.datetime | None = None
    telemetry: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    telemetry_at: dt.datetime | None = None
    agent_version: str | None = None
    keepalive_s: int | None = None  # declared by the agent; silence for 1.5× this means offline


class ReceiverStatusEvent(SQLModel, table=True):
    """One change of a receiver's availability (its status history, shown on the receiver's page)."""

    id: int | None = Field(default=None, primary_key=True)
    receiver_id: str = Field(foreign_key="receiver.id", index=True)
    availability: str  # online | offline | stopped
    at: dt.datetime = Field(default_factory=utcnow, index=True)


class User(SQLModel, table=True):
    """A person who works on the system (a district admin, a commune operator, …)."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(max_length=200)
    password_hash: str  # Argon2id, in its PHC string form
    role: str  # see controller.policy.ROLES
    communes: str | None = None  # space-separated codes; None = every commune
    disabled: bool = False
    last_login_at: dt.datetime | None = None
    created_by: str = "cli"
    created_at: dt.datetime = Field(default_factory=utcnow)


class WebSession(SQLModel, table=True):
    """A person signed in to the staff web UI. The browser holds a random token in an HttpOnly cookie; this
    row holds only its SHA-256, so a copy of the database cannot be used to sign in."""

    id: str = Field(primary_key=True, max_length=64)  # sha256 hex of the cookie's token
    user_id: int = Field(foreign_key="user.id", index=True)
    csrf: str  # the token every form post of this session must carry
    created_at: dt.datetime = Field(default_factory=utcnow)
    last_seen_at: dt.datetime = Field(default_factory=utcnow)
    expires_at: dt.datetime
    address: str | None = None
    user_agent: str | None = Field(default=None, max_length=300)


class ApiToken(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str
    token_hash: str = Field(index=True, unique=True)  # sha256 of the 256-bit random token
    scopes: str  # space-separated
    communes: str | None = None  # space-separated codes; None = every commune
    # The person whose rights bound the token's; None for a service token made by an admin or the CLI.
    owner_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    created_by: str = "cli"
    created_at: dt.datetime = Field(default_factory=utcnow)
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked: bool = False
    revoked_at: dt.datetime | None = None


class AuditEntry(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, index=True)
    actor: str  # "token:<id>:<name>", "cli", "anonymous"
    action: str  # e.g. "receiver.volume", "auth.refused"
    target: str | None = None
    outcome: str  # "ok", "refused", "rejected", "no_answer"
    detail: str | None = None
    address: str | None = None  # the client's address, for what came over HTTP


class CommandRecord(SQLModel, table=True):
    command_id: str = Field(primary_key=True)
    kind: str
    target: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    issued_by: str
    outcome: str | None = None  # applied | rejected | no_answer
    reason: str | None = None
    answered_at: dt.datetime | None = None


# ------------------------------------------------------------------------------------- API shapes


class CommunePublic(SQLModel):
    code: str
    name: str
    kind: str
    villages: int
    receivers_total: int
    receivers_online: int
    receivers_offline: int
    approval_required: bool = True  # its content waits for a leader's approval before going on air


class CommunesPublic(SQLModel):
    data: list[CommunePublic]
    count: int


class ReceiverPublic(SQLModel):
    id: str
    name: str
    commune: str
    commune_name: str
    village: str | None
    village_name: str | None
    availability: str
    last_seen: dt.datetime | None
    volume: int | None
    state: dict[str, Any]
    telemetry: dict[str, Any] | None
    clock_offset_s: float | None = None  # receiver clock minus controller clock, from its last telemetry
    clock_drift: bool = False  # |offset| above CLOCK_DRIFT_S: it will play at the wrong time
    accepts_tests: bool = False  # plays CAP Test / Exercise alerts


class ReceiversPublic(SQLModel):
    data: list[ReceiverPublic]
    count: int


# ------------------------------------------------------------------------------------------- content


class MediaFile(SQLModel, table=True):
    """One stored piece of broadcast audio, named by its SHA-256 (see audio.store)."""

    sha256: str = Field(primary_key=True, max_length=64)
    size_bytes: int
    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    created_at: dt.datetime = Field(default_factory=utcnow)


class ContentBase(SQLModel):
    title: str = Field(max_length=200)


class Bulletin(ContentBase, table=True):
    """An uploaded recording (bản tin)."""

    id: int | None = Field(default=None, primary_key=True)
    commune_id: int | None = Field(default=None, foreign_key="commune.id", index=True)
    media_sha256: str = Field(foreign_key="mediafile.sha256", index=True)
    source_filename: str
    source_format: str
    loudness_before: float
    loudness_after: float
    trimmed_s: float = 0.0
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow)
    approved_by: str | None = None  # None: a draft, which cannot be played or scheduled
    approved_at: dt.datetime | None = None
    # Sent back by an approver (duyệt tin: trả lại) with a comment the author reads; cleared on approval.
    returned_by: str | None = None
    returned_at: dt.datetime | None = None
    returned_comment: str | None = Field(default=None, max_length=1000)


class Announcement(ContentBase, table=True):
    """Text read aloud by a TTS engine (thông báo), with optional chimes and repeats."""

    id: int | None = Field(default=None, primary_key=True)
    commune_id: int | None = Field(default=None, foreign_key="commune.id", index=True)
    media_sha256: str = Field(foreign_key="mediafile.sha256", index=True)
    text: str
    normalized_text: str
    engine_requested: str
    engine: str
    voice: str | None = None
    chime_before: bool = False
    chime_after: bool = False
    repeat: int = 1
    gap_s: float = 0.0
    note: str | None = None  # e.g. why another engine was used
    # The key instruction read again at the end of a long text ("Xin nhắc lại: …"), when staff ask for it.
    key_instruction: str | None = Field(default=None, max_length=500)
    loudness_before: float
    loudness_after: float
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow)
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    # Sent back by an approver (duyệt tin: trả lại) with a comment the author reads; cleared on approval.
    returned_by: str | None = None
    returned_at: dt.datetime | None = None
    returned_comment: str | None = Field(default=None, max_length=1000)


class ContentPublic(SQLModel):
    id: int
    title: str
    commune: str | None
    sha256: str
    duration_s: float
    loudness_before: float
    loudness_after: float
    true_peak_after: float
    media_url: str
    created_by: str
    created_at: dt.datetime
    approved: bool = True
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    # Sent back by an approver (duyệt tin: trả lại) with a comment the author reads; cleared on approval.
    returned_by: str | None = None
    returned_at: dt.datetime | None = None
    returned_comment: str | None = Field(default=None, max_length=1000)


class BulletinPublic(ContentPublic):
    kind: str = "bulletin"
    source_filename: str
    source_format: str
    trimmed_s: float


class AnnouncementPublic(ContentPublic):
    kind: str = "announcement"
    text: str
    normalized_text: str
    engine_requested: str
    engine: str
    voice: str | None
    chime_before: bool
    chime_after: bool
    repeat: int
    gap_s: float
    note: str | None
    key_instruction: str | None = Field(default=None, description="read again at the end, after 'Xin nhắc lại:'")


class BulletinsPublic(SQLModel):
    data: list[BulletinPublic]
    count: int


class AnnouncementsPublic(SQLModel):
    data: list[AnnouncementPublic]
    count: int


class Abbreviation(SQLModel, table=True):
    """A staff-edited expansion read instead of an abbreviation (on top of the built-in list): the district's
    (commune_id None, changed by district admins only) or one commune's, which wins in that commune."""

    __table_args__ = (UniqueConstraint("abbr", "commune_id", name="uq_abbreviation_abbr_commune"),)
    id: int | None = Field(default=None, primary_key=True)
    abbr: str = Field(max_length=40, index=True)
    commune_id: int | None = Field(default=None, foreign_key="commune.id", index=True)
    expansion: str = Field(max_length=200)
    updated_by: str
    updated_at: dt.datetime = Field(default_factory=utcnow)


# ------------------------------------------------------------------------------------ proof of play


class PlayRecord(SQLModel, table=True):
    """One proof-of-play event from a receiver; `event_id` makes a re-sent event count once."""

    event_id: str = Field(primary_key=True, max_length=36)
    receiver_id: str = Field(foreign_key="receiver.id", index=True)
    seq: int
    event: str = Field(index=True)  # started | finished | cut | failed | missed
    at: dt.datetime = Field(index=True)
    item_id: str = Field(index=True)
    command_id: str | None = None
    priority: str
    media_sha256: str | None = None
    position_s: float = 0.0
    repeat_index: int = 0
    volume: int | None = None
    reason: str | None = None
    received_at: dt.datetime = Field(default_factory=utcnow)


class PlayPublic(SQLModel):
    event_id: str
    receiver_id: str
    commune: str
    event: str
    at: dt.datetime
    item_id: str
    command_id: str | None
    priority: str
    media_sha256: str | None
    position_s: float
    repeat_index: int
    volume: int | None
    reason: str | None
    seq: int


class PlaysPublic(SQLModel):
    data: list[PlayPublic]
    count: int


# ------------------------------------------------------------------------------------------ schedule


class ProgrammeBase(SQLModel):
    title: str = Field(max_length=200)
    # [{"bulletin_id": 3} | {"announcement_id": 5}], in playing order
    items: list[dict[str, int]] = Field(sa_column=Column(JSON, nullable=False))
    # {"all": bool, "communes": [code], "villages": ["commune/village"], "receivers": [id], "groups": [id]}
    targets: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    start: dt.datetime  # UTC; the first occurrence, and the rule's start (expanded in Asia/Ho_Chi_Minh)
    rrule: str | None = Field(default=None, max_length=500)
    exdates: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # local ISO dates
    valid_from: dt.date | None = None  # local dates, inclusive
    valid_until: dt.date | None = None
    priority: str = "normal"  # emergency | priority | normal
    play_order: str | None = None  # before | after: stated order against overlapping same-class programmes
    paused: bool = False


class Programme(ProgrammeBase, table=True):
    """A recurring (or one-off) programme (chương trình phát thanh): what plays, where, and when."""

    id: int | None = Field(default=None, primary_key=True)
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow)
    updated_by: str | None = None
    updated_at: dt.datetime | None = None
    approved_by: str | None = None  # None: a draft, not placed on any receiver's plan
    approved_at: dt.datetime | None = None
    # Sent back by an approver (duyệt tin: trả lại) with a comment the author reads; cleared on approval.
    returned_by: str | None = None
    returned_at: dt.datetime | None = None
    returned_comment: str | None = Field(default=None, max_length=1000)


class ReceiverGroup(SQLModel, table=True):
    """A saved set of receivers that programmes can target by id (nhóm cụm loa)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    receivers: list[str] = Field(sa_column=Column(JSON, nullable=False))
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow)


class ReceiverPlanState(SQLModel, table=True):
    """Which plan each receiver should hold (`version`) and which one it last fetched."""

    receiver_id: str = Field(primary_key=True, foreign_key="receiver.id")
    version: str
    compiled_at: dt.datetime
    notified_at: dt.datetime | None = None
    fetched_version: str | None = None
    fetched_at: dt.datetime | None = None


class Targets(SQLModel):
    all: bool = False
    communes: list[str] = Field(default_factory=list)
    villages: list[str] = Field(default_factory=list, description="'commune-code/village-code'")
    receivers: list[str] = Field(default_factory=list)
    groups: list[int] = Field(default_factory=list, description="receiver group ids")


class ProgrammeCreate(SQLModel):
    title: str = Field(min_length=1, max_length=200)
    items: list[dict[str, int]] = Field(min_length=1, description='[{"bulletin_id": N} | {"announcement_id": N}]')
    targets: Targets
    start: dt.datetime = Field(description="first occurrence; without an offset it is read as Asia/Ho_Chi_Minh")
    rrule: str | None = Field(default=None, max_length=500, description="RFC 5545 RRULE, e.g. FREQ=DAILY")
    exdates: list[dt.date] = Field(default_factory=list, description="local dates on which it does not play")
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    priority: Literal["emergency", "priority", "normal"] = "normal"
    order: Literal["before", "after"] | None = Field(
        default=None, description="play before/after the same-class programmes it overlaps instead of a 409")
    paused: bool = False


class ProgrammeUpdate(SQLModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    items: list[dict[str, int]] | None = Field(default=None, min_length=1)
    targets: Targets | None = None
    start: dt.datetime | None = None
    rrule: str | None = Field(default=None, max_length=500)
    exdates: list[dt.date] | None = None
    valid_from: dt.date | None = None
    valid_until: dt.date | None = None
    priority: Literal["emergency", "priority", "normal"] | None = None
    order: Literal["before", "after"] | None = None
    paused: bool | None = None


class ProgrammeItemPublic(SQLModel):
    kind: str
    id: int
    title: str | None
    duration_s: float | None


class ProgrammePublic(SQLModel):
    id: int
    title: str
    items: list[ProgrammeItemPublic]
    targets: dict[str, Any]
    receivers: int
    communes: list[str]
    start: dt.datetime  # Asia/Ho_Chi_Minh
    rrule: str | None
    exdates: list[str]
    valid_from: dt.date | None
    valid_until: dt.date | None
    priority: str
    order: str | None
    paused: bool
    duration_s: float
    next: list[dt.datetime]  # the next occurrences, Asia/Ho_Chi_Minh
    created_by: str
    created_at: dt.datetime
    updated_by: str | None
    updated_at: dt.datetime | None
    approved: bool  # False: a draft (duyệt tin), on no receiver's plan until approved
    approved_by: str | None = None
    approved_at: dt.datetime | None = None  # Asia/Ho_Chi_Minh
    # Sent back by an approver (duyệt tin: trả lại) with a comment the author reads; cleared on approval or edit.
    returned_by: str | None = None
    returned_at: dt.datetime | None = None  # Asia/Ho_Chi_Minh
    returned_comment: str | None = None


class ProgrammesPublic(SQLModel):
    data: list[ProgrammePublic]
    count: int


class ReceiverGroupCreate(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    receivers: list[str] = Field(min_length=1)


class ReceiverGroupPublic(SQLModel):
    id: int
    name: str
    receivers: list[str]
    created_by: str
    created_at: dt.datetime


class ReceiverGroupsPublic(SQLModel):
    data: list[ReceiverGroupPublic]
    count: int


# ----------------------------------------------------------------------------------------- emergency


class Emergency(SQLModel, table=True):
    """An emergency announcement (thông báo khẩn cấp): its audio, where it went, and what became of it."""

    id: str = Field(primary_key=True, max_length=36)
    title: str = Field(max_length=200)
    text: str | None = None
    # The text as it was read out (abbreviations expanded); its audio is reused by a later emergency that
    # says the same. Emergency speech is not kept as a library announcement: its text stays with the
    # emergency, which only principals covering all its communes may read.
    spoken_text: str | None = Field(default=None, index=True)
    source: str  # text | bulletin | upload | cap
    bulletin_id: int | None = None
    # Which voice spoke the text ("gtts", "neural", "offline"), or "recorded" when a pre-recorded warning of
    # the event type was used; None for a bulletin or an upload.
    engine: str | None = None
    event_type: str | None = Field(default=None, max_length=40)  # a key of controller.warnings.EVENT_TYPES
    media_sha256: str = Field(foreign_key="mediafile.sha256")
    targets: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    repeat: int = 1
    volume: int = 100
    expires_at: dt.datetime
    # The signed play commands as published, by target ("commune:tra-kot", "receiver:…", "all"): sent
    # again, byte for byte, to a targeted receiver that comes back online before expiry.
    payloads: dict[str, str] = Field(sa_column=Column(JSON, nullable=False))
    command_id: str = Field(index=True)
    request_id: str | None = Field(default=None, index=True)  # the caller's idempotency key
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)
    cancelled_at: dt.datetime | None = None
    cancelled_by: str | None = None
    cap_sender: str | None = None
    cap_identifier: str | None = Field(default=None, index=True)
    cap_sent: dt.datetime | None = None
    cap_status: str | None = None
    area_desc: str | None = None


class WarningRecording(SQLModel, table=True):
    """The pre-recorded warning of one event type (lũ quét, sạt lở đất, …): an emergency or CAP alert of that
    type plays it, followed by the names of the communes concerned, before any synthesis is tried."""

    event_type: str = Field(primary_key=True, max_length=40)  # a key of controller.warnings.EVENT_TYPES
    media_sha256: str = Field(foreign_key="mediafile.sha256", index=True)
    source_filename: str | None = None
    created_by: str
    created_at: dt.datetime = Field(default_factory=utcnow)


class EmergencyReceiver(SQLModel, table=True):
    """One targeted receiver's progress: pending → received → fetched → playing → done, or failed (reason),
    or cancelled."""

    emergency_id: str = Field(primary_key=True, foreign_key="emergency.id")
    receiver_id: str = Field(primary_key=True, foreign_key="receiver.id")
    status: str = "pending"
    reason: str | None = None
    updated_at: dt.datetime | None = None
