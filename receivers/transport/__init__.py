"""How the agent and the controller reach the broker, apart from what they say over it.

- `Link` (`mqtt.py`): one MQTT session on aiomqtt that keeps itself up — its own credentials, a last will,
  reconnection with capped exponential backoff and full jitter — handing every message to a callback.
- `backoff_delay`: the pure jitter function, also used for HTTP retries (plans, media).

Importing this package loads neither the agent nor the controller: both sides use it.
"""

from .mqtt import Link, backoff_delay

__all__ = ["Link", "backoff_delay"]
