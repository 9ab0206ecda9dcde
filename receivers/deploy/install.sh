#!/usr/bin/env bash
# Install or upgrade the truyenthanh receiver agent on Raspberry Pi OS (Bookworm). Run as root:
#
#   sudo ./install.sh [--controller URL --code CODE] PACKAGE
#
# PACKAGE is what `pip install` accepts: the wheel (truyenthanh-0.1.0-py3-none-any.whl), a checkout, ...
# With --controller and --code (the one-time enrolment code from the operator), the Pi also enrols:
# it fetches its credentials and the controller's public key into /etc/truyenthanh/agent.toml, and the
# agent starts. Running the script again is safe: it upgrades the package, refreshes the systemd unit
# and restarts the agent if it is enrolled.
set -euo pipefail

PREFIX=/opt/truyenthanh
CONFIG=/etc/truyenthanh/agent.toml
UNIT=truyenthanh-agent.service
AGENT_USER=truyenthanh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
"$PREFIX/bin/pip" install --quiet --upgrade "$package"
ln -sfn "$PREFIX/bin/truyenthanh" /usr/local/bin/truyenthanh

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
    "$PREFIX/bin/truyenthanh" receiver enroll --controller "$controller" --code "$code" \
        --config "$CONFIG" --owner "$AGENT_USER"
fi

if [[ -f $CONFIG ]]; then
    systemctl enable "$UNIT"
    systemctl restart "$UNIT"
    echo "==> the agent is running; its log: journalctl -u ${UNIT%.service} -f"
else
    echo "==> installed, not enrolled. Ask the operator for an enrolment code, then run:"
    echo "    sudo truyenthanh receiver enroll --controller URL --code CODE"
    echo "    sudo systemctl enable --now ${UNIT%.service}"
fi
