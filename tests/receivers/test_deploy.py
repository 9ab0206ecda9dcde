"""The Raspberry Pi deployment files: the systemd unit is valid for systemd and runs the agent's own
command (`truyenthanh-agent run`) as its own user with the config enrolment writes, and brings it back
after any exit; the install script installs the agent's distribution, enrols with `truyenthanh-agent
enroll`, is shellcheck-clean and refuses bad arguments before it touches the system."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parents[2] / "receivers" / "deploy"
UNIT = DEPLOY / "truyenthanh-agent.service"
INSTALL = DEPLOY / "install.sh"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_the_enrolled_agent_as_its_own_user() -> None:
    service = unit()["Service"]
    assert service["ExecStart"] == "/opt/truyenthanh/bin/truyenthanh-agent run --config /etc/truyenthanh/agent.toml"
    assert (service["User"], service["StateDirectory"]) == ("truyenthanh", "truyenthanh")
    # `always`, not `on-failure`: `restart-agent` makes the agent exit cleanly (status 0) to be started again.
    assert service["Restart"] == "always" and float(service["RestartSec"]) > 0
    assert unit()["Unit"]["ConditionPathExists"] == "/etc/truyenthanh/agent.toml"  # not enrolled: not started
    # Nothing that would hide the sound card or the GPIO chips from the agent.
    for closes_devices in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"):
        assert closes_devices not in service
    assert "WantedBy" in unit()["Install"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # `verify` also checks that ExecStart exists, which it does only on an installed Pi.
    copy = tmp_path / UNIT.name
    true = shutil.which("true") or "/bin/true"
    copy.write_text(UNIT.read_text().replace("/opt/truyenthanh/bin/truyenthanh-agent", true))
    done = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and UNIT.name not in done.stderr, done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_the_install_script_is_shellcheck_clean() -> None:
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(("args", "message"), [
    ([], "PACKAGE"),
    (["--code", "7KQ2-M9XD-4HTB-N3PW", "pkg.whl"], "give --controller and --code together"),
    (["--controller"], "--controller needs the controller's URL"),
    (["a.whl", "b.whl"], "one PACKAGE only"),
    (["--reboot", "a.whl"], "unknown option --reboot"),
])
def test_the_install_script_refuses_bad_arguments_before_doing_anything(args: list[str], message: str) -> None:
    done = subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and message in done.stderr
    assert "==>" not in done.stdout  # no step started


def test_the_install_script_explains_itself() -> None:
    done = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "--controller URL --code CODE" in done.stdout and "Bookworm" in done.stdout


def test_the_install_script_installs_and_enrols_with_the_agents_own_command() -> None:
    script = INSTALL.read_text()
    assert "truyenthanh-agent enroll --controller" in script and "bin/truyenthanh-agent\" enroll" in script
    assert "receiver enroll" not in script  # the controller's command is not on a Pi
    assert "--find-links" in script  # a directory of wheels, such as `make agent-wheelhouse` builds
    assert '"$package/receivers"' in script  # a checkout: only its agent part
    assert "pip\" uninstall --quiet --yes truyenthanh" in script  # an older full install is replaced
