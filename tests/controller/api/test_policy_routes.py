"""The access policy, route by route, generated from the application's own route table.

Every route under /api/v1 must declare its policy (a right through `controller.api.deps.allow`/`ctx_for`,
`signed_in`, or `public(...)` with a reason) and have an entry in `ROUTES` below, which says which right it
needs and how to aim it at another commune's objects. For every route:
- a principal holding every right but the route's gets 403 (and the refusal is audited, with its address);
- a principal holding every right (admin included) but limited to Trà Nú gets 404 for Trà Bui's objects,
  403/404 when it names Trà Bui in a body, or a list without a trace of Trà Bui;
- a new route without a policy, or without an entry here, fails `test_every_route_declares_a_policy`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
import struct
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.db.models import AuditEntry, Commune, Receiver
from controller.policy import SCOPES, Right
from controller.services.accounts import UserCreate, add_user, issue_token
from tests.conftest import Api, api_in_memory, seeded_copy

HOME, ELSEWHERE = "tra-nu", "tra-bui"  # the limited principal's commune, and the one it must not reach
MARK = "BUI-SECRET"  # in every title of Trà Bui's objects: must never show in the limited principal's answers
Objects = dict[str, Any]


def _wav(seconds: float = 1.5, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


@dataclass
class Case:
    right: str  # a Right's value, "signed-in" or "public"
    path: Callable[[Objects], dict[str, Any]] = lambda o: {}
    json: Callable[[Objects], Any] | None = None
    query: Callable[[Objects], dict[str, Any]] = lambda o: {}
    files: Callable[[Objects], dict[str, Any]] | None = None
    data: Callable[[Objects], dict[str, Any]] | None = None
    # What a principal limited to Trà Nú gets when aimed at Trà Bui: a list without it, or a refusal.
    elsewhere: set[int] = field(default_factory=lambda: {404})
    is_list: bool = False


def _rid(o: Objects) -> dict[str, Any]:
    return {"rid": o["receiver"]}


def _emergency(o: Objects) -> dict[str, Any]:
    return {"eid": o["emergency"]}


SOON = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0).isoformat()
REFUSED = {403, 404}

ROUTES: dict[tuple[str, str], Case] = {
    ("GET", "/api/v1/communes"): Case(Right.RECEIVERS_READ, is_list=True),
    ("PATCH", "/api/v1/communes/{code}"): Case(Right.ADMIN, lambda o: {"code": ELSEWHERE},
                                               json=lambda o: {"approval_required": False}, elsewhere={403}),
    ("GET", "/api/v1/receivers"): Case(Right.RECEIVERS_READ, is_list=True),
    ("GET", "/api/v1/receivers/{rid}"): Case(Right.RECEIVERS_READ, _rid),
    ("PATCH", "/api/v1/receivers/{rid}"): Case(Right.RECEIVERS_CONTROL, _rid, json=lambda o: {"accepts_tests": True}),
    ("POST", "/api/v1/receivers/{rid}/volume"): Case(Right.RECEIVERS_CONTROL, _rid, json=lambda o: {"volume": 10}),
    ("POST", "/api/v1/receivers/{rid}/self-test"): Case(Right.RECEIVERS_CONTROL, _rid),
    ("POST", "/api/v1/receivers/{rid}/restart"): Case(Right.RECEIVERS_CONTROL, _rid),
    ("POST", "/api/v1/receivers/{rid}/play"): Case(Right.RECEIVERS_CONTROL, _rid,
                                                   json=lambda o: {"bulletin_id": o["bulletin"]}),
    ("POST", "/api/v1/receivers/{rid}/stop"): Case(Right.RECEIVERS_CONTROL, _rid,
                                                   json=lambda o: {"priority": "normal"}),
    ("GET", "/api/v1/receivers/{rid}/plan"): Case("public", _rid),
    ("POST", "/api/v1/receivers/{rid}/enrolment"): Case(Right.ADMIN, _rid),
    ("POST", "/api/v1/enrol"): Case("public"),
    # The signing key is the district's: anyone who reads receivers may see its fingerprint; only an admin over
    # the whole district may change it.
    ("GET", "/api/v1/signing-key"): Case(Right.RECEIVERS_READ, elsewhere={200}),
    ("POST", "/api/v1/signing-key/rotate"): Case(Right.ADMIN, json=lambda o: {"grace_s": 60}, elsewhere={403}),
    ("GET", "/api/v1/plays"): Case(Right.RECEIVERS_READ, is_list=True),
    ("GET", "/api/v1/receivers/{rid}/plays"): Case(Right.RECEIVERS_READ, _rid),
    ("POST", "/api/v1/bulletins"): Case(Right.CONTENT_WRITE, files=lambda o: {"file": ("x.wav", _wav(), "audio/wav")},
                                        data=lambda o: {"title": MARK, "commune": ELSEWHERE}, elsewhere=REFUSED),
    ("GET", "/api/v1/bulletins"): Case(Right.CONTENT_READ, is_list=True),
    ("GET", "/api/v1/bulletins/{bid}"): Case(Right.CONTENT_READ, lambda o: {"bid": o["bulletin"]}),
    ("DELETE", "/api/v1/bulletins/{bid}"): Case(Right.CONTENT_WRITE, lambda o: {"bid": o["bulletin"]}),
    ("POST", "/api/v1/bulletins/{bid}/return"): Case(Right.CONTENT_APPROVE, lambda o: {"bid": o["bulletin"]},
                                                     json=lambda o: {"comment": "Sửa lại"}),
    ("POST", "/api/v1/bulletins/{bid}/approve"): Case(Right.CONTENT_APPROVE, lambda o: {"bid": o["bulletin"]}),
    ("POST", "/api/v1/announcements/preview-text"): Case(Right.CONTENT_READ,
                                                         json=lambda o: {"text": "UBND xã", "commune": ELSEWHERE},
                                                         elsewhere=REFUSED),
    ("POST", "/api/v1/announcements"): Case(Right.CONTENT_WRITE, json=lambda o: {"text": "Thông báo", "title": MARK,
                                                                                "commune": ELSEWHERE},
                                            elsewhere=REFUSED),
    ("GET", "/api/v1/announcements"): Case(Right.CONTENT_READ, is_list=True),
    ("GET", "/api/v1/announcements/{aid}"): Case(Right.CONTENT_READ, lambda o: {"aid": o["announcement"]}),
    ("DELETE", "/api/v1/announcements/{aid}"): Case(Right.CONTENT_WRITE, lambda o: {"aid": o["announcement"]}),
    ("POST", "/api/v1/announcements/{aid}/return"): Case(Right.CONTENT_APPROVE, lambda o: {"aid": o["announcement"]},
                                                         json=lambda o: {"comment": "Sửa lại"}),
    ("POST", "/api/v1/announcements/{aid}/approve"): Case(Right.CONTENT_APPROVE,
                                                          lambda o: {"aid": o["announcement"]}),
    ("GET", "/api/v1/abbreviations"): Case(Right.CONTENT_READ, query=lambda o: {"commune": ELSEWHERE},
                                           elsewhere=REFUSED),
    ("PUT", "/api/v1/abbreviations/{abbr}"): Case(Right.CONTENT_WRITE, lambda o: {"abbr": "BTM"},
                                                  json=lambda o: {"expansion": "Bắc Trà My", "commune": ELSEWHERE},
                                                  elsewhere=REFUSED),
    ("DELETE", "/api/v1/abbreviations/{abbr}"): Case(Right.CONTENT_WRITE, lambda o: {"abbr": "BUI"},
                                                     query=lambda o: {"commune": ELSEWHERE}, elsewhere=REFUSED),
    ("POST", "/api/v1/programmes"): Case(Right.CONTENT_WRITE, json=lambda o: {
        "title": MARK, "items": [{"bulletin_id": o["bulletin"]}], "targets": {"communes": [ELSEWHERE]},
        "start": SOON}, elsewhere=REFUSED),
    ("GET", "/api/v1/programmes"): Case(Right.CONTENT_READ, is_list=True),
    ("GET", "/api/v1/programmes/{ident}"): Case(Right.CONTENT_READ, lambda o: {"ident": o["programme"]}),
    ("PATCH", "/api/v1/programmes/{ident}"): Case(Right.CONTENT_WRITE, lambda o: {"ident": o["programme"]},
                                                  json=lambda o: {"title": "x"}),
    ("POST", "/api/v1/programmes/{ident}/pause"): Case(Right.CONTENT_WRITE, lambda o: {"ident": o["programme"]}),
    ("POST", "/api/v1/programmes/{ident}/resume"): Case(Right.CONTENT_WRITE, lambda o: {"ident": o["programme"]}),
    ("POST", "/api/v1/programmes/{ident}/approve"): Case(Right.CONTENT_APPROVE,
                                                         lambda o: {"ident": o["programme"]}),
    ("POST", "/api/v1/programmes/{ident}/return"): Case(Right.CONTENT_APPROVE, lambda o: {"ident": o["programme"]},
                                                        json=lambda o: {"comment": "Sửa lại"}),
    ("DELETE", "/api/v1/programmes/{ident}"): Case(Right.CONTENT_WRITE, lambda o: {"ident": o["programme"]}),
    ("POST", "/api/v1/receiver-groups"): Case(Right.CONTENT_WRITE, json=lambda o: {"name": MARK + " 2",
                                                                                  "receivers": [o["receiver"]]},
                                              elsewhere=REFUSED),
    ("GET", "/api/v1/receiver-groups"): Case(Right.CONTENT_READ, is_list=True),
    ("DELETE", "/api/v1/receiver-groups/{ident}"): Case(Right.CONTENT_WRITE, lambda o: {"ident": o["group"]}),
    ("GET", "/api/v1/schedule"): Case(Right.CONTENT_READ, query=lambda o: {"commune": ELSEWHERE},
                                      elsewhere={404, 200}, is_list=True),
    ("GET", "/api/v1/reports/broadcast"): Case(Right.RECEIVERS_READ, query=lambda o: {"commune": ELSEWHERE},
                                               elsewhere={404, 200}, is_list=True),
    ("POST", "/api/v1/emergencies"): Case(Right.EMERGENCY, json=lambda o: {"text": "Sơ tán ngay.",
                                                                          "targets": {"communes": [ELSEWHERE]}},
                                          elsewhere=REFUSED),
    ("POST", "/api/v1/emergencies/upload"): Case(Right.EMERGENCY,
                                                 files=lambda o: {"file": ("x.wav", _wav(), "audio/wav")},
                                                 data=lambda o: {"targets": json.dumps({"communes": [ELSEWHERE]})},
                                                 elsewhere=REFUSED),
    ("GET", "/api/v1/emergencies"): Case(Right.EMERGENCY, is_list=True),
    ("GET", "/api/v1/emergencies/{eid}"): Case(Right.EMERGENCY, _emergency),
    ("GET", "/api/v1/emergencies/{eid}/events"): Case(Right.EMERGENCY, _emergency),
    ("POST", "/api/v1/emergencies/{eid}/cancel"): Case(Right.EMERGENCY, _emergency),
    ("POST", "/api/v1/cap"): Case(Right.EMERGENCY, json=None, elsewhere={403, 404, 422}),
    # A pre-recorded warning is the district's (every commune's emergencies of its type play it): anyone with the
    # emergency right lists them; only the whole district's may set or remove one.
    ("GET", "/api/v1/warnings"): Case(Right.EMERGENCY, elsewhere={200}),
    ("PUT", "/api/v1/warnings/{event_type}"): Case(Right.EMERGENCY, lambda o: {"event_type": "flash-flood"},
                                                   files=lambda o: {"file": ("x.wav", _wav(), "audio/wav")},
                                                   elsewhere={403}),
    ("DELETE", "/api/v1/warnings/{event_type}"): Case(Right.EMERGENCY, lambda o: {"event_type": "landslide"},
                                                      elsewhere={403}),
    ("GET", "/api/v1/users"): Case(Right.ADMIN, elsewhere={403}),
    ("POST", "/api/v1/users"): Case(Right.ADMIN, json=lambda o: {"username": "moi", "display_name": MARK,
                                                                 "password": "mật-khẩu-đủ-dài", "role": "viewer",
                                                                 "communes": [ELSEWHERE]}, elsewhere={403}),
    ("PATCH", "/api/v1/users/{uid}"): Case(Right.ADMIN, lambda o: {"uid": o["user"]}, json=lambda o: {"disabled": True},
                                           elsewhere={403}),
    ("GET", "/api/v1/tokens"): Case(Right.ADMIN, elsewhere={403}),
    ("POST", "/api/v1/tokens"): Case(Right.ADMIN, json=lambda o: {"name": MARK, "scopes": ["receivers:read"],
                                                                  "communes": [ELSEWHERE]}, elsewhere=REFUSED),
    ("DELETE", "/api/v1/tokens/{tid}"): Case(Right.ADMIN, lambda o: {"tid": o["token"]}),
    ("GET", "/api/v1/audit"): Case(Right.ADMIN, elsewhere={403}),
    ("GET", "/api/v1/me"): Case("signed-in"),
}


CAP_SAMPLE = Path(__file__).parents[1] / "cap_samples" / "flash-flood-alert.xml"  # Trà Giáp, Ka, Bui, Đốc


@dataclass
class Core:
    api: Api
    objects: Objects

    @property
    def client(self) -> TestClient:
        return self.api.client

    @property
    def engine(self) -> Any:
        return self.api.engine


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Iterator[Core]:
    """One controller (in-memory bridge) for the module, with one of everything in Trà Bui, made by an admin.
    The calls below are all refused, so they leave it as it was."""
    with seeded_copy(seeded_template, tmp_path_factory.mktemp("policy")) as world, api_in_memory(world) as api:
        o: Objects = {}
        with Session(world.engine) as s:
            bui = s.exec(select(Commune).where(Commune.code == ELSEWHERE)).one()
            o["receiver"] = s.exec(select(Receiver.id).where(Receiver.commune_id == bui.id)).first()
            o["token"] = issue_token(s, MARK, ["receivers:read"], [ELSEWHERE])[0].id
            o["user"] = add_user(s, UserCreate(username="canbo-tra-bui", display_name=MARK, password="mật-khẩu-đủ-dài",
                                               role="commune_operator", communes=[ELSEWHERE]), "test").id
        r = api.post("/api/v1/bulletins", files={"file": ("b.wav", _wav(), "audio/wav")},
                     data={"title": MARK, "commune": ELSEWHERE})
        assert r.status_code == 201, r.text
        o["bulletin"] = r.json()["id"]
        r = api.post("/api/v1/announcements", json={"text": "Thông báo họp thôn.", "title": MARK, "commune": ELSEWHERE})
        assert r.status_code == 201, r.text
        o["announcement"] = r.json()["id"]
        r = api.post("/api/v1/programmes", json={"title": MARK, "items": [{"bulletin_id": o["bulletin"]}],
                                                 "targets": {"communes": [ELSEWHERE]}, "start": SOON})
        assert r.status_code == 201, r.text
        o["programme"] = r.json()["id"]
        r = api.post("/api/v1/receiver-groups", json={"name": MARK, "receivers": [o["receiver"]]})
        assert r.status_code == 201, r.text
        o["group"] = r.json()["id"]
        r = api.post("/api/v1/emergencies", json={"text": "Sạt lở đất, sơ tán ngay.", "title": MARK,
                                                  "targets": {"communes": [ELSEWHERE]}})
        assert r.status_code == 202, r.text
        o["emergency"] = r.json()["id"]
        r = api.put("/api/v1/abbreviations/BUI", json={"expansion": "Trà Bui", "commune": ELSEWHERE})
        assert r.status_code in (200, 201), r.text
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=7))).replace(microsecond=0)
        o["cap_xml"] = (CAP_SAMPLE.read_text(encoding="utf-8")
                        .replace("2024-10-28T14:30:00+07:00", now.isoformat())
                        .replace("2024-10-29T14:30:00+07:00", (now + dt.timedelta(hours=2)).isoformat())
                        .encode())
        yield Core(api, o)


def api_routes(app: Any) -> dict[tuple[str, str], APIRoute]:
    out = {}
    for rc in iter_route_contexts(app.routes):
        route = rc.original_route
        if isinstance(route, APIRoute) and rc.path.startswith("/api/"):
            for method in route.methods:
                out[(method, rc.path)] = route
    return out


def declared_policy(route: APIRoute) -> str | None:
    """The right (or 'signed-in' / 'public') that the route's dependencies declare."""
    found: list[str] = []

    def walk(dep: Any) -> None:
        call = dep.call
        if hasattr(call, "right"):
            found.append(str(call.right))
        elif hasattr(call, "public"):
            found.append("public")
        for sub in dep.dependencies:
            walk(sub)

    walk(route.dependant)
    return found[0] if found else None


