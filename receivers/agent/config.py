"""The agent's settings: one `AgentSettings` per process, read from a TOML file written at enrolment
(`truyenthanh-agent enroll`, or `truyenthanh provision` for simulated fleets), with `TT_AGENT_*`
environment variables filling anything the file leaves out."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from receivers.protocol import check_level


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TT_AGENT_", extra="ignore")

    receiver_id: str
    commune: str
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    username: str
    password: str
    base: str = "truyenthanh"
    controller_public_key: str = Field(description="base64 Ed25519 public key of the controller")
    state_dir: Path = Path("/var/lib/truyenthanh")
    keepalive_s: int = Field(default=30, ge=2, le=3600)
    telemetry_interval_s: float = Field(default=30.0, gt=0)
    backoff_min_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=60.0, gt=0)
    hardware: str = Field(default="pi", description="'pi' on a Raspberry Pi, 'sim' in firmware_sim")
    mixer_control: str = Field(default="PCM", description="ALSA mixer control for the volume (amixer)")
    alsa_device: str = Field(default="default", description="ALSA device the audio is played on")
    controller_url: str | None = Field(default=None, description="base URL for relative media URLs")
    cache_budget_mb: float = Field(default=1024.0, gt=0, description="disk space the audio cache may use")
    amp_gpio_pin: int | None = Field(default=None, ge=0, le=53, description="GPIO line (BCM number) of the "
                                     "amplifier relay; unset: no relay, the amplifier is always powered")
    amp_active_high: bool = Field(default=True, description="the relay switches on when its line is high "
                                  "(false for boards that switch on when pulled low)")
    amp_warmup_s: float = Field(default=1.0, ge=0, description="wait after switching the amplifier on")
    amp_idle_off_s: float = Field(default=30.0, ge=0, description="switch the amplifier off after this idle time")
    plan_poll_s: float = Field(default=300.0, gt=0, description="ask for the plan this often (± 20 %), in case "
                               "a sync-schedule notification was lost")
    missed_tolerance_s: float = Field(default=120.0, ge=0, description="a scheduled item may start this late "
                                      "(the receiver was off), no later: then it is logged missed")

    @field_validator("receiver_id", "commune")
    @classmethod
    def _level(cls, v: str) -> str:
        return check_level(v)

    @field_validator("mqtt_url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("mqtt_url must look like mqtt://host:1883 or mqtts://host:8883")
        return v

    @property
    def broker(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.mqtt_url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls

    @classmethod
    def from_file(cls, path: Path) -> AgentSettings:
        with path.open("rb") as f:
            return cls(**tomllib.load(f))
