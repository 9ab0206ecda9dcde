"""The controller's settings: one `Settings` (environment prefix `TT_`), obtained through `get_settings()`.

Secrets refuse placeholder values unless `TT_DEMO=1`: a production controller must not start with a
password anybody can read in this repository.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from audio.mp3 import MPEG_BITRATES
from receivers.protocol.urls import cleartext_problem

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "password", "admin", "truyenthanh"}
DEFAULT_SEED = Path(__file__).parent / "data" / "bac-tra-my.toml"


class MqttUrl(BaseModel):
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> MqttUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("TT_MQTT_URL must look like mqtt://user:password@host:1883 (or mqtts://…:8883)")
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname, port=parts.port or (8883 if tls else 1883), tls=tls,
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None)


# An upload form's boundaries and fields around the file: what an upload's body may hold beyond
# `audio.max_upload_mb` (the API's `api.limits.UPLOAD` and the staff UI's `ui.upload_limit`).
MULTIPART_OVERHEAD = 64 * 1024


TTS_ENGINES = ("gtts", "neural", "offline")  # Google (online), the installed neural voice, eSpeak NG


class AudioSettings(BaseModel):
    """The broadcast format and the limits on what staff may upload (`TT_AUDIO__…`)."""

    sample_rate: int = Field(default=44100, ge=8000, le=48000)
    bitrate_kbps: int = Field(default=64, ge=16, le=320)
    target_lufs: float = Field(default=-16.0, ge=-40, le=-5)
    true_peak_dbtp: float = Field(default=-1.5, ge=-9, le=0)
    # Speech (TTS emergencies and announcements) at a speech bitrate: it is what travels inside an emergency's
    # play command to every receiver. 22.05 kHz is the rate speech is laid out at (`audio.compose.RATE`).
    speech_sample_rate: int = Field(default=22050, ge=8000, le=48000,
                                    description="sample rate of synthesised speech (emergencies, announcements)")
    speech_bitrate_kbps: int = Field(default=32, ge=8, le=320,
                                     description="MP3 bitrate of synthesised speech (emergencies, announcements)")
    max_upload_mb: float = Field(default=200.0, gt=0)
    max_duration_s: float = Field(default=3 * 3600.0, gt=0)
    trim_silence: bool = True
    max_text_chars: int = Field(default=5000, ge=10)
    # Making uploads broadcast-ready is ffmpeg work on untrusted files: so many at a time (one per core of a
    # small controller), so many more waiting at most, each for so long; beyond that 503 (try again).
    max_concurrent_ingests: int = Field(default=2, ge=1, description="ingests (ffmpeg) running at once")
    max_waiting_ingests: int = Field(default=4, ge=0, description="uploads waiting for an ingest slot")
    ingest_wait_s: float = Field(default=20.0, ge=0, description="how long an upload waits for a slot")
    default_engine: str | None = Field(
        default=None, description="an engine tried first for announcements that name none; default: the order of "
                                  "TT_TTS__ANNOUNCEMENTS alone")
    gtts_timeout_s: float = Field(default=10.0, gt=0, description="Google's HTTP timeout; announcements' deadline "
                                                                  "for it unless TT_TTS__ANNOUNCEMENTS_DEADLINE_S")
    gtts_url: str | None = Field(default=None, description="override Google's endpoint (tests use a local fake)")

    @field_validator("default_engine")
    @classmethod
    def _engine(cls, v: str | None) -> str | None:
        if v is not None and v not in TTS_ENGINES:
            raise ValueError(f"unknown engine {v!r}: choose among {', '.join(TTS_ENGINES)}")
        return v

    @model_validator(mode="after")
    def _mp3_formats(self) -> AudioSettings:
        for what, rate, kbps in (("", self.sample_rate, self.bitrate_kbps),
                                 ("SPEECH_", self.speech_sample_rate, self.speech_bitrate_kbps)):
            allowed = MPEG_BITRATES.get(rate)
            if allowed is None:
                raise ValueError(f"TT_AUDIO__{what}SAMPLE_RATE={rate}: MP3 has {', '.join(map(str, MPEG_BITRATES))} Hz")
            if kbps not in allowed:
                raise ValueError(f"TT_AUDIO__{what}BITRATE_KBPS={kbps}: at {rate} Hz MP3 has "
                                 f"{', '.join(map(str, allowed))} kbps")
        return self


EngineOrder = Annotated[list[str], NoDecode]  # from the environment: JSON (["gtts","offline"]) or "gtts,offline"


class TtsSettings(BaseModel):
    """Which voice speaks when (`TT_TTS__…`): per use, the engines tried in order — Google's voice (`gtts`, online),
    the installed neural voice (`neural`), eSpeak NG (`offline`, always there) — each engine that fails or misses
    its deadline giving way to the next. The online engine has a deadline, and for emergencies and CAP alerts the
    neural voice too (a dead link or a stuck model delays a warning by at most that much); eSpeak has none. An
    announcement that names an engine tries it first, then this order."""

    announcements: EngineOrder = Field(default_factory=lambda: list(TTS_ENGINES))
    emergencies: EngineOrder = Field(default_factory=lambda: list(TTS_ENGINES))
    cap: EngineOrder = Field(default_factory=lambda: list(TTS_ENGINES))
    announcements_deadline_s: float | None = Field(
        default=None, gt=0, description="default: TT_AUDIO__GTTS_TIMEOUT_S per 1000 characters of text begun")
    emergencies_deadline_s: float = Field(default=2.0, gt=0, description="the online engine's, for an emergency")
    cap_deadline_s: float = Field(default=2.0, gt=0, description="the online engine's, for a CAP alert")
    # A medium Piper voice costs about 1 s of CPU per 10 s of speech (docs/PERFORMANCE.md): 300 characters, some
    # 20 s of Vietnamese speech, take about 2 s — more with the machine busy. 5 s per 300 characters begun
    # leaves that margin twice over and still bounds what a stuck voice adds to a typical warning to 5 s.
    neural_deadline_s: float = Field(
        default=5.0, gt=0, description="the neural voice's, for an emergency or a CAP alert, per 300 characters of "
                                       "text begun (announcements wait for it)")
    neural_dir: Path | None = Field(default=None, description="the installed neural voice; default: data_dir/voices")

    @field_validator("announcements", "emergencies", "cap", mode="before")
    @classmethod
    def _order_text(cls, v: Any) -> Any:
        if isinstance(v, str):
            return json.loads(v) if v.strip().startswith("[") else [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("announcements", "emergencies", "cap")
    @classmethod
    def _order(cls, v: list[str]) -> list[str]:
        unknown = [e for e in v if e not in TTS_ENGINES]
        if unknown:
            raise ValueError(f"unknown engine(s) {', '.join(unknown)}: choose among {', '.join(TTS_ENGINES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"an engine is named twice: {', '.join(v)}")
        if "offline" not in v:  # the one engine that needs nothing: without it a dead link could silence a warning
            raise ValueError("the order must include 'offline' (eSpeak NG, which always works)")
        return v

    def order(self, use: str) -> list[str]:
        return list(getattr(self, use))


class ScheduleSettings(BaseModel):
    """Programmes and receivers' plans (`TT_SCHEDULE__…`)."""

    plan_hours: float = Field(default=48.0, gt=0, le=24 * 14, description="how far ahead each receiver's plan reaches")
    refresh_s: float = Field(default=600.0, gt=0, description="recompile plans this often as the window rolls")
    missed_tolerance_s: float = Field(default=120.0, ge=0, description="a plan keeps items this long after start")
    conflict_horizon_days: int = Field(default=366, ge=1, le=3660, description="how far ahead clashes are sought")
    sync_ttl_s: float = Field(default=3600.0, gt=0, description="a sync-schedule command's lifetime")


