#!/usr/bin/env bash
# Install or upgrade the truyenthanh receiver agent on Raspberry Pi OS (Bookworm). Run as root:
#
#   sudo ./install.sh [--controller URL --code CODE] PACKAGE
#
# PACKAGE is the agent's own distribution, truyenthanh-agent (never the controller's): its wheel
# (truyenthanh_agent-0.1.0-py3-none-any.whl), a directory of wheels holding it, a checkout of the
# repository (its receivers/ part is installed), or what else `pip install` accepts.
# With --controller and --code (the one-time code from the operator), the Pi also enrols:
# `truyenthanh-agent enroll` writes /etc/truyenthanh/agent.toml, and the agent starts. Running the
# script again is safe: it upgrades the package, refreshes the systemd unit, restarts an enrolled agent.
set -euo pipefail

PREFIX=/opt/truyenthanh
CONFIG=/etc/truyenthanh/agent.toml
UNIT=truyenthanh-agent.service
AGENT_USER=truyenthanh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

die() {
    echo "install.sh: $*" >&2
    exit 1
}

controller=""
code=""
package=""
while (($# > 0)); do
    case $1 in
        --controller)
            (($# >= 2)) || die "--controller needs the controller's URL"
            controller=$2
            shift 2
            ;;
        --code)
            (($# >= 2)) || die "--code needs the enrolment code"
            code=$2
            shift 2
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option $1 (see --help)" ;;
        *)
            [[ -z $package ]] || die "one PACKAGE only (got '$package' and '$1')"
            package=$1
            shift
            ;;
    esac
done
[[ -n $package ]] || { usage >&2; exit 2; }
if [[ -n $controller && -z $code ]] || [[ -z $controller && -n $code ]]; then
    die "give --controller and --code together"
fi
((EUID == 0)) || die "run as root (sudo $0 ...)"
if [[ $package != *://* && ! -e $package ]] && [[ $package == */* || $package == *.whl ]]; then
    die "no such file: $package"
fi
if [[ -f $package/receivers/pyproject.toml ]]; then # a checkout of the repository: the agent's part only
    pip_args=("$package/receivers")
elif [[ -d $package && ! -f $package/pyproject.toml ]]; then # a directory of wheels: the agent from it
    pip_args=(--find-links "$package" truyenthanh-agent)
else
    pip_args=("$package")
fi

echo "==> system packages: python3-venv ffmpeg alsa-utils"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3-venv ffmpeg alsa-utils

echo "==> user $AGENT_USER"
if ! id -u "$AGENT_USER" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/truyenthanh --no-create-home \
        --shell /usr/sbin/nologin --comment "truyenthanh receiver agent" "$AGENT_USER"
fi
for group in audio gpio; do # sound card; amplifier relay (gpio exists on Raspberry Pi OS only)
    if getent group "$group" >/dev/null; then
        usermod --append --groups "$group" "$AGENT_USER"
    fi
done

echo "==> $PREFIX"
[[ -x $PREFIX/bin/python ]] || python3 -m venv "$PREFIX"
if "$PREFIX/bin/pip" show --quiet truyenthanh >/dev/null 2>&1; then # installed by an older install.sh
    "$PREFIX/bin/pip" uninstall --quiet --yes truyenthanh
    [[ $(readlink /usr/local/bin/truyenthanh || true) != "$PREFIX/bin/truyenthanh" ]] || rm -f /usr/local/bin/truyenthanh
fi
"$PREFIX/bin/pip" install --quiet --upgrade "${pip_args[@]}"
ln -sfn "$PREFIX/bin/truyenthanh-agent" /usr/local/bin/truyenthanh-agent

echo "==> $UNIT"
unit=$HERE/$UNIT
if [[ ! -f $unit ]]; then # the script was copied alone: use the unit shipped in the package
    unit=$("$PREFIX/bin/python" -c \
        'import pathlib, receivers; print(pathlib.Path(receivers.__file__).parent / "deploy" / "truyenthanh-agent.service")')
fi
install -m 0644 "$unit" "/etc/systemd/system/$UNIT"
install -d -m 0750 -o root -g "$AGENT_USER" "$(dirname "$CONFIG")"
systemctl daemon-reload

if [[ -n $code ]]; then
    echo "==> enrolment with $controller"
    "$PREFIX/bin/truyenthanh-agent" enroll --controller "$controller" --code "$code" \
        --config "$CONFIG" --owner "$AGENT_USER"
fi

if [[ -f $CONFIG ]]; then
    systemctl enable "$UNIT"
    systemctl restart "$UNIT"
    echo "==> the agent is running; its log: journalctl -u ${UNIT%.service} -f"
else
    echo "==> installed, not enrolled. Ask the operator for an enrolment code, then run:"
    echo "    sudo truyenthanh-agent enroll --controller URL --code CODE"
    echo "    sudo systemctl enable --now ${UNIT%.service}"
fi
