"""`LinkProxy` against a tiny HTTP file server (http.server in a thread) and an asyncio echo server:
bytes pass unchanged and are counted; blackhole, restore and cut; rate limits; one-shot corruption and
mid-download cuts."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from firmware_sim.netproxy import LinkProxy

BIG, SMALL = 200_000, 25_000


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _FileServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the request threads

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # the proxy cut it: expected here
            super().handle_error(request, client_address)


@dataclass
class Media:
    port: int
    files: dict[str, bytes]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    root = tmp_path_factory.mktemp("media")
    files = {"big.bin": random.Random(1).randbytes(BIG), "small.bin": random.Random(2).randbytes(SMALL)}
    for name, data in files.items():
        (root / name).write_bytes(data)
    server = _FileServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="media-server")
    thread.start()
    yield Media(server.server_address[1], files)
    server.shutdown()
    server.server_close()
    thread.join(5)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 20))


def request(path: str) -> bytes:
    return f"GET /{path} HTTP/1.0\r\nHost: media\r\n\r\n".encode()


async def fetch(port: int, path: str) -> bytes:
    """The raw response (head and body), read until the server side closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request(path))
        await writer.drain()
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


def split(raw: bytes) -> tuple[bytes, bytes]:
    end = raw.index(b"\r\n\r\n") + 4
    return raw[:end], raw[end:]


