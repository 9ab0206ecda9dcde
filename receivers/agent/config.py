"""The agent's settings: one `AgentSettings` per process, read from a TOML file written at enrolment
(`truyenthanh-agent enroll`, or `truyenthanh provision` for simulated fleets), with `TT_AGENT_*`
environment variables filling anything the file leaves out. `mqtt://` and `http://` to another machine are
refused unless `allow_cleartext = true` (receivers/protocol/urls.py says when that is reasonable)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from receivers.protocol import check_level
from receivers.protocol.urls import cleartext_problem


class AgentSettings(BaseSettings):
    # hide_input_in_errors: a refused config must not print the broker password.
    model_config = SettingsConfigDict(env_prefix="TT_AGENT_", extra="ignore", hide_input_in_errors=True)

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
    allow_cleartext: bool = Field(default=False, description="accept mqtt:// and http:// to another machine. "
                                  "Only on a closed private network (a VPN that already encrypts, a LAN with no "
                                  "way out): elsewhere the broker password and the receiver's reports would "
                                  "cross the network readable by anyone on the path")
    disk_in_thread: bool = Field(default=True, description="make the state database's and the audio cache's "
                                 "disk calls in a worker thread, so that a slow SD card never holds the agent up; "
                                 "false where the state is on a RAM disk (the simulated fleet under /dev/shm), "
                                 "where a thread costs more than the call")
    issued_tolerance_s: float = Field(default=300.0, ge=0, le=3600, description="a command may have been issued "
                                      "this much before the latest one seen (several sent at once, delivered "
                                      "out of order), no earlier: an older one is a replay, whatever the clock says")

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

    @model_validator(mode="after")
    def _no_cleartext(self) -> AgentSettings:
        if self.allow_cleartext:
            return self
        for name, url in (("mqtt_url", self.mqtt_url), ("controller_url", self.controller_url)):
            problem = cleartext_problem(url, name) if url else None
            if problem:
                raise ValueError(f"{problem} (allow_cleartext = true)")
        return self

    @property
    def broker(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.mqtt_url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls

    @classmethod
    def from_file(cls, path: Path) -> AgentSettings:
        with path.open("rb") as f:
            return cls(**tomllib.load(f))
