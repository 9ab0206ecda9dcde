"""A missing signing key is not silently made again (issue 12, Keys): every receiver trusts only the key it was
enrolled with, so a controller started without its key (a wrong TT_DATA_DIR, a restore that forgot the file)
would make the whole fleet answer 'bad signature'. It refuses to start instead, unless told to create one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.cli import app as cli
from controller.config import Settings
from controller.provision import MissingSigningKey, load_signing_key
from receivers.protocol.enrolment import key_fingerprint
from tests.conftest import Seeded, admin_token
from tests.live_server import live_server

MQTT = "mqtts://controller:pw-7f3a@broker.example:8883"


def test_the_controller_refuses_to_start_without_its_key(tmp_path: Path) -> None:
    # Before: the lifespan made a new key, and every enrolled receiver then refused every command.
    settings = Settings(data_dir=tmp_path, mqtt_url=MQTT)
    with pytest.raises(MissingSigningKey, match="signing key .* is missing.*--create-key"):
        with TestClient(create_app(settings, with_bridge=False)):
            pass
    assert not settings.key_file.exists()


def test_serve_says_why_and_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TT_MQTT_URL", MQTT)
    r = CliRunner().invoke(cli, ["serve"])
    assert r.exit_code == 2
    assert "signing key" in r.output and "is missing" in r.output and "truyenthanh serve --create-key" in r.output
    assert not (tmp_path / "keys").exists()


def test_told_to_it_creates_one_private_key_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, mqtt_url=MQTT, create_key=True)
    with TestClient(create_app(settings, with_bridge=False)) as c:
        first = c.app.state.signer.public_key  # type: ignore[attr-defined]
    assert stat.S_IMODE(settings.key_file.stat().st_mode) == 0o600
    assert not list(settings.key_file.parent.glob("*.next.pem"))  # no staging file left behind
    # Started again, with or without being told: the same key, never a new one.
    for told in (True, False):
        with TestClient(create_app(settings.model_copy(update={"create_key": told}), with_bridge=False)) as c:
            assert c.app.state.signer.public_key == first  # type: ignore[attr-defined]
    assert load_signing_key(settings)[1] == first


def test_the_demo_and_provision_create_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = Settings(demo=True, data_dir=tmp_path / "demo")
    with TestClient(create_app(demo, with_bridge=False)):
        pass
    assert demo.key_file.exists()
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path / "prod"))
    monkeypatch.setenv("TT_MQTT_URL", MQTT)
    r = CliRunner().invoke(cli, ["provision", "--out", str(tmp_path / "broker")])
    assert r.exit_code == 0, r.output
    assert "fingerprint" in r.output and (tmp_path / "prod" / "keys" / "controller-ed25519.pem").exists()


def test_rotate_key_from_the_command_line(seeded: Seeded, monkeypatch: pytest.MonkeyPatch) -> None:
    before = seeded.public_key
    token = admin_token(seeded.engine)
    monkeypatch.setenv("TT_DATA_DIR", str(seeded.settings.data_dir))
    with live_server(create_app(seeded.settings, bridge=InMemoryBridge)) as url:
        r = CliRunner().invoke(cli, ["rotate-key", "--grace-h", "2", "--controller", url, "--token", token])
        assert r.exit_code == 0, r.output
        after = load_signing_key(seeded.settings)[1]
        assert after != before and f"signing key rotated: fingerprint {key_fingerprint(after)}" in r.output
        r = CliRunner().invoke(cli, ["rotate-key", "--controller", url, "--token", "not-a-token"])
        assert r.exit_code == 1 and "answered 401" in r.output
    with live_server(create_app(seeded.settings, with_bridge=False)) as url:
        r = CliRunner().invoke(cli, ["rotate-key", "--controller", url, "--token", token])
        assert r.exit_code == 1 and "503" in r.output and "MQTT bridge is not running" in r.output
    assert load_signing_key(seeded.settings)[1] == after  # nothing changed without a bridge
