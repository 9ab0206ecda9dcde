"""Clear text off the machine is refused (issue 12): outside the demo the controller does not start with an
`http://` controller URL or an `mqtt://` broker URL to another host, and the agent refuses the same in its
config and at enrolment — unless clear text is allowed explicitly (a closed private network). Loopback stays
allowed: the demo, the development rig and the tests talk to 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from controller.cli import app as cli
from controller.config import Settings
from receivers.agent import AgentSettings
from receivers.agent.cli import main as agent_cli
from receivers.protocol import generate_private_key_pem, public_key_b64

SECRET = "pw-7f3a-never-shown"


@pytest.mark.parametrize(("name", "field", "url"), [
    ("TT_MQTT_URL", "mqtt_url", f"mqtt://controller:{SECRET}@10.0.0.5:1883"),
    ("TT_RECEIVER_MQTT_URL", "receiver_mqtt_url", "mqtt://broker.example:1883"),
    ("TT_CONTROLLER_URL", "controller_url", "http://truyenthanh.example"),
])
def test_the_controller_refuses_clear_text_to_another_machine(name: str, field: str, url: str) -> None:
    # Before: all three were accepted, and receivers' passwords crossed the 4G network in clear text.
    values: dict[str, Any] = {field: url}
    with pytest.raises(ValidationError) as refused:
        Settings(**values)
    message = str(refused.value)
    assert f"{name} is {url.split(':')[0]}:// to " in message and "TT_ALLOW_CLEARTEXT=1" in message
    assert SECRET not in message  # the refusal never prints the broker password
    Settings(**values, allow_cleartext=True)  # a closed private network, said explicitly
    Settings(**values, demo=True)


@pytest.mark.parametrize("url", ["mqtt://controller:pw-7f3a@127.0.0.1:1883", "mqtt://c:pw-7f3a@localhost:1883",
                                 "mqtt://c:pw-7f3a@[::1]:1883", "mqtts://c:pw-7f3a@broker.example:8883"])
def test_loopback_and_tls_are_fine(url: str) -> None:
    Settings(mqtt_url=url, controller_url="https://truyenthanh.example")
    Settings(mqtt_url=url, controller_url="http://127.0.0.1:8080")


def test_serve_says_why_and_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TT_MQTT_URL", f"mqtt://controller:{SECRET}@10.0.0.5:1883")
    r = CliRunner().invoke(cli, ["serve", "--create-key"])
    assert r.exit_code == 2
    assert "TT_MQTT_URL is mqtt:// to 10.0.0.5, another machine" in r.output and "Use mqtts://" in r.output
    assert SECRET not in r.output and not (tmp_path / "keys").exists()


def agent_values(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {"receiver_id": "tra-ka-thon-2-1", "commune": "tra-ka", "username": "tra-ka-thon-2-1",
            "password": SECRET, "controller_public_key": public_key_b64(generate_private_key_pem()),
            "state_dir": str(tmp_path / "state"), **overrides}


@pytest.mark.parametrize(("field", "url"), [("mqtt_url", "mqtt://10.0.0.5:1883"),
                                            ("controller_url", "http://truyenthanh.example")])
def test_the_agent_refuses_clear_text_unless_allowed(tmp_path: Path, field: str, url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AgentSettings(**agent_values(tmp_path, **{field: url}))
    message = str(refused.value)
    assert f"{field} is {url.split(':')[0]}:// to" in message and "allow_cleartext = true" in message
    assert SECRET not in message
    AgentSettings(**agent_values(tmp_path, **{field: url}, allow_cleartext=True))
    AgentSettings(**agent_values(tmp_path, mqtt_url="mqtt://127.0.0.1:1883", controller_url="http://127.0.0.1:8080"))


def test_the_agent_will_not_run_on_a_clear_text_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.toml"
    values = agent_values(tmp_path, mqtt_url="mqtt://10.0.0.5:1883", hardware="pi")
    config.write_text("".join(f'{k} = "{v}"\n' for k, v in values.items()))
    with pytest.raises(SystemExit) as exited:
        agent_cli(["run", "--config", str(config)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "mqtt_url is mqtt:// to 10.0.0.5" in err and "allow_cleartext = true" in err and SECRET not in err


def test_enroll_refuses_a_clear_text_controller_before_sending_the_code(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # 192.0.2.1 (TEST-NET-1) is never reached: the refusal comes before any connection.
    with pytest.raises(SystemExit) as exited:
        agent_cli(["enroll", "--controller", "http://192.0.2.1", "--code", "ABCD-EFGH-JKMN-PQRS-ABCD-EFGH-JKMN-PQRS",
                   "--config", str(tmp_path / "agent.toml")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the controller's URL is http:// to 192.0.2.1" in err and "--allow-cleartext" in err
    assert not (tmp_path / "agent.toml").exists()


def test_receiver_config_refuses_a_clear_text_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TT_MQTT_URL", "mqtts://controller:pw-7f3a@broker.example:8883")
    r = CliRunner().invoke(cli, ["receiver-config", "tra-ka-thon-2-1", "--out", str(tmp_path / "agent.toml"),
                                 "--mqtt-url", "mqtt://10.0.0.5:1883"])
    assert r.exit_code == 2 and "mqtt:// to 10.0.0.5" in r.output and not (tmp_path / "agent.toml").exists()
