"""`LinkProxy`: a TCP proxy on 127.0.0.1 in front of a real server (the broker, later the media server).

`blackhole()` stops forwarding in both directions but keeps every socket open, so the far side sees
silence rather than a closed connection — the broker only finds out through the MQTT keepalive, as with a
4G link that drops. `restore()` forwards again; connections made while blackholed are held silent too.
`cut()` closes every connection abruptly (a power cut at the router).
"""

from __future__ import annotations

import asyncio
import contextlib


class LinkProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def blackhole(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        self._open.set()

    def cut(self) -> None:
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await self._open.wait()  # while blackholed, bytes wait here: nothing reaches the far side
            writer.write(data)
            await writer.drain()
        await self._open.wait()  # a silent link does not pass on the far side's close either
        with contextlib.suppress(Exception):
            writer.transport.abort()
