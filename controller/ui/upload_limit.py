"""The size limit on files sent to the staff UI's upload elements (`ui.upload`), enforced before NiceGUI
spools them to disk: NiceGUI's upload route reads the whole request whatever its size, so a page's own
`max_file_size` (checked by the browser) is no limit against a client that ignores it.

`UploadLimit` refuses (413) a POST to an upload element whose declared length is over the limit, and stops
reading one whose body grows past it; `install()` puts it on NiceGUI's app with the controller's audio limit
(`settings.audio.max_upload_mb`, as the API's uploads).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from controller.config import MULTIPART_OVERHEAD

from . import host

UPLOAD_PATH = re.compile(r"/_nicegui/client/[^/]+/upload/[^/]+$")


class _Exceeded(Exception):
    pass


class UploadLimit:
    """ASGI middleware: uploads to NiceGUI's upload elements of at most `limit()` bytes (plus the form's
    overhead)."""

    def __init__(self, app: Any, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not UPLOAD_PATH.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        limit = self.limit() + MULTIPART_OVERHEAD
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send)
            return
        counted = 0
        started = False

        async def counting() -> Any:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > limit:
                    raise _Exceeded
            return message

        async def watching(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting, watching)
        except _Exceeded:
            if started:
                raise
            await _refuse(send)


async def _refuse(send: Any) -> None:
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b'{"detail":"The file is larger than the limit."}'})


def install() -> None:
    """Put `UploadLimit` on NiceGUI's app (before it starts), with the controller's audio upload limit."""
    from nicegui import app

    app.add_middleware(UploadLimit, limit=lambda: int(host.state().settings.audio.max_upload_mb * 1e6))
