"""Account refusals the staff UI words itself (`errors.<code>` in controller/ui/locale): a username taken, a
token wider than its owner."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from controller.db.models import User
from controller.errors import Conflict, Invalid
from controller.policy import Principal, Right
from controller.services import Ctx
from controller.services.accounts import TokenCreate, UserCreate, create_token, create_user
from controller.ui.i18n import t
from tests.conftest import Seeded

ADMIN = Principal("user", 1, "huyen", frozenset({Right.ADMIN}), None)


def test_a_taken_username_and_a_token_beyond_its_owner_carry_codes(seeded: Seeded) -> None:
    with Session(seeded.engine) as s:
        ctx = Ctx(s, ADMIN, seeded.settings, seeded.engine)
        body = UserCreate(username="can-bo-nu", display_name="Cán bộ", password="mat-khau-du-dai",
                          role="commune_operator", communes=["tra-nu"])
        create_user(ctx, body)
        with pytest.raises(Conflict) as taken:
            create_user(ctx, body)
        assert taken.value.code == "username_taken"
        assert t(f"errors.{taken.value.code}", **taken.value.params).startswith("Tên đăng nhập «can-bo-nu»")
        assert s.exec(select(User).where(User.username == "can-bo-nu")).one()
        with pytest.raises(Invalid) as beyond:
            create_token(ctx, TokenCreate(name="x", scopes=["emergency:trigger"], owner="can-bo-nu"))
        assert beyond.value.code == "token_beyond_owner" and beyond.value.params == {"owner": "can-bo-nu"}
        with pytest.raises(Invalid) as unknown:
            create_token(ctx, TokenCreate(name="x", scopes=["no-such-scope"]))
        assert unknown.value.code is None
