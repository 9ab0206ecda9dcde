"""`create_app(settings)`: the controller's ASGI app. Its lifespan migrates the database, loads the signing
key and starts/stops the MQTT bridge, the plan runner and the emergency tracker; nothing is created at
import time."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine

from audio.store import MediaStore
from audio.tts_chain import sweep_temporaries
from controller.api import api, errors, limits, media
from controller.bridge import Bridge
from controller.config import Settings
from controller.db import make_engine, migrate
from controller.emergencies import Tracker
from controller.ports import CommandPort
from controller.provision import load_signing_key
from controller.scheduling import Runner
from controller.services import audit, keys
from receivers.protocol import Signer

log = logging.getLogger(__name__)
# Makes the command port once the database and the signing key are ready: the MQTT `Bridge` by default,
# `controller.bridge_memory.InMemoryBridge` (or a function returning a configured one) in tests.
BridgeFactory = Callable[[Settings, Engine, Signer], CommandPort]

LANDING = """<!doctype html><html lang="vi"><meta charset="utf-8"><title>Truyền thanh</title>
<body style="font-family:sans-serif;max-width:40em;margin:3em auto">
<h1>Hệ thống truyền thanh ứng dụng CNTT–viễn thông</h1>
<p>Bộ điều khiển đang hoạt động.</p>
<ul><li><a href="/docs">Tài liệu API (OpenAPI)</a></li><li><a href="/healthz">Tình trạng hệ thống</a></li></ul>
</body></html>"""


def warm_neural_voice(settings: Settings) -> threading.Thread | None:
    """Load the installed neural voice in the background when an engine order names it, so the first warning
    it reads does not also pay for loading it (seconds on a small controller)."""
    if not any("neural" in settings.tts.order(use) for use in ("announcements", "emergencies", "cap")):
        return None
    try:
        from audio.neural import NeuralEngine
    except ImportError:  # said when a text is read (`controller.content.neural_engine`)
        return None
    voice = NeuralEngine(settings.neural_dir)
    if not voice.status()[0]:
        return None
    thread = threading.Thread(target=voice.warm, name="neural-warm", daemon=True)
    thread.start()
    return thread


def create_app(settings: Settings, *, with_bridge: bool = True, bridge: BridgeFactory = Bridge) -> FastAPI:
    """`bridge` makes the command port (see `BridgeFactory`); `with_bridge=False` runs without one (routes
    that send commands answer 503)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url)
        migrate(engine)
        audit.limit_refusals(engine, settings.http.refusal_audits_per_minute,
                             settings.http.refusal_audits_total_per_minute)
        # A missing key is made only when told (TT_CREATE_KEY, `serve --create-key`) or in the demo.
        signer, public_key = load_signing_key(settings, create=settings.demo or settings.create_key)
        app.state.engine, app.state.public_key, app.state.signer = engine, public_key, signer
        app.state.media = MediaStore(settings.media_dir)
        app.state.bridge = bridge(settings, engine, signer) if with_bridge else None
        if app.state.bridge:
            await app.state.bridge.start()
            keys.resends(settings, app.state.bridge, public_key)  # key rotations missed, sent again
        app.state.runner = Runner(settings, engine, signer, app.state.bridge)
        warm_neural_voice(settings)
        sweep_temporaries(settings.data_dir / "tts-cache")  # what workers of an earlier run left
        app.state.tracker = Tracker(engine, app.state.bridge)
        await app.state.tracker.start()
        await app.state.runner.start()
        fleet_view = getattr(app.state, "fleet_view", None)  # the staff UI's live counts (controller.ui.live)
        if fleet_view is not None:
            await fleet_view.start(engine)
            if app.state.bridge:
                app.state.bridge.availability_watchers.append(fleet_view.on_availability)
        try:
            yield
        finally:
            if fleet_view is not None:
                await fleet_view.stop()
            await app.state.runner.stop()
            await app.state.tracker.stop()
            if app.state.bridge:
                await app.state.bridge.stop()
            audit.flush(engine)  # the counts of refusals not written one by one
            engine.dispose()

    app = FastAPI(title="truyenthanh", version="0.1.0", lifespan=lifespan,
                  description="Controller for IP-based commune loudspeaker broadcasting.")
    app.state.settings = settings
    app.include_router(api)
    app.include_router(media.router)
    errors.install(app)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, object]:
        port: CommandPort | None = app.state.bridge
        return {"status": "ok", "mqtt": "connected" if port is not None and port.connected else "down"}

    if settings.ui.enabled:
        from controller.ui import mount  # NiceGUI: imported only by a controller that serves the UI

        mount(app, settings)

        @app.get("/", include_in_schema=False)
        def to_the_ui() -> RedirectResponse:
            return RedirectResponse("/ui/")
    else:
        @app.get("/", include_in_schema=False)
        def landing() -> HTMLResponse:
            return HTMLResponse(LANDING)

    # Outermost: bodies limited, and refused without a token, before any route (or the UI) reads them.
    limits.install(app, settings)
    return app
