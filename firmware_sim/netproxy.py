"""`LinkProxy`: a TCP proxy on 127.0.0.1 in front of a real server (the broker or the media server) that the
tests use to break the receiver's link in the ways a rural 4G link breaks. Use one proxy per server.

Link faults (every connection, now and later):

- `blackhole()` stops forwarding in both directions but keeps every socket open, so the far side sees
  silence rather than a closed connection — the broker only finds out through the MQTT keepalive, as with a
  4G link that drops. `restore()` forwards again; connections made while blackholed are held silent too.
- `cut()` closes every open connection abruptly (a power cut at the router); new connections still work.
- `slow(bytes_per_s)` limits the link's rate. The rate belongs to the link, not to a connection: two
  downloads at once share it.

Faults for the next connection only (one-shot; the connection after it is clean unless asked again):

- `corrupt(after_bytes, count)` flips (XOR 0xFF) `count` bytes of the server→client stream, starting
  `after_bytes` into it. Offsets count from the first byte of the response, headers included: an HTTP
  response's headers are well under 1 KB, so `after_bytes=5000` lands in the body of any larger file, and
  `after_bytes=len(headers) + k` hits body byte k exactly.
- `cut_after(downstream_bytes)` delivers exactly that many server→client bytes, then ends the connection
  (FIN to the client once those bytes are flushed, reset towards the server): a download that drops mid-way,
  which the client must resume with an HTTP Range request.

A side that closes its connection is passed on as a half-close (FIN) once the bytes before it are
delivered, so the tail of a response is never lost; a reset on one side resets the other.

"Next connection" means the next one the proxy accepts and connects to the server. An HTTP client that keeps
connections alive may send its next request down an older, clean connection; open a fresh one (or use
`Connection: close`) when a request must meet the fault.

MQTT faults (`LinkProxy(..., mqtt=True)`: the proxy then reads the MQTT packets crossing it, both ways):

- `lose_puback(topic_part)`: the next QoS 1 PUBLISH from the broker whose topic contains `topic_part` is
  delivered to the client, but the client's PUBACK for it never reaches the broker: the proxy drops it and
  resets the connection at that moment. The broker still holds the message as unacknowledged and sends it
  again, flagged DUP, when the client's session comes back. One-shot. `published` lists every PUBLISH the
  broker sent down (topic, DUP flag), to count deliveries on the wire; `pubacks_lost` counts the drops.

Counters, over the proxy's life: `connections` accepted, `bytes_down` (server→client) and `bytes_up`
(client→server) as handed to the far side's socket, after corruption and truncation.

The proxy runs on the event loop that called `start()`; from another thread, call its methods through
`loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

_READ = 65536
_SLACK_S = 0.02


class _Pace:
    """One direction of the link at a fixed rate, shared by every connection crossing it.

    Each chunk is delivered once the link would have finished sending it (serialisation delay), so the
    last byte of `n` arrives about `n / rate` seconds after the first was offered. Reservations are
    absolute, and a link idle for a moment may catch up by one chunk's time (`_SLACK_S`), so the few
    milliseconds lost per chunk to the event loop do not add up over a long transfer.
    """

    def __init__(self) -> None:
        self.rate: float | None = None
        self._free_at = 0.0

    def set(self, rate: float | None) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive or None, not {rate}")
        self.rate = rate
        self._free_at = 0.0

    def chunk(self) -> int:
        """Bytes to forward at a time: about 20 ms of the link's time, so pacing stays smooth."""
        return _READ if self.rate is None else max(256, min(_READ, int(self.rate * _SLACK_S)))

    async def wait(self, n: int) -> None:
        rate = self.rate
        if rate is None:
            return
        now = asyncio.get_running_loop().time()
        self._free_at = max(self._free_at, now - _SLACK_S) + n / rate
        await asyncio.sleep(self._free_at - now)


