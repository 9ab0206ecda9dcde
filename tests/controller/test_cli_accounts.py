"""`truyenthanh user …` and `truyenthanh token …` against a real database file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from controller.cli import app
from controller.db import make_engine
from controller.db.models import ApiToken, AuditEntry, User
from controller.services.accounts import principal_for_token

Run = Callable[..., tuple[int, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    monkeypatch.setenv("TT_DATA_DIR", str(tmp_path))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    invoke("seed")
    yield invoke
    make_engine(f"sqlite:///{tmp_path / 'truyenthanh.db'}").dispose()


def db(tmp_path: Path) -> Session:
    return Session(make_engine(f"sqlite:///{tmp_path / 'truyenthanh.db'}"))


def test_token_create_with_an_empty_commune_list_is_refused(run: Run, tmp_path: Path) -> None:
    # The leak: `--communes ","` was read as no list at all, and made a token for every commune.
    code, out = run("token", "create", "--scopes", "emergency:trigger", "--communes", ",")
    assert code != 0 and "empty commune list" in out
    with db(tmp_path) as s:
        assert s.exec(select(ApiToken)).all() == []


def test_a_person_and_a_token_that_acts_for_them(run: Run, tmp_path: Path) -> None:
    code, out = run("user", "add", "canbo-tranu", "--role", "commune_operator", "--communes", "tra-nu",
                    "--name", "Nguyễn Văn A", "--password", "mật-khẩu-đủ-dài")
    assert code == 0, out
    code, out = run("token", "create", "--scopes", "emergency:trigger", "--owner", "canbo-tranu")
    assert code != 0 and "more rights than its owner" in out
    code, out = run("token", "create", "--scopes", "receivers:read", "--owner", "canbo-tranu",
                    "--expires-days", "30", "--name", "dien-thoai")
    assert code == 0, out
    token = out.strip().splitlines()[-1]
    with db(tmp_path) as s:
        who = principal_for_token(s, token)
        assert who.communes == frozenset({"tra-nu"}) and who.role == "commune_operator"
    code, out = run("user", "disable", "canbo-tranu")
    assert code == 0
    with db(tmp_path) as s, pytest.raises(Exception, match="disabled"):
        principal_for_token(s, token)
    code, out = run("token", "list")
    assert "dien-thoai" in out and token not in out
    code, out = run("token", "revoke", "1")
    assert code == 0 and "revoked" in out, out
    with db(tmp_path) as s:
        assert s.exec(select(User)).one().disabled
        actions = [e.action for e in s.exec(select(AuditEntry))]
    assert actions == ["user.create", "token.create", "user.update", "token.revoke"]
