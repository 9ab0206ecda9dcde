"""The controller app the UI is mounted on. NiceGUI is one per process (`ui.run_with` can be called once), so
the UI's pages reach the controller's state (engine, settings, bridge, media store, tracker) through here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_app: FastAPI | None = None


def attach(app: FastAPI) -> None:
    global _app
    if _app is not None and _app is not app:
        raise RuntimeError("the staff UI is already mounted on another app in this process")
    _app = app


def state() -> Any:
    if _app is None:
        raise RuntimeError("the staff UI is not mounted")
    return _app.state