class _MqttFramer:
    """Splits one direction of an MQTT byte stream into whole packets (fixed header, remaining length)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        packets: list[bytes] = []
        while True:
            length, shift, i = 0, 0, 1
            while True:
                if i >= len(self._buf):
                    return packets
                byte = self._buf[i]
                length |= (byte & 0x7F) << shift
                shift, i = shift + 7, i + 1
                if not byte & 0x80 or i > 4:
                    break
            if len(self._buf) < i + length:
                return packets
            packets.append(bytes(self._buf[:i + length]))
            del self._buf[:i + length]


def _publish_info(packet: bytes) -> tuple[str, int | None, bool] | None:
    """(topic, packet id or None for QoS 0, DUP flag) of a PUBLISH packet; None for any other packet."""
    if packet[0] >> 4 != 3:
        return None
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1
    n = int.from_bytes(packet[i:i + 2], "big")
    topic = packet[i + 2:i + 2 + n].decode(errors="replace")
    qos = (packet[0] >> 1) & 3
    pid = int.from_bytes(packet[i + 2 + n:i + 4 + n], "big") if qos else None
    return topic, pid, bool(packet[0] & 0x08)


def _puback_id(packet: bytes) -> int | None:
    return int.from_bytes(packet[2:4], "big") if packet[0] >> 4 == 4 and len(packet) >= 4 else None


@dataclass
class _Faults:
    corrupt_at: int = 0
    corrupt_count: int = 0
    cut_at: int | None = None


@dataclass(eq=False)  # identity, so it can sit in a set
class _Connection:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    faults: _Faults = field(default_factory=_Faults)
    down_pos: int = 0
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    down_framer: _MqttFramer = field(default_factory=_MqttFramer)
    up_framer: _MqttFramer = field(default_factory=_MqttFramer)
    doomed: set[int] = field(default_factory=set)  # packet ids whose PUBACK the broker must not get

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.server) if w is not None]

    def kill(self) -> None:
        """Reset both sides now; whatever is waiting on this connection stops."""
        for w in self.writers():
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.dead.set()


class LinkProxy:
    def __init__(self, target_host: str, target_port: int, *, mqtt: bool = False) -> None:
        self._target = (target_host, target_port)
        self._mqtt = mqtt
        self._lose_puback: str | None = None
        self.published: list[tuple[str, bool]] = []
        self.pubacks_lost = 0
        self._server: asyncio.Server | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._down = _Pace()
        self._up = _Pace()
        self._next = _Faults()
        self.port = 0
        self.connections = 0
        self.bytes_down = 0
        self.bytes_up = 0

    @property
    def open_connections(self) -> int:
        """Connections the proxy is still carrying (a dead client's is dropped once noticed)."""
        return len(self._connections)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # After cut() every handler ends within a few loop turns (or one paced chunk); wait so none is left
        # pending when the caller's loop stops.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)

    # ------------------------------------------------------------------------------------ link faults

    def blackhole(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    def cut(self) -> None:
        for conn in list(self._connections):
            conn.kill()
        self._connections.clear()

    def slow(self, bytes_per_s: float | None, *, upstream_bytes_per_s: float | None = None) -> None:
        """Limit server→client to `bytes_per_s` and client→server to `upstream_bytes_per_s` (None: no
        limit). Applies at once, to open connections too; `slow(None)` makes the link fast again."""
        self._down.set(bytes_per_s)
        self._up.set(upstream_bytes_per_s)

    # ------------------------------------------------------------------------ next-connection faults

    def corrupt(self, after_bytes: int, count: int = 1) -> None:
        """Flip `count` server→client bytes of the next connection, from offset `after_bytes` on."""
        if after_bytes < 0 or count < 1:
            raise ValueError("corrupt() needs after_bytes >= 0 and count >= 1")
        self._next.corrupt_at, self._next.corrupt_count = after_bytes, count

    def cut_after(self, downstream_bytes: int) -> None:
        """End the next connection once it has delivered `downstream_bytes` server→client bytes (with 0,
        as soon as the server starts answering)."""
        if downstream_bytes < 0:
            raise ValueError("cut_after() needs downstream_bytes >= 0")
        self._next.cut_at = downstream_bytes

    # ------------------------------------------------------------------------------------ MQTT faults

    def lose_puback(self, topic_part: str) -> None:
        """Drop the client's PUBACK of the next QoS 1 PUBLISH on a topic containing `topic_part`, and reset
        the connection as it is dropped (needs `mqtt=True`)."""
        if not self._mqtt:
            raise ValueError("lose_puback() needs LinkProxy(..., mqtt=True)")
        self._lose_puback = topic_part

    def _seen_down(self, conn: _Connection, data: bytes) -> None:
        for packet in conn.down_framer.feed(data):
            info = _publish_info(packet)
            if info is None:
                continue
            topic, pid, dup = info
            self.published.append((topic, dup))
            if pid is not None and self._lose_puback is not None and self._lose_puback in topic:
                conn.doomed.add(pid)

    def _up_packets(self, conn: _Connection, data: bytes) -> bytes | None:
        """The whole packets of `data` to pass upstream; None once the doomed PUBACK came (drop and cut)."""
        out = bytearray()
        for packet in conn.up_framer.feed(data):
            pid = _puback_id(packet)
            if pid is not None and pid in conn.doomed and self._lose_puback is not None:
                self._lose_puback = None
                self.pubacks_lost += 1
                return None
            out += packet
        return bytes(out)

    # ------------------------------------------------------------------------------------ forwarding

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        conn = _Connection(writer)
        self._connections.add(conn)
        try:
            try:
                up_reader, conn.server = await asyncio.open_connection(*self._target)
            except OSError:
                conn.kill()
                return
            if conn.dead.is_set():  # cut() while we were connecting
                conn.kill()
                return
            conn.faults, self._next = self._next, _Faults()
            await asyncio.gather(self._pipe(conn, reader, conn.server, down=False),
                                 self._pipe(conn, up_reader, writer, down=True))
            for w in conn.writers():  # both directions ended cleanly: flush what is buffered, then close
                w.close()
        finally:
            self._connections.discard(conn)
            self._handlers.discard(task)

    async def _until_open(self, conn: _Connection) -> bool:
        """Wait out a blackhole. False when the connection was killed meanwhile."""
        if not self._open.is_set():
            waits = [asyncio.ensure_future(self._open.wait()), asyncio.ensure_future(conn.dead.wait())]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        return not conn.dead.is_set()

    async def _pipe(self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    *, down: bool) -> None:
        pace = self._down if down else self._up
        try:
            while not conn.dead.is_set():
                data = await reader.read(pace.chunk())
                if not data:
                    break
                await pace.wait(len(data))
                if not await self._until_open(conn):  # while blackholed, bytes wait here
                    return
                if down and not self._deliver_down(conn, data, writer):
                    return
                if not down:
                    if self._mqtt:
                        passed = self._up_packets(conn, data)
                        if passed is None:  # the PUBACK to lose: the broker never hears of it
                            conn.kill()
                            return
                        data = passed
                    writer.write(data)
                    self.bytes_up += len(data)
                await writer.drain()
            # A silent link does not pass on the far side's close either. Otherwise pass on the half-close:
            # the other direction keeps flowing (an HTTP/1.0 server closes once it has sent its response).
            if await self._until_open(conn):
                with contextlib.suppress(OSError):
                    writer.write_eof()
        except OSError:  # a reset on either side resets the other (after a blackhole, like any other news)
            if await self._until_open(conn):
                conn.kill()

    def _deliver_down(self, conn: _Connection, data: bytes, writer: asyncio.StreamWriter) -> bool:
        """Forward one server→client chunk with this connection's faults applied. False once it is cut."""
        f, pos = conn.faults, conn.down_pos
        if f.cut_at is not None:
            data = data[:max(0, f.cut_at - pos)]
        lo, hi = max(f.corrupt_at, pos), min(f.corrupt_at + f.corrupt_count, pos + len(data))
        if lo < hi:
            flipped = bytearray(data)
            for i in range(lo - pos, hi - pos):
                flipped[i] ^= 0xFF
            data = bytes(flipped)
        writer.write(data)
        if self._mqtt:
            self._seen_down(conn, data)
        conn.down_pos += len(data)
        self.bytes_down += len(data)
        if f.cut_at is not None and conn.down_pos >= f.cut_at:
            # The client gets exactly cut_at bytes, then a FIN (close() flushes first); the server a reset.
            if conn.server is not None:
                conn.server.transport.abort()
            writer.close()
            conn.dead.set()
            return False
        return True