@asynccontextmanager
async def proxy_to(port: int) -> AsyncIterator[LinkProxy]:
    proxy = LinkProxy("127.0.0.1", port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    handlers: set[asyncio.Task[Any]] = set()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        if handlers:
            await asyncio.wait(set(handlers), timeout=2)


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass


async def silent_for(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


# ------------------------------------------------------------------------------------ plain forwarding


def test_bytes_pass_unchanged_and_are_counted(media: Media) -> None:
    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            raw = await fetch(proxy.port, "big.bin")
            head, body = split(raw)
            assert head.startswith(b"HTTP/1.0 200") and body == media.files["big.bin"]
            assert (proxy.connections, proxy.bytes_down, proxy.bytes_up) == (1, len(raw), len(request("big.bin")))
            raw2 = await fetch(proxy.port, "small.bin")
            assert split(raw2)[1] == media.files["small.bin"]
            assert (proxy.connections, proxy.bytes_down) == (2, len(raw) + len(raw2))

    run(scenario)


def test_a_server_that_refuses_closes_the_client_and_still_counts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens there once the socket is closed

    async def scenario() -> None:
        async with proxy_to(dead_port) as proxy, connected(proxy.port) as (reader, _):
            try:
                assert await asyncio.wait_for(reader.read(), 2) == b""
            except ConnectionResetError:
                pass
            assert proxy.connections == 1 and proxy.bytes_down == 0

    run(scenario)


# ------------------------------------------------------------------------- blackhole, restore, cut


def test_blackhole_holds_bytes_without_closing_and_restore_delivers_them() -> None:
    async def scenario() -> None:
        async with echo_server() as port, proxy_to(port) as proxy, connected(proxy.port) as (r1, w1):
            w1.write(b"ping")
            assert await r1.readexactly(4) == b"ping"
            proxy.blackhole()
            w1.write(b"held")
            async with connected(proxy.port) as (r2, w2):  # a connection made while blackholed: silent too
                w2.write(b"new!")
                assert await silent_for(r1, 0.3) and await silent_for(r2, 0.05)
                assert not r1.at_eof() and not r2.at_eof()
                proxy.restore()
                assert await asyncio.wait_for(r1.readexactly(4), 2) == b"held"
                assert await asyncio.wait_for(r2.readexactly(4), 2) == b"new!"
            assert proxy.connections == 2 and proxy.bytes_up == proxy.bytes_down == 12

    run(scenario)


def test_cut_closes_open_connections_and_new_ones_still_work() -> None:
    async def scenario() -> None:
        async with echo_server() as port, proxy_to(port) as proxy:
            async with connected(proxy.port) as (r1, w1):
                w1.write(b"a")
                assert await r1.readexactly(1) == b"a"
                proxy.cut()
                try:
                    assert await asyncio.wait_for(r1.read(), 2) == b""
                except ConnectionResetError:
                    pass
            async with connected(proxy.port) as (r2, w2):
                w2.write(b"b")
                assert await asyncio.wait_for(r2.readexactly(1), 2) == b"b"

    run(scenario)


def test_close_while_blackholed_leaves_no_task_behind() -> None:
    async def scenario() -> None:
        before = asyncio.all_tasks()
        async with echo_server() as port:
            proxy = LinkProxy("127.0.0.1", port)
            await proxy.start()
            async with connected(proxy.port) as (reader, writer):
                proxy.blackhole()
                writer.write(b"x")
                await asyncio.sleep(0.05)
                await asyncio.wait_for(proxy.close(), 2)
                try:
                    assert await asyncio.wait_for(reader.read(), 2) == b""
                except ConnectionResetError:
                    pass
        await asyncio.sleep(0.01)
        assert asyncio.all_tasks() == before

    run(scenario)


# ---------------------------------------------------------------------------------------- slow link


def test_slow_limits_the_downstream_rate(media: Media) -> None:
    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.slow(50_000)
            start = time.monotonic()
            raw = await fetch(proxy.port, "big.bin")
            elapsed = time.monotonic() - start
            assert split(raw)[1] == media.files["big.bin"]
            expected = len(raw) / 50_000  # 4.0 s
            print(f"{len(raw)} B at 50 kB/s: {elapsed:.2f} s (expected {expected:.2f} s)")
            assert 0.7 * expected <= elapsed <= 1.3 * expected
            proxy.slow(None)
            start = time.monotonic()
            await fetch(proxy.port, "big.bin")
            assert time.monotonic() - start < 0.5

    run(scenario)


def test_concurrent_downloads_share_the_rate(media: Media) -> None:
    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.slow(50_000)
            start = time.monotonic()
            raws = await asyncio.gather(fetch(proxy.port, "small.bin"), fetch(proxy.port, "small.bin"))
            elapsed = time.monotonic() - start
            assert [split(r)[1] for r in raws] == [media.files["small.bin"]] * 2
            expected = sum(map(len, raws)) / 50_000  # about 1 s, twice what one alone would take
            assert 0.7 * expected <= elapsed <= 1.3 * expected

    run(scenario)


def test_slow_can_limit_the_upstream_too() -> None:
    async def scenario() -> None:
        payload = random.Random(3).randbytes(50_000)
        async with echo_server() as port, proxy_to(port) as proxy, connected(proxy.port) as (reader, writer):
            proxy.slow(None, upstream_bytes_per_s=100_000)
            start = time.monotonic()
            writer.write(payload)
            assert await asyncio.wait_for(reader.readexactly(len(payload)), 5) == payload
            elapsed = time.monotonic() - start
            assert 0.7 * 0.5 <= elapsed <= 1.3 * 0.5

    run(scenario)


def test_slow_refuses_a_rate_that_is_not_positive() -> None:
    proxy = LinkProxy("127.0.0.1", 1)
    with pytest.raises(ValueError):
        proxy.slow(0)


# ------------------------------------------------------------------------------ one-shot corruption


def flipped(data: bytes, start: int, count: int) -> bytes:
    return data[:start] + bytes(b ^ 0xFF for b in data[start:start + count]) + data[start + count:]


def test_corrupt_flips_exactly_the_chosen_bytes_of_the_next_connection_only(media: Media) -> None:
    original = media.files["big.bin"]

    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.corrupt(5000, count=3)  # the head is ~200 bytes, so this is in the body
            head, body = split(await fetch(proxy.port, "big.bin"))
            assert head.startswith(b"HTTP/1.0 200")
            assert body == flipped(original, 5000 - len(head), 3)
            assert split(await fetch(proxy.port, "big.bin"))[1] == original  # one-shot

            proxy.corrupt(len(head) + 0)  # body byte 0 exactly
            assert split(await fetch(proxy.port, "big.bin"))[1] == flipped(original, 0, 1)

    run(scenario)


def test_corrupt_spans_chunk_boundaries(media: Media) -> None:
    original = media.files["small.bin"]

    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.slow(400_000)  # forwards 8000-byte chunks
            proxy.corrupt(2000, count=15_000)
            head, body = split(await fetch(proxy.port, "small.bin"))
            assert body == flipped(original, 2000 - len(head), 15_000)

    run(scenario)


# ---------------------------------------------------------------------------------- dropped download


@pytest.mark.parametrize("rate", [None, 400_000], ids=["fast", "chunked"])
def test_cut_after_delivers_exactly_that_many_bytes_then_closes(media: Media, rate: float | None) -> None:
    original = media.files["big.bin"]

    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.slow(rate)
            proxy.cut_after(100_001)
            raw = await fetch(proxy.port, "big.bin")
            head, body = split(raw)
            assert len(raw) == 100_001 and body == original[:len(body)]
            assert proxy.bytes_down == 100_001
            assert split(await fetch(proxy.port, "big.bin"))[1] == original  # one-shot

    run(scenario)


def test_cut_after_and_corrupt_can_hit_the_same_connection(media: Media) -> None:
    original = media.files["small.bin"]

    async def scenario() -> None:
        async with proxy_to(media.port) as proxy:
            proxy.corrupt(3000, count=2)
            proxy.cut_after(4000)
            head, body = split(await fetch(proxy.port, "small.bin"))
            assert len(head) + len(body) == 4000
            assert body == flipped(original, 3000 - len(head), 2)[:len(body)]

    run(scenario)


def test_fault_arguments_are_checked() -> None:
    proxy = LinkProxy("127.0.0.1", 1)
    for bad in (lambda: proxy.corrupt(-1), lambda: proxy.corrupt(0, count=0), lambda: proxy.cut_after(-1)):
        with pytest.raises(ValueError):
            bad()


# ------------------------------------------------------------------------------------ MQTT framing


def test_mqtt_packets_are_framed_across_reads_and_publishes_read() -> None:
    from firmware_sim.netproxy import _MqttFramer, _puback_id, _publish_info

    topic = b"truyenthanh/receivers/rx-1/cmd/play"
    body = len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + b"x" * 300  # > 127: 2-byte length
    publish = bytes([0x3A]) + bytes([(len(body) & 0x7F) | 0x80, len(body) >> 7]) + body  # QoS 1, DUP
    puback = bytes([0x40, 2, 0, 7])
    stream = publish + puback + publish[:5]
    framer = _MqttFramer()
    packets = [p for i in range(len(stream)) for p in framer.feed(stream[i:i + 1])]  # one byte at a time
    assert packets == [publish, puback]
    assert _publish_info(publish) == (topic.decode(), 7, True)
    assert _publish_info(puback) is None and _puback_id(puback) == 7
