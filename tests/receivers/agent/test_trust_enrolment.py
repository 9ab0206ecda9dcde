"""Trust on first use, made safe (issue 12): the enrolment code staff hand out ends with the fingerprint of
the controller's signing key, and `truyenthanh-agent enroll` refuses an answer whose key does not match it —
so a man in the middle (a false controller, a hijacked name or Wi-Fi) cannot give a receiver a key or broker
of his own. A code whose fingerprint is not the controller's is refused by the controller before it is used."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from typer.testing import CliRunner

from controller.cli import app as cli
from controller.config import Settings
from receivers.agent import AgentSettings
from receivers.agent.cli import main as agent_cli
from receivers.protocol import generate_private_key_pem, public_key_b64
from receivers.protocol.enrolment import ENROL_PATH, key_fingerprint, split_code
from tests.live_server import live_server

RID = "tra-ka-thon-2-1"



def enrolment_code() -> str:
    r = CliRunner().invoke(cli, ["receiver", "enrolment-code", RID])
    assert r.exit_code == 0, r.output
    return r.output.split(": ", 1)[1].split()[0]


def enroll(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = agent_cli(["enroll", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def man_in_the_middle(real: str, **swap: str) -> FastAPI:
    """Relays enrolment to the real controller and changes its answer (another key, another broker)."""
    app = FastAPI()

    @app.post(ENROL_PATH)
    async def relay(request: Request) -> JSONResponse:
        async with httpx.AsyncClient() as client:
            r = await client.post(real + ENROL_PATH, content=await request.body(),
                                  headers={"content-type": "application/json"})
        return JSONResponse({**r.json(), **swap}, status_code=r.status_code)

    return app


def test_the_code_carries_the_controllers_key_fingerprint(controller: str, env: Settings) -> None:
    code = enrolment_code()
    parts = split_code(code)
    assert parts is not None and parts[1] == key_fingerprint(public_key_b64(env.key_file.read_bytes()))
    r = CliRunner().invoke(cli, ["receiver", "enrolment-code", RID])
    assert f"fingerprint of the controller's key, {parts[1]}" in r.output


def test_a_false_key_from_a_man_in_the_middle_is_refused_and_nothing_is_written(
        controller: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: the agent took whatever key the answer held (trust on first use), so whoever answered in the
    # controller's place chose the key the receiver would obey for ever.
    forged = public_key_b64(generate_private_key_pem())
    config = tmp_path / "agent.toml"
    with live_server(man_in_the_middle(controller, controller_public_key=forged,
                                       mqtt_url="mqtts://evil.example:8883")) as mitm:
        code, out = enroll(capsys, "--controller", mitm, "--code", enrolment_code(), "--config", str(config),
                           "--state-dir", str(tmp_path / "state"))
    assert code == 1
    assert f"the controller's key has fingerprint {key_fingerprint(forged)}, not " in out
    assert "nothing was written" in out
    assert not config.exists() and not (tmp_path / "state").exists()

    # The real controller, the same way: enrolled, with the key the code names.
    real_code = enrolment_code()
    code, out = enroll(capsys, "--controller", controller, "--code", real_code, "--config", str(config),
                       "--state-dir", str(tmp_path / "state"))
    assert code == 0, out
    settings = AgentSettings.from_file(config)
    assert key_fingerprint(settings.controller_public_key) == split_code(real_code)[1]  # type: ignore[index]


def test_a_code_without_a_fingerprint_is_refused_before_anything_is_sent(
        controller: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = split_code(enrolment_code())[0]  # type: ignore[index]
    code, out = enroll(capsys, "--controller", controller, "--code", secret, "--config", str(tmp_path / "a.toml"))
    assert code == 2 and "the last four groups are the fingerprint of the controller's key" in out


def test_a_code_for_another_key_is_refused_by_the_controller_and_stays_usable(controller: str) -> None:
    code = enrolment_code()
    secret, _ = split_code(code)  # type: ignore[misc]
    other = key_fingerprint(public_key_b64(generate_private_key_pem()))  # e.g. made before a key rotation
    r = httpx.post(controller + ENROL_PATH, json={"code": f"{secret}-{other}"})
    assert r.status_code == 403 and "another signing key" in r.json()["detail"]
    assert httpx.post(controller + ENROL_PATH, json={"code": code}).status_code == 200
