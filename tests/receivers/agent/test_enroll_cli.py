"""`truyenthanh-agent enroll` as an installer runs it on a Pi, against a controller served over HTTP:
it writes a config the agent loads (mode 0600), or says clearly why not and writes nothing. The operator's
side (`truyenthanh receiver enrolment-code`) makes the codes."""

from __future__ import annotations

import os
import pwd
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from controller.broker.passwords import verify_password
from controller.cli import app as cli
from controller.config import Settings
from controller.db import make_engine
from controller.db.models import Receiver
from controller.provision import ensure_signing_key
from receivers.agent import AgentSettings
from receivers.agent.cli import main as agent_cli
from receivers.protocol.enrolment import key_fingerprint

RID = "tra-ka-thon-2-1"
ANY_CODE = "ABCD-EFGH-JKMN-PQRS-ABCD-EFGH-JKMN-PQRS"  # a secret and a key fingerprint, in the form of a code



def enrolment_code(rid: str = RID) -> str:
    r = CliRunner().invoke(cli, ["receiver", "enrolment-code", rid])
    assert r.exit_code == 0, r.output
    assert f"enrolment code for {rid}: " in r.output and "truyenthanh-agent enroll --controller" in r.output
    return r.output.split(": ", 1)[1].split()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Enroll = Callable[..., tuple[int, str]]


@pytest.fixture
def enroll(capsys: pytest.CaptureFixture[str]) -> Enroll:
    """`truyenthanh-agent enroll ARGS` → its exit status and what it printed (stdout and stderr)."""
    def run(*args: str) -> tuple[int, str]:
        try:
            code = agent_cli(["enroll", *args])
        except SystemExit as e:  # argparse's usage errors
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err
    return run


def test_enroll_writes_a_private_config_the_agent_loads(controller: str, env: Settings, tmp_path: Path,
                                                        enroll: Enroll) -> None:
    config = tmp_path / "etc" / "truyenthanh" / "agent.toml"
    code, out = enroll("--controller", controller + "/", "--code", enrolment_code(), "--config", str(config),
                       "--state-dir", str(tmp_path / "state"))
    assert code == 0, out
    assert f"wrote {config} (mode 0600" in out and "systemctl enable --now truyenthanh-agent" in out
    assert "warning: TT_BROKER_RELOAD" not in out  # no broker_dir: the installer is told to wait instead
    assert "warning: The controller does not manage the broker's files" in out
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    settings = AgentSettings.from_file(config)
    assert (settings.receiver_id, settings.commune, settings.username) == (RID, "tra-ka", RID)
    assert settings.broker == ("broker.example", 8883, True) and settings.state_dir == tmp_path / "state"
    assert settings.controller_public_key == ensure_signing_key(env)[1]
    engine = make_engine(env.db_url)
    with Session(engine) as s:
        receiver = s.get(Receiver, RID)
        assert receiver is not None and verify_password(settings.password, receiver.mqtt_password_hash or "")
    engine.dispose()


def test_a_wrong_code_shows_the_controllers_reason_and_writes_nothing(controller: str, env: Settings,
                                                                      tmp_path: Path, enroll: Enroll) -> None:
    config = tmp_path / "agent.toml"
    wrong = f"ABCD-EFGH-JKMN-PQRS-{key_fingerprint(ensure_signing_key(env)[1])}"
    code, out = enroll("--controller", controller, "--code", wrong, "--config", str(config))
    assert code == 1 and "the controller refused the code: Unknown enrolment code" in out
    real = enrolment_code()
    assert enroll("--controller", controller, "--code", real, "--config", str(config))[0] == 0
    config.unlink()
    code, out = enroll("--controller", controller, "--code", real, "--config", str(config))
    assert code == 1 and "already used" in out
    assert not config.exists()


def test_an_unreachable_controller_is_a_clear_error(tmp_path: Path, enroll: Enroll) -> None:
    config = tmp_path / "agent.toml"
    code, out = enroll("--controller", f"http://127.0.0.1:{free_port()}", "--code", ANY_CODE,
                       "--config", str(config))
    assert code == 1 and "cannot reach the controller at http://127.0.0.1:" in out
    code, out = enroll("--controller", "tt.example", "--code", ANY_CODE, "--config", str(config))
    assert code == 2 and "http://" in out
    assert not config.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_the_file_goes_to_the_agents_user(controller: str, tmp_path: Path, enroll: Enroll) -> None:
    config = tmp_path / "agent.toml"
    code, out = enroll("--controller", controller, "--code", enrolment_code(), "--config", str(config),
                       "--owner", "nobody")
    assert code == 0, out
    assert config.stat().st_uid == pwd.getpwnam("nobody").pw_uid and "owner nobody" in out
    unused = enrolment_code()
    code, out = enroll("--controller", controller, "--code", unused, "--config", str(config),
                       "--owner", "no-such-user-here")
    assert code == 2 and "no user 'no-such-user-here'" in out
    assert enroll("--controller", controller, "--code", unused, "--config", str(config))[0] == 0  # not spent
