"""Shared FastAPI dependencies: `SessionDep` (one SQLModel session per request) and `BridgeDep`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlmodel import Session

from controller.bridge import Bridge


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine) as session:
        yield session


def get_bridge(request: Request) -> Bridge:
    bridge: Bridge | None = request.app.state.bridge
    if bridge is None:
        raise HTTPException(503, "The MQTT bridge is not running on this controller.")
    return bridge


SessionDep = Annotated[Session, Depends(get_session)]
BridgeDep = Annotated[Bridge, Depends(get_bridge)]
