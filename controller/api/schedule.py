"""`GET /api/v1/schedule?commune=&receiver=&from=&to=`: what will play where — every occurrence of every
approved programme in the window, placed as the receivers will play it (priority first, ordered overlaps
moved), with how many receivers in which communes play it. Times in Asia/Ho_Chi_Minh. Limited to the
principal's communes; a programme that also reaches other communes shows the slot it takes, not its title
or its item (`controller.services.programmes.schedule`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from controller.services import programmes as service
from controller.services.programmes import SchedulePublic

from .deps import ContentReader, PageDep

router = APIRouter(tags=["programmes"])


@router.get("/schedule", response_model=SchedulePublic)
def schedule(ctx: ContentReader, page: PageDep, commune: str | None = None, receiver: str | None = None,
             from_: Annotated[dt.datetime | None, Query(alias="from")] = None,
             to: dt.datetime | None = None) -> SchedulePublic:
    return service.schedule(ctx, page, commune=commune, receiver=receiver, from_=from_, to=to)
