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

    def writers(self) -> list[asyncio.StreamWriter]:
        return [w for w in (self.client, self.server) if w is not None]

    def kill(self) -> None:
        """Reset both sides now; whatever is waiting on this connection stops."""
        for w in self.writers():
            with contextlib.suppress(Exception):
                w.transport.abort()
        self.dead.set()


class LinkProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
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
