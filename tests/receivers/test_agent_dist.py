"""The Pi agent's own distribution, `truyenthanh-agent` (receivers/pyproject.toml): it installs from the
wheelhouse `make agent-wheelhouse` builds, with no package index, into a fresh venv; its command works
there; and none of the controller's or the development rig's heavy dependencies come with it. Also, in
this venv: importing the agent's command line loads neither the controller, the simulator nor `audio`."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
WHEELHOUSE = REPO / "var" / "agent-wheelhouse"
# The controller's and the rig's dependencies, by import name: none may reach a Pi.
NOT_ON_A_PI = ["fastapi", "uvicorn", "alembic", "amqtt", "lxml", "signxml", "gtts", "sqlmodel", "pydub",
               "typer", "controller", "firmware_sim", "audio", "devrig", "schedules"]


def offline_pip_env() -> dict[str, str]:
    """No index, no configured find-links, no user config: only the wheelhouse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = sorted(WHEELHOUSE.glob("truyenthanh_agent-*.whl"))
    if not wheels:
        pytest.skip(f"no agent wheelhouse in {WHEELHOUSE}: run `make agent-wheelhouse`")
    target = tmp_path_factory.mktemp("agent-venv")
    venv.create(target, with_pip=True)
    done = subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
                           str(WHEELHOUSE), "truyenthanh-agent"], capture_output=True, text=True, timeout=300,
                          env=offline_pip_env(), cwd=target)
    assert done.returncode == 0, done.stderr
    return target


def test_the_agent_command_works_in_its_own_venv(agent_venv: Path) -> None:
    done = subprocess.run([str(agent_venv / "bin" / "truyenthanh-agent"), "--help"], capture_output=True,
                          text=True, timeout=60, cwd=agent_venv)
    assert done.returncode == 0, done.stderr
    for command in ("run", "enroll", "self-test", "status"):
        assert command in done.stdout


def test_nothing_of_the_controller_comes_along(agent_venv: Path) -> None:
    probe = ("import importlib.util, json; "
             f"print(json.dumps([m for m in {NOT_ON_A_PI!r} if importlib.util.find_spec(m) is not None]))")
    done = subprocess.run([str(agent_venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=agent_venv)  # not the repository: its packages must not be found
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    # What it does have: the agent, importable as a whole.
    done = subprocess.run([str(agent_venv / "bin" / "python"), "-c", "import receivers.agent.cli, gpiozero"],
                          capture_output=True, text=True, timeout=60, cwd=agent_venv)
    assert done.returncode == 0, done.stderr


def test_the_agent_cli_loads_no_controller_code() -> None:
    probe = ("import sys, receivers.agent.cli; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'controller', 'firmware_sim', 'audio', 'devrig', 'schedules', 'fastapi', 'sqlmodel', 'pydub', "
             "'typer'}))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_transport_loads_no_agent() -> None:
    probe = "import sys, receivers.transport; print(sorted(m for m in sys.modules if m.startswith('receivers.')))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "receivers.agent" not in done.stdout