class EmergencySettings(BaseModel):
    """Emergency announcements and CAP intake (`TT_EMERGENCY__…`)."""

    volume: int = Field(default=100, ge=0, le=100, description="the receivers' emergency volume")
    repeat: int = Field(default=2, ge=1, le=10)
    gap_s: float = Field(default=3.0, ge=0, le=60)
    expires_min: float = Field(default=60.0, gt=0, description="default lifetime when none is given")
    max_expires_h: float = Field(default=24.0, gt=0)
    rate_per_minute: int = Field(default=10, ge=1, description="emergencies one token may trigger per minute")
    cap_require_signature: bool = False
    cap_trusted_certs: list[Path] = Field(default_factory=list, description="PEM certificates CAP senders sign with")
    cap_geocodes: Path | None = Field(default=None, description="geocode → commune table (TOML); default: built in")


class LivenessSettings(BaseModel):
    """How the controller decides a receiver is offline (`TT_LIVENESS__…`)."""

    # A receiver declares its keepalive in its retained "online"; one that declares an hour could hide an
    # outage for 1.5 hours. The controller counts at most this much, whatever it declares.
    max_keepalive_s: float = Field(default=120.0, gt=0, description="the longest declared keepalive trusted")
    # The controller's own rule (silent for 1.5 × keepalive → offline). Off, only the broker's last will
    # marks a receiver offline (a test of the will turns it off).
    silence_rule: bool = True
    # A receiver back online behind the controller's command numbers may just be waiting for what the
    # broker queued for it: its gap is judged (and it is resynchronised) this long after its "online".
    resync_grace_s: float = Field(default=5.0, ge=0, description="wait before judging a sequence gap")
    # Online availabilities of one receiver going back to an earlier agent process within this window: a clone.
    clone_window_s: float = Field(default=600.0, gt=0, description="window of the cloned-receiver check")


