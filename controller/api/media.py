"""`GET /media/{sha256}.mp3`: stored audio, as the receivers download it. No token: the name is the
content's hash, unguessable and immutable. ETag, Range requests and a year of immutable caching; the
content is verified against its hash before it is served, and a corrupted file is reported, never sent."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response

from audio.store import SHA256, CorruptMedia, MediaStore
from controller.services import audit

log = logging.getLogger(__name__)
router = APIRouter(tags=["media"])
CACHE = "public, max-age=31536000, immutable"


@router.get("/media/{name}", response_class=FileResponse,
            responses={200: {"description": "the audio", "content": {"audio/mpeg": {}}}, 304: {}, 404: {}, 500: {}})
def get_media(name: str, request: Request) -> Response:
    sha, _, ext = name.partition(".")
    if ext != "mp3" or not SHA256.match(sha):
        raise HTTPException(404, "No such audio.")
    etag = f'"{sha}"'
    store: MediaStore = request.app.state.media
    try:
        path = store.verified_path(sha)
    except FileNotFoundError:
        raise HTTPException(404, "No such audio.") from None
    except CorruptMedia as e:
        log.error("refusing to serve corrupted audio: %s", e)
        audit.record(request.app.state.engine, "system", "media.corrupt", "refused", target=sha, detail=str(e))
        raise HTTPException(500, "The stored audio is corrupted and will not be served; re-upload it.") from None
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE})
    return FileResponse(path, media_type="audio/mpeg", headers={"ETag": etag, "Cache-Control": CACHE})
