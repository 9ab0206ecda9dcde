"""The staff web UI (giao diện cán bộ), in Vietnamese: NiceGUI pages mounted at /ui on the controller's
FastAPI app. Pages call the same services, under the same access policy, as the API (`shell.staff_page`);
every string a person reads is in `locale/` (`i18n.t`).

`mount(app, settings)` is called by `create_app` when `settings.ui.enabled`; NiceGUI allows one per process.
The app's lifespan starts and stops `app.state.fleet_view` (the live counts every dashboard reads).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from controller.config import Settings

from . import host, paths


def mount(app: FastAPI, settings: Settings) -> None:
    # NiceGUI keeps its (unused here) storage files under this path; set before it is first imported.
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(settings.data_dir / "nicegui"))
    from nicegui import core, ui

    from controller.services.sessions import LoginThrottle

    from . import auth, live, pages, upload_limit  # noqa: F401  # pages registers every page

    host.attach(app)
    app.state.login_throttle = LoginThrottle(settings.ui.login_failures, settings.ui.login_failures_per_address,
                                            settings.ui.login_window_min * 60)
    app.state.fleet_view = live.FleetView(settings.ui.dashboard_refresh_s)
    app.include_router(auth.router)
    app.add_middleware(auth.LoginCsrfCookie, settings=settings)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(paths.HOME)

    upload_limit.install()  # the server's own limit on files sent to upload elements, before NiceGUI stores them
    ui.run_with(app, mount_path=paths.MOUNT, title="Truyền thanh", language="vi", favicon="📢",
                show_welcome_message=False, reconnect_timeout=10.0)
    # The page's websocket only from the page's own origin (scheme://host, as uvicorn sees it behind a proxy
    # with --proxy-headers): another site's page cannot open a socket with the person's cookies.
    core.sio.eio.cors_allowed_origins = None
