"""`/api/v1/warnings`: the pre-recorded warnings (cảnh báo ghi sẵn), one per event type, that emergencies and
CAP alerts of that type play before any synthesis.

`GET` lists every event type (its name, whether it is recorded, the recording's duration and URL); `PUT
/{event_type}` (multipart with a `file`, as a bulletin upload: same size limit, 413 / 415 / 422) sets or
replaces its recording; `DELETE /{event_type}` removes it. Every route needs `emergency:trigger`; setting and
removing need it over the whole district. The rules are `controller.services.warnings`'.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Path, Response, UploadFile

from controller.services import warnings
from controller.services.warnings import WarningPublic, WarningsPublic

from .bulletins import receive_upload
from .deps import EmergencyTrigger
from .limits import UPLOAD

router = APIRouter(prefix="/warnings", tags=["warnings"])
EventType = Annotated[str, Path(max_length=40, description="flash-flood, landslide, storm, …")]


@router.get("", response_model=WarningsPublic)
def list_warnings(ctx: EmergencyTrigger) -> WarningsPublic:
    """Every event type, recorded or not."""
    return warnings.list_warnings(ctx)


@router.put("/{event_type}", response_model=WarningPublic, dependencies=[Depends(UPLOAD)])
def set_warning(event_type: EventType, ctx: EmergencyTrigger,
                file: Annotated[UploadFile, File(description="MP3, WAV, OGG/Opus, M4A/AAC, FLAC, AMR or 3GP")],
                ) -> WarningPublic:
    """Set (or replace) the recording of one event type, made broadcast-ready as a bulletin is."""
    limit = int(ctx.settings.audio.max_upload_mb * 1e6)
    return warnings.set_warning(ctx, event_type, file.filename,
                                lambda directory: receive_upload(file, limit, directory))


@router.delete("/{event_type}", status_code=204)
def remove_warning(event_type: EventType, ctx: EmergencyTrigger) -> Response:
    warnings.remove_warning(ctx, event_type)
    return Response(status_code=204)
