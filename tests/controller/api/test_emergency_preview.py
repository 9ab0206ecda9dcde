"""What the staff UI's emergency page asks the services besides the API's routes: `preview` (the confirmation
before sending — the trigger's own checks and reading of the text, nothing sent) and `cap.list_alerts` (the CAP
alerts that became emergencies), both under the emergencies' policy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlmodel import Session, select

from controller.db.models import Emergency
from controller.errors import Forbidden, Hidden
from controller.services import cap as cap_service
from controller.services import emergencies
from controller.services.accounts import issue_token, principal_for_token
from controller.services.context import Ctx, Page
from controller.services.emergencies import EmergencyCreate, EmergencyTargets
from tests.conftest import Api

from .test_emergencies import TEXT, audits, cap, commune_receivers, post_cap
from .test_emergencies_policy import DUTY


@contextmanager
def as_token(api: Api, communes: list[str] | None, scopes: list[str] = DUTY) -> Iterator[Ctx]:
    """A service context for a token of `scopes` limited to `communes`, on the app's own ports."""
    state = api.client.app.state  # type: ignore[attr-defined]
    with Session(state.engine) as s:
        token = issue_token(s, "-".join(communes or ["district"]), scopes, communes)[1]
        yield Ctx(session=s, who=principal_for_token(s, token), settings=state.settings, engine=state.engine,
                  bridge=state.bridge, media=state.media, tracker=state.tracker)


def body(text: str = TEXT, **targets: object) -> EmergencyCreate:
    return EmergencyCreate(text=text, targets=EmergencyTargets.model_validate(targets))


def test_preview_says_what_will_be_read_where_and_to_whom_and_sends_nothing(api: Api) -> None:
    assert api.put("/api/v1/abbreviations/BCHQS", json={"expansion": "ban chỉ huy quân sự"}).status_code == 200
    assert api.put("/api/v1/abbreviations/BCHQS", json={"expansion": "sai", "commune": "tra-nu"}).status_code == 200
    text = "UBND và BCHQS xã thông báo: lũ quét."
    with as_token(api, None) as ctx:
        plan = emergencies.preview(ctx, body(text, communes=["tra-nu"]))
        assert plan.spoken_text == emergencies.read_aloud(ctx.session, text)
        assert plan.spoken_text.startswith("ủy ban nhân dân và ban chỉ huy quân sự xã")  # never Trà Nú's list
        assert plan.receivers == commune_receivers(api, "tra-nu") and plan.communes == ["tra-nu"]
        assert plan.repeat == ctx.settings.emergency.repeat and plan.source == "text"
        assert ctx.session.exec(select(Emergency)).all() == []
    assert audits(api, "emergency.trigger", "ok") == []
    # The trigger then reads it exactly so.
    sent = api.post("/api/v1/emergencies", json={"text": text, "targets": {"communes": ["tra-nu"]}}).json()
    assert sent["spoken_text"] == plan.spoken_text and sent["receivers"] == plan.receivers


def test_preview_of_a_village_names_its_commune(api: Api) -> None:
    with as_token(api, ["tra-nu"]) as ctx:
        plan = emergencies.preview(ctx, body(villages=["tra-nu/thon-1"]))
    assert plan.communes == ["tra-nu"] and all(r.startswith("tra-nu-thon-1-") for r in plan.receivers)


def test_preview_refuses_as_the_trigger_does(api: Api) -> None:
    with as_token(api, ["tra-nu"]) as ctx:
        with pytest.raises(Hidden):
            emergencies.preview(ctx, body(communes=["tra-kot"]))  # another commune looks like no commune
        with pytest.raises(Hidden):
            emergencies.preview(ctx, body(communes=["no-such-commune"]))
        with pytest.raises(Forbidden):
            emergencies.preview(ctx, body(all=True))
    with as_token(api, None, ["receivers:read", "content:read"]) as ctx, pytest.raises(Forbidden):
        emergencies.preview(ctx, body(communes=["tra-nu"]))


def test_cap_alerts_are_listed_with_their_emergency_for_those_who_see_it(api: Api) -> None:
    status, alert = post_cap(api, cap("flash-flood-alert.xml"))  # Trà Giáp, Trà Ka, Trà Bui, Trà Đốc
    assert status == 202, alert
    api.post("/api/v1/emergencies", json={"text": TEXT, "targets": {"communes": ["tra-ka"]}})  # not an alert
    with as_token(api, None) as ctx:
        listed = cap_service.list_alerts(ctx, Page())
    assert listed.count == 1
    [row] = listed.data
    assert row.emergency_id == alert["id"] and row.identifier == "QNM-LQ-20241028-001"
    assert row.sender == "dai-kttv-quangnam@canhbao.example" and row.status == "Actual"
    assert row.headline and row.area_desc and row.sent is not None and row.cancelled_at is None
    with as_token(api, ["tra-ka"]) as ctx:  # it reached other communes too
        assert cap_service.list_alerts(ctx, Page()).count == 0
    with as_token(api, ["tra-giap", "tra-ka", "tra-bui", "tra-doc"]) as ctx:
        assert [a.emergency_id for a in cap_service.list_alerts(ctx, Page()).data] == [alert["id"]]
    with as_token(api, None, ["receivers:read"]) as ctx, pytest.raises(Forbidden):
        cap_service.list_alerts(ctx, Page())
