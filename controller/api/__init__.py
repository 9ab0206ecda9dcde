"""The REST API: one `APIRouter` under `/api/v1` (`api`), assembled from one router per resource; `/media`
is outside it (receivers download by hash, without a token). Routers only translate: parse, call one
service function, and let `controller.api.errors` map domain errors to HTTP."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    accounts,
    announcements,
    bulletins,
    cap,
    communes,
    emergencies,
    enrolment,
    groups,
    plans,
    plays,
    programmes,
    receivers,
    reports,
    schedule,
    warnings,
)

api = APIRouter(prefix="/api/v1")
for module in (communes, receivers, plans, plays, bulletins, announcements, programmes, groups, schedule, reports,
               emergencies, cap, warnings, enrolment, accounts):
    api.include_router(module.router)
api.include_router(announcements.abbreviations)
