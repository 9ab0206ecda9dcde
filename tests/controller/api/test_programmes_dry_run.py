"""Programmes checked before saving (`services.programmes.check_programme`, what the staff UI's form calls):
a clash is refused with the same message the API gives and, for the UI, a code with the values it names;
nothing is saved or audited; an edit is checked against everything but itself; the policy applies as for
a save. No broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from controller.app import create_app
from controller.config import Settings
from controller.db.models import AuditEntry, ProgrammeCreate, ProgrammeUpdate, Targets
from controller.errors import Conflict, Hidden, Invalid
from controller.policy import Principal
from controller.services import Ctx
from controller.services import programmes as service
from schedules import TZ
from tests.controller.api.test_programmes_policy import Bed

MONDAY = dt.date(2027, 3, 1)  # a Monday, well ahead


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    with TestClient(create_app(Settings(demo=True, data_dir=tmp_path / "data"), with_bridge=False)) as c:
        yield Bed(c)


def ctx(bed: Bed, session: Session, role: str = "district_admin", communes: set[str] | None = None) -> Ctx:
    who = Principal.for_user(99, "tester", role, frozenset(communes) if communes else None)
    return Ctx(session=session, who=who, settings=bed.client.app.state.settings,  # type: ignore[attr-defined]
               engine=bed.engine)


def body(bed: Bed, title: str, hour: int, minute: int = 0, **extra: object) -> ProgrammeCreate:
    return ProgrammeCreate(title=title, items=[{"bulletin_id": bed.bulletin["district"]}],
                           targets=Targets(communes=["tra-son"]),
                           start=dt.datetime.combine(MONDAY, dt.time(hour, minute), TZ), **extra)  # type: ignore[arg-type]


def test_a_clash_is_named_before_saving_and_nothing_is_saved(bed: Bed) -> None:
    with Session(bed.engine) as s:
        first = service.create_programme(ctx(bed, s), body(bed, "Bản tin sáng", 6, rrule="FREQ=WEEKLY;BYDAY=MO,WE"))
        audited = len(s.exec(select(AuditEntry)).all())
        with pytest.raises(Conflict) as e:
            service.check_programme(ctx(bed, s), body(bed, "Bản tin trùng", 6, 2))
        assert e.value.code == "programme_clash"
        p = e.value.params
        assert p["other"] == "Bản tin sáng" and p["other_id"] == first.id
        assert (p["time"], p["end"], p["date"], p["weekday"]) == ("06:00", "06:05", "01/03/2027", 0)
        assert p["receivers"] == len(bed.receivers["tra-son"]) and p["communes"] == "Xã Trà Sơn"
        # The API's message is unchanged: it names the other programme.
        assert '"Bản tin sáng"' in e.value.message and f"#{first.id}" in e.value.message
        assert len(service.list_programmes(ctx(bed, s), service.Page()).data) == 1
        assert len(s.exec(select(AuditEntry)).all()) == audited
        service.check_programme(ctx(bed, s), body(bed, "Bản tin chiều", 17))  # no clash: nothing raised


def test_an_edit_is_checked_against_the_others_but_not_itself(bed: Bed) -> None:
    with Session(bed.engine) as s:
        c = ctx(bed, s)
        morning = service.create_programme(c, body(bed, "Sáng", 6))
        service.create_programme(c, body(bed, "Trưa", 11))
        service.check_programme(c, ProgrammeUpdate(start=dt.datetime.combine(MONDAY, dt.time(6, 1), TZ)), morning.id)
        with pytest.raises(Conflict) as e:
            service.check_programme(c, ProgrammeUpdate(start=dt.datetime.combine(MONDAY, dt.time(11, 2), TZ)),
                                    morning.id)
        assert e.value.params["other"] == "Trưa"
        assert service.get_programme(c, morning.id).start.hour == 6  # unchanged


def test_the_policy_applies_to_a_dry_run(bed: Bed) -> None:
    with Session(bed.engine) as s:
        operator = ctx(bed, s, "commune_operator", {"tra-kot"})
        with pytest.raises(Hidden):
            service.check_programme(operator, body(bed, "Sang xã khác", 8))


def test_a_clash_with_a_programme_reaching_other_communes_is_named_as_shared(bed: Bed) -> None:
    with Session(bed.engine) as s:
        wide = body(bed, "Bản tin huyện", 7)
        wide.targets = Targets(communes=["tra-son", "tra-kot"])
        service.create_programme(ctx(bed, s), wide)
        operator = ctx(bed, s, "commune_operator", {"tra-son"})
        with pytest.raises(Conflict) as e:
            service.check_programme(operator, body(bed, "Của xã", 7))
        assert e.value.params["other"] == service.SHARED_TITLE and e.value.params["other_id"] is None
        assert e.value.params["communes"] == "Xã Trà Sơn"


def test_a_programme_that_would_never_play_says_so_by_code(bed: Bed) -> None:
    with Session(bed.engine) as s:
        with pytest.raises(Invalid) as e:
            service.check_programme(ctx(bed, s), body(bed, "Ngược", 6, rrule="FREQ=DAILY",
                                                      valid_from=dt.date(2027, 3, 10), valid_until=dt.date(2027, 3, 1)))
        assert e.value.code == "programme_valid_order"
        late = body(bed, "Hết hạn", 6, rrule="FREQ=DAILY", valid_from=dt.date(2020, 1, 1),
                    valid_until=dt.date(2020, 2, 1))
        with pytest.raises(Invalid) as e:
            service.check_programme(ctx(bed, s), late)
        assert e.value.code == "programme_never_plays"
