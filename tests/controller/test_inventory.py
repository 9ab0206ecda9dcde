"""The seed file: 13 units of Bắc Trà My, loaded idempotently; a bad file is refused with its reason."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from controller.config import DEFAULT_SEED
from controller.db import make_engine, migrate
from controller.db.models import Commune, Receiver
from controller.inventory import apply_seed, load_seed

NAMES = ["Thị trấn Trà My", "Xã Trà Bui", "Xã Trà Đốc", "Xã Trà Đông", "Xã Trà Dương", "Xã Trà Giác",
         "Xã Trà Giang", "Xã Trà Giáp", "Xã Trà Ka", "Xã Trà Kót", "Xã Trà Nú", "Xã Trà Sơn", "Xã Trà Tân"]


def test_bac_tra_my_seed(tmp_path: Path) -> None:
    seed = load_seed(DEFAULT_SEED)
    assert [c.name for c in seed.communes] == NAMES
    assert all(unicodedata.is_normalized("NFC", c.name) for c in seed.communes)
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with Session(engine) as s:
        added = apply_seed(s, seed)
        assert added == sum(v.clusters for c in seed.communes for v in c.villages) == 139
        assert apply_seed(s, seed) == 0  # idempotent
        assert len(s.exec(select(Commune)).all()) == 13
        assert s.get(Receiver, "tra-bui-thon-1-1") is not None
    engine.dispose()


def test_bad_seed_is_refused_with_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[district]\ncode="x"\nname="X"\n[[communes]]\ncode="Trà Bui"\nname="Xã Trà Bui"\nvillages=[]\n')
    with pytest.raises(ValidationError, match="topic level"):
        load_seed(bad)