class HttpSettings(BaseModel):
    """Limits at the HTTP edge (`TT_HTTP__…`), applied before a route reads its body (controller.api.limits)."""

    max_body_kb: int = Field(default=1024, ge=1, description="a JSON, form or CAP body (uploads: audio.max_upload_mb)")
    max_enrol_kb: int = Field(default=16, ge=1, description="the body of POST /api/v1/enrol")
    refusal_audits_per_minute: int = Field(default=30, ge=1,
                                           description="refusal rows per client address a minute; the rest counted")
    refusal_audits_total_per_minute: int = Field(default=600, ge=1, description="and from all addresses together")
    streams_per_token: int = Field(default=4, ge=1, description="open event streams (SSE) per token")
    plan_failures: int = Field(default=10, ge=1, description="failed plan fetches per receiver id and address")
    plan_failures_per_address: int = Field(default=100, ge=1, description="and per client address")
    plan_window_min: float = Field(default=5.0, gt=0)


class UiSettings(BaseModel):
    """The staff web UI (NiceGUI, mounted at /ui on the controller)."""

    enabled: bool = Field(default=True, description="mount the staff web UI (tests of the API alone turn it off)")
    session_hours: float = Field(default=12.0, gt=0, description="a signed-in session ends after this long unused")
    session_max_days: float = Field(default=7.0, gt=0, description="and at the latest this long after signing in")
    login_failures: int = Field(default=5, ge=1, description="failed sign-ins allowed per window, per user name")
    login_failures_per_address: int = Field(default=20, ge=1, description="and per client address")
    login_window_min: float = Field(default=15.0, gt=0)
    cookie_secure: bool | None = Field(default=None, description="Secure cookies; default: when the request is HTTPS")
    # The map's background tiles, e.g. "https://tile.example.org/{z}/{x}/{y}.png"; none by default (nothing is
    # fetched from the internet): the map then shows the district's outline and the receivers only.
    map_tiles_url: str | None = None
    map_tiles_attribution: str = ""
    dashboard_refresh_s: float = Field(default=1.0, gt=0, description="how often the live views refresh")


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's message must not print TT_MQTT_URL's password.
    model_config = SettingsConfigDict(env_prefix="TT_", env_nested_delimiter="__", extra="ignore",
                                      hide_input_in_errors=True)

    demo: bool = False
    data_dir: Path = Path("var")
    database_url: str | None = Field(default=None, description="default: SQLite file in data_dir")
    seed_file: Path = DEFAULT_SEED
    host: str = "127.0.0.1"
    port: int = 8080
    # The broker. Unset in the demo, which starts an embedded one and fills this in.
    mqtt_url: str | None = None
    mqtt_base: str = "truyenthanh"
    # Used only without a user name: the generated brokers make the client id the user name, so each
    # controller process needs an account of its own.
    mqtt_client_id: str = "tt-controller"
    # What receivers are told to connect to (may differ from how the controller reaches the broker).
    receiver_mqtt_url: str | None = None
    # The controller's URL as receivers reach it over HTTP (default http://{host}:{port}); see `public_url`.
    controller_url: str | None = None
    # How long an enrolment code works once made.
    enrolment_ttl_h: float = Field(default=72.0, gt=0)
    # The broker's files (as written by `provision --out`), rewritten at each enrolment; unset: not touched.
    broker_dir: Path | None = None
    # Shell command that makes the broker re-read them, e.g. `systemctl reload mosquitto`. The embedded
    # broker (amqtt) re-reads its password file by itself.
    broker_reload: str | None = None
    command_ttl_s: float = 60.0
    command_timeout_s: float = 5.0
    status_flush_s: float = 0.25
    audio: AudioSettings = AudioSettings()
    tts: TtsSettings = TtsSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    emergency: EmergencySettings = EmergencySettings()
    liveness: LivenessSettings = LivenessSettings()
    http: HttpSettings = HttpSettings()
    ui: UiSettings = UiSettings()

    # Clear text (http://, mqtt://) to another machine is refused outside the demo; allow it only on a closed
    # private network (a VPN that already encrypts, a LAN with no way out). See receivers/protocol/urls.py.
    allow_cleartext: bool = False
    # Create the signing key if it is missing (`truyenthanh serve --create-key` sets it; the demo creates one
    # anyway). Off, a controller without its key refuses to start: a new key would silence the whole fleet.
    create_key: bool = False

    @model_validator(mode="after")
    def _no_cleartext(self) -> Settings:
        if self.demo or self.allow_cleartext:
            return self
        for name, url in (("TT_CONTROLLER_URL", self.controller_url), ("TT_MQTT_URL", self.mqtt_url),
                          ("TT_RECEIVER_MQTT_URL", self.receiver_mqtt_url)):
            problem = cleartext_problem(url, name) if url else None
            if problem:
                raise ValueError(f"{problem} (TT_ALLOW_CLEARTEXT=1)")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        if self.mqtt_url and not self.demo:
            pw = MqttUrl.parse(self.mqtt_url).password
            if pw is not None and pw.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("TT_MQTT_URL has a placeholder password; set a real one (or TT_DEMO=1)")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'truyenthanh.db'}"

    @property
    def mqtt(self) -> MqttUrl:
        if not self.mqtt_url:
            raise ValueError("no broker configured: set TT_MQTT_URL (the demo sets it itself)")
        return MqttUrl.parse(self.mqtt_url)

    @property
    def public_url(self) -> str:
        return (self.controller_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def agent_mqtt_url(self) -> str:
        """The broker URL written into receivers' configs: TT_RECEIVER_MQTT_URL, else TT_MQTT_URL's host."""
        if self.receiver_mqtt_url:
            return self.receiver_mqtt_url
        mqtt = self.mqtt
        host = f"[{mqtt.host}]" if ":" in mqtt.host else mqtt.host  # an IPv6 address
        return f"{'mqtts' if mqtt.tls else 'mqtt'}://{host}:{mqtt.port}"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def neural_dir(self) -> Path:
        return self.tts.neural_dir or self.data_dir / "voices"

    def tts_deadline_s(self, use: str, chars: int = 0) -> float:
        """The online engine's deadline for `use` (announcements, emergencies, cap). An announcement's, unless
        set: the gTTS timeout per 1000 characters begun (Google reads a long text in many requests)."""
        if use == "announcements":
            return self.tts.announcements_deadline_s or self.audio.gtts_timeout_s * max(1, -(-chars // 1000))
        return float(getattr(self.tts, f"{use}_deadline_s"))

    def neural_deadline_s(self, use: str, chars: int = 0) -> float | None:
        """The neural voice's deadline for `use`: none for announcements (staff wait for the better voice); for
        an emergency or a CAP alert, `tts.neural_deadline_s` per 300 characters begun."""
        if use == "announcements":
            return None
        return self.tts.neural_deadline_s * max(1, -(-chars // 300))

    @property
    def key_file(self) -> Path:
        return self.data_dir / "keys" / "controller-ed25519.pem"


@lru_cache
def get_settings() -> Settings:
    return Settings()
