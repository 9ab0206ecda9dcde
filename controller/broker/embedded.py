"""The embedded demo broker: amqtt, in its own process, configured by `files.write_amqtt`.

Run as `python -m controller.broker.embedded CONFIG`. Production uses Mosquitto; the protocol keeps to
MQTT 3.1.1 features so that both brokers serve it.

`GuardedBroker` closes three holes amqtt 0.12 leaves open, so that the demo broker holds the same rules as
the generated `mosquitto.conf`:

- **Login before session.** amqtt looks up (and, with a clean session, deletes) the session of the client id
  in a CONNECT, and kicks a connected client with that id off, before it checks the password. Here the
  password is checked first, and the session is then the account's own: the client id becomes the user name
  whatever the client sent, as Mosquitto's `use_username_as_clientid` does. A receiver's password cannot
  take over the controller's session or another receiver's, nor reach their subscriptions or queues.
- **Retained messages obey the read rules.** amqtt sends a connecting client the retained messages matching
  *every* client's subscriptions, and a subscriber every retained message its filter matches, unchecked;
  here only those of its own subscriptions that its account may receive (`amqtt_acl.AccountAcl`).
- **One password check per CONNECT.** amqtt checks the login again after the check above; the first answer
  is given (each check is a PBKDF2-SHA512 on the event loop).
- **Packet size.** A packet whose payload exceeds `max_packet_size` closes the connection before it is read
  into memory, as Mosquitto's `max_packet_size` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from amqtt.adapters import ReaderAdapter, StreamReaderAdapter, StreamWriterAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

log = logging.getLogger(__name__)
# Our own settings in the broker's config file, outside amqtt's keys.
OWN_SECTION = "truyenthanh"
# Set on a session whose login `GuardedBroker` has just checked (a refused login never gets a session).
LOGIN_CHECKED = "_tt_login_checked"


class PacketTooLarge(Exception):
    """Not an MQTTError: amqtt's reader loop discards those and reads on, here the connection must end."""


class LimitedReader(StreamReaderAdapter):
    """A TCP stream that refuses to read any single packet field longer than `limit` bytes. amqtt reads a
    PUBLISH payload in one `read(remaining length)`, so this stops an oversized message before buffering."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        super().__init__(reader)
        self.limit = limit

    async def read(self, n: int = -1) -> bytes:
        if self.limit and n > self.limit:
            raise PacketTooLarge(f"packet field of {n} bytes, over the {self.limit} allowed")
        return await super().read(n)


class GuardedBroker(Broker):
    def __init__(self, config: dict[str, Any], *, max_packet_size: int = 0) -> None:
        super().__init__(config)
        self.max_packet_size = max_packet_size

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        await self._client_connected(listener_name, LimitedReader(reader, self.max_packet_size),
                                     StreamWriterAdapter(writer))

    async def _initialize_client_session(self, reader: ReaderAdapter, writer: WriterAdapter, remote_address: str,
                                         remote_port: int) -> tuple[BrokerProtocolHandler, Session]:
        try:
            handler, incoming = await BrokerProtocolHandler.init_from_connect(reader, writer, self.plugins_manager)
        except (PacketTooLarge, MQTTError) as e:
            await writer.close()
            raise MQTTError(f"{remote_address}:{remote_port}: {e}") from None
        if not incoming.username or not await self._check_password(incoming):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"{remote_address}:{remote_port}: login refused for {incoming.username!r}")
        if incoming.client_id != incoming.username:
            log.info("client id %r of %r replaced by its user name", incoming.client_id, incoming.username)
        incoming.client_id = incoming.username
        session = incoming
        old = self._sessions.get(incoming.client_id)
        if incoming.clean_session:
            if old is not None and old[0].transitions.is_connected():
                # Take over as Mosquitto does: the old connection ends (and reconnects, resubscribing) rather
                # than staying connected with its subscriptions deleted under it.
                await old[1].handle_connection_closed()
                await old[1].stop()
            await self._delete_session(incoming.client_id)
            incoming.parent = 0
        elif old is not None:
            # The account's own persistent session, with this connection's will, keepalive and credentials.
            session = old[0]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password"):
                setattr(session, attr, getattr(incoming, attr))
            session.parent = 1
        else:
            incoming.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        setattr(session, LOGIN_CHECKED, True)  # noqa: B010  # for amqtt's own `_authenticate` just after
        return handler, session

    async def _check_password(self, session: Session) -> bool:
        return await super()._authenticate(session, None)  # amqtt ignores the listener

    async def _authenticate(self, session: Session, listener: Any) -> bool:
        """amqtt checks the login again after `_initialize_client_session` checked it: the answer then, once,
        rather than a second PBKDF2-SHA512 on the event loop for every CONNECT."""
        if getattr(session, LOGIN_CHECKED, False):
            setattr(session, LOGIN_CHECKED, False)  # noqa: B010
            return True
        return await self._check_password(session)

    async def _publish_retained_messages_for_subscription(self, subscription: tuple[str, int],
                                                          session: Session) -> None:
        topic_filter, qos = subscription
        if all(s.client_id != session.client_id for s, _ in self._subscriptions.get(topic_filter, [])):
            return  # another client's subscription (amqtt walks all of them when a client connects)
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        for topic, retained in list(self._retained_messages.items()):
            if self._matches(topic, topic_filter) and await self._topic_filtering(session, topic, Action.RECEIVE):
                tasks.append(asyncio.ensure_future(
                    handler.mqtt_publish(retained.topic, retained.data, min(qos, retained.qos or qos), retain=True)))
        if tasks:
            await asyncio.wait(tasks)


async def serve(config_path: Path) -> None:
    config = json.loads(config_path.read_text(encoding="utf-8"))
    own = config.pop(OWN_SECTION, {})
    broker = GuardedBroker(config, max_packet_size=int(own.get("max_packet_size", 0)))
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
