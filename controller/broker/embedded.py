"""The embedded demo broker: amqtt, in its own process, configured by `files.write_amqtt`.

Run as `python -m controller.broker.embedded CONFIG`. Production uses Mosquitto; the protocol keeps to
MQTT 3.1.1 features so that both brokers serve it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from amqtt.broker import Broker


async def serve(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="[broker] %(levelname)s %(message)s")
    asyncio.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
