"""Which URLs of the controller and the broker travel in clear text to another machine.

- `is_loopback_host(host)`: `localhost` or a loopback address (127.0.0.0/8, ::1): traffic that never
  leaves the machine.
- `cleartext_problem(url, name)`: why `url` (named `name` in the message) must not be used without TLS —
  `http://` or `mqtt://` to a host that is not loopback — or None when it is fine.

Both sides refuse such URLs outside the demo: the controller's settings (`TT_CONTROLLER_URL`,
`TT_MQTT_URL`, `TT_RECEIVER_MQTT_URL`) and the agent's (`controller_url`, `mqtt_url`), unless told
`allow_cleartext` — for a closed private network (a VPN that already encrypts, a LAN with no way out), where
a broker password and the receivers' reports in clear text harm nobody.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

CLEARTEXT_SCHEMES = {"http": "https", "mqtt": "mqtts"}


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cleartext_problem(url: str, name: str) -> str | None:
    parts = urlsplit(url)
    secure = CLEARTEXT_SCHEMES.get(parts.scheme)
    if secure is None or is_loopback_host(parts.hostname or ""):
        return None
    return (f"{name} is {parts.scheme}:// to {parts.hostname}, another machine: passwords and commands would "
            f"cross the network in clear text. Use {secure}://, or allow clear text explicitly on a closed "
            "private network")