def policy_gaps(app: Any) -> list[str]:
    """What is wrong with the application's route table, as far as the policy goes."""
    routes = api_routes(app)
    gaps = [f"{m} {p}: no entry (and maybe no policy) in ROUTES" for m, p in sorted(set(routes) - set(ROUTES))]
    gaps += [f"{m} {p}: in ROUTES, gone from the application" for m, p in sorted(set(ROUTES) - set(routes))]
    for key, route in sorted(routes.items()):
        if key in ROUTES and declared_policy(route) != str(ROUTES[key].right):
            gaps.append(f"{key}: declares {declared_policy(route)!r}, ROUTES says {ROUTES[key].right!r}")
    return gaps


def test_every_route_declares_a_policy(core: Core) -> None:
    assert policy_gaps(core.client.app) == []


def test_a_new_route_without_a_policy_is_caught() -> None:
    from fastapi import APIRouter

    from controller.app import create_app
    from controller.config import Settings

    app = create_app(Settings(demo=True, data_dir=Path("/nonexistent")))
    extra = APIRouter(prefix="/api/v1")

    @extra.get("/receivers/{rid}/secrets")
    def secrets(rid: str) -> dict[str, str]:  # no policy: anybody could call it
        return {"rid": rid}

    app.include_router(extra)
    assert policy_gaps(app) == ["GET /api/v1/receivers/{rid}/secrets: no entry (and maybe no policy) in ROUTES"]
    ROUTES[("GET", "/api/v1/receivers/{rid}/secrets")] = Case(Right.RECEIVERS_READ, _rid)
    try:
        assert policy_gaps(app) == ["('GET', '/api/v1/receivers/{rid}/secrets'): declares None, "
                                    "ROUTES says <Right.RECEIVERS_READ: 'receivers:read'>"]
    finally:
        del ROUTES[("GET", "/api/v1/receivers/{rid}/secrets")]


