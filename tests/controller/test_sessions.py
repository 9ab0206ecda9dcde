"""Web sessions of the staff UI (controller.services.sessions) without a browser: the sign-in limit per name
and per address, how a session ends, the CSRF check."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session

from controller.config import UiSettings
from controller.db.models import WebSession
from controller.errors import Forbidden, RateLimited, Unauthenticated
from controller.services.accounts import UserCreate, add_user, hash_token
from controller.services.sessions import LoginThrottle, check_csrf, current, sign_in, sign_out
from tests.conftest import Seeded

PW = "mat-khau-dung-roi"


@pytest.fixture
def people(seeded: Seeded) -> Seeded:
    with Session(seeded.engine) as s:
        for name in ("lan", "minh"):
            add_user(s, UserCreate(username=name, display_name=name, password=PW, role="commune_operator",
                                   communes=["tra-nu"]), created_by="tests")
    return seeded


def test_the_name_is_locked_after_five_failures_even_for_the_right_password(people: Seeded) -> None:
    ui, throttle = UiSettings(), LoginThrottle(5, 20, 900)
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            sign_in(people.engine, ui, throttle, "lan", "sai-mat-khau", "10.0.0.1", None)
    with pytest.raises(RateLimited):
        sign_in(people.engine, ui, throttle, "lan", PW, "10.0.0.2", None)  # from another address too
    assert sign_in(people.engine, ui, throttle, "minh", PW, "10.0.0.1", None).principal.name == "minh"


def test_an_address_is_locked_after_failures_across_names_and_an_own_login_does_not_unlock_it(people: Seeded) -> None:
    ui, throttle = UiSettings(), LoginThrottle(5, 3, 900)
    for name in ("x1", "x2", "lan"):
        with pytest.raises(Unauthenticated):
            sign_in(people.engine, ui, throttle, name, "sai-mat-khau", "10.0.0.9", None)
    with pytest.raises(RateLimited):
        sign_in(people.engine, ui, throttle, "minh", PW, "10.0.0.9", None)
    assert sign_in(people.engine, ui, throttle, "minh", PW, "10.0.0.8", None)


def test_a_session_is_stored_as_a_hash_and_ends_when_signed_out_or_expired(people: Seeded) -> None:
    ui = UiSettings()
    signed = sign_in(people.engine, ui, LoginThrottle(5, 20, 900), "lan", PW, "127.0.0.1", "test")
    with Session(people.engine) as s:
        assert s.get(WebSession, signed.token) is None and s.get(WebSession, hash_token(signed.token))
        assert current(s, ui, signed.token).principal.name == "lan"
        with pytest.raises(Forbidden):
            check_csrf(s, ui, signed.token, "not-the-token")
        assert check_csrf(s, ui, signed.token, signed.csrf).principal.name == "lan"
        row = s.get(WebSession, hash_token(signed.token))
        assert row is not None
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        s.add(row)
        s.commit()
        with pytest.raises(Unauthenticated):
            current(s, ui, signed.token)
    again = sign_in(people.engine, ui, LoginThrottle(5, 20, 900), "lan", PW, "127.0.0.1", "test")
    sign_out(people.engine, again.token, "user:lan", "127.0.0.1")
    with Session(people.engine) as s, pytest.raises(Unauthenticated):
        current(s, ui, again.token)
