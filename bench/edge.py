"""HTTP edge benchmark (issue 12): what an outsider's refused request costs the controller.

    .venv/bin/python bench/edge.py [--refusals 10000] [--posts 300]

1. A token-less chunked upload that would be 2 GB, to `POST /api/v1/bulletins`, over real HTTP (uvicorn in
   a thread, the operating system's default socket buffers): how many bytes the client could hand to its
   socket before the 401 came, and how long the 401 took. (Most of those bytes sit in the two kernels'
   socket buffers; the controller's own reading stops at the first request for the body.)
2. `--refusals` refused requests (half refused by the route, half at the edge with a made-up token), in
   process through the ASGI interface: refusals per second, and the audit rows they wrote.
3. The edge's own cost on an authenticated request with a body: the median time of `--posts` small JSON
   posts (an emergency with an empty text: validated and answered 422, nothing sent) with `EdgeLimits` and
   with it replaced by a pass-through, alternating.

Everything runs on a temporary seeded world (`devrig.testbed.seed_world`), removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TT_UI__ENABLED", "0")

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlmodel import Session, func, select  # noqa: E402

from controller.api import limits  # noqa: E402
from controller.app import create_app  # noqa: E402
from controller.bridge_memory import InMemoryBridge  # noqa: E402
from controller.db.models import AuditEntry  # noqa: E402
from controller.services.accounts import issue_token  # noqa: E402
from devrig.ports import free_port  # noqa: E402
from devrig.testbed import seed_world  # noqa: E402

NOMINAL = 2 * 1024**3
CHUNK = 64 * 1024


def serve(app: Any) -> tuple[str, uvicorn.Server, threading.Thread]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


def token_less_upload(url: str) -> tuple[int, float]:
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        block = b"\0" * CHUNK
        while sent < NOMINAL:
            sent += CHUNK
            yield block

    start = time.perf_counter()
    with httpx.Client(timeout=120) as client:
        r = client.post(url + "/api/v1/bulletins", content=body(),
                        headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 401, r.status_code
    return sent, time.perf_counter() - start


def refusals(app: Any, n: int) -> float:
    async def go() -> float:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app, client=("203.0.113.7", 4000)), base_url="http://tt") as client:
            start = time.perf_counter()
            for i in range(n):
                if i % 2:
                    r = await client.get("/api/v1/receivers")
                else:
                    r = await client.post("/api/v1/bulletins", content=b"x" * 100,
                                          headers={"Authorization": "Bearer tt_guess"})
                assert r.status_code == 401
            return time.perf_counter() - start

    return asyncio.run(go())


def posts(url: str, token: str, n: int) -> float:
    times = []
    with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(n):
            start = time.perf_counter()
            r = client.post("/api/v1/emergencies", json={"text": "", "targets": {"communes": ["tra-nu"]}})
            times.append(time.perf_counter() - start)
            assert r.status_code == 422, r.text
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refusals", type=int, default=10_000)
    parser.add_argument("--posts", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tt-bench-edge-"))
    try:
        settings, engine, _ = seed_world(root)
        with Session(engine) as s:
            token = issue_token(s, "bench", ["admin"])[1]

        url, server, thread = serve(create_app(settings, bridge=InMemoryBridge))
        sent, seconds = token_less_upload(url)
        print(f"token-less 2 GB upload: 401 after {seconds * 1000:.0f} ms, {sent / 1024:.0f} KiB handed to the "
              "client's socket (kernel buffers included)")
        real_call = limits.EdgeLimits.__call__
        medians: dict[str, list[float]] = {"with the edge": [], "without": []}
        for _ in range(3):
            medians["with the edge"].append(posts(url, token, args.posts // 3))

            async def passthrough(self: Any, scope: Any, receive: Any, send: Any) -> None:
                await self.app(scope, receive, send)

            limits.EdgeLimits.__call__ = passthrough  # type: ignore[method-assign]
            medians["without"].append(posts(url, token, args.posts // 3))
            limits.EdgeLimits.__call__ = real_call  # type: ignore[method-assign]
        for name, values in medians.items():
            print(f"authenticated JSON post (422), median {name}: {statistics.median(values) * 1000:.2f} ms")
        server.should_exit = True
        thread.join(30)

        with Session(engine) as s:
            before = s.exec(select(func.count()).select_from(AuditEntry)).one()
        seconds = refusals(create_app(settings, bridge=InMemoryBridge), args.refusals)
        with Session(engine) as s:
            rows = s.exec(select(func.count()).select_from(AuditEntry)).one() - before
        print(f"{args.refusals} refused requests: {args.refusals / seconds:.0f} a second, {rows} audit rows written "
              f"(budget {settings.http.refusal_audits_per_minute} a minute per address, plus its count)")
        engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