def _call(client: TestClient, key: tuple[str, str], case: Case, objs: Objects, token: str) -> Any:
    method, template = key
    path = template.format(**case.path(objs))
    kw: dict[str, Any] = {"headers": {"Authorization": f"Bearer {token}"}, "params": case.query(objs)}
    if case.files:
        kw["files"] = case.files(objs)
        kw["data"] = case.data(objs) if case.data else {}
    elif case.json is not None:
        kw["json"] = case.json(objs)
    elif method in ("POST", "PUT", "PATCH") and key != ("POST", "/api/v1/cap"):
        kw["json"] = {}
    if key == ("POST", "/api/v1/cap"):
        kw["content"] = objs["cap_xml"]
        kw["headers"]["Content-Type"] = "application/xml"
    return client.request(method, path, **kw)


GUARDED = [k for k, c in ROUTES.items() if c.right not in ("public", "signed-in")]


@pytest.mark.parametrize("key", GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_without_the_right_403_and_audited(core: Core, key: tuple[str, str]) -> None:
    case = ROUTES[key]
    with Session(core.engine) as s:
        others = [x for x in SCOPES if x not in (case.right, Right.ADMIN)]
        _, token = issue_token(s, "lacks-" + case.right, others)
    r = _call(core.client, key, case, core.objects, token)
    assert r.status_code == 403, f"{key} without {case.right}: {r.status_code} {r.text[:200]}"
    with Session(core.engine) as s:
        last = s.exec(select(AuditEntry).order_by(AuditEntry.id.desc())).first()  # type: ignore[union-attr]
    assert last is not None and last.outcome == "refused" and last.actor.startswith("token:")
    assert last.target == f"{key[0]} {key[1].format(**case.path(core.objects))}" and last.address


@pytest.mark.parametrize("key", GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
def test_limited_to_another_commune_sees_and_touches_nothing(core: Core, key: tuple[str, str]) -> None:
    case = ROUTES[key]
    with Session(core.engine) as s:
        _, token = issue_token(s, "tra-nu-all-rights", list(SCOPES), [HOME])
    r = _call(core.client, key, case, core.objects, token)
    allowed = case.elsewhere | ({200} if case.is_list else set())
    assert r.status_code in allowed, f"{key} limited to {HOME}: {r.status_code} {r.text[:300]}"
    assert MARK not in r.text and (r.status_code != 200 or ELSEWHERE not in r.text), \
        f"{key} shows {ELSEWHERE}'s objects to a principal limited to {HOME}: {r.text[:300]}"
