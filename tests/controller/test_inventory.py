"""The seed file: 13 units of Bắc Trà My, loaded idempotently; a bad file is refused with its reason."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from controller.config import DEFAULT_SEED
from controller.db import make_engine, migrate
from controller.db.models import Commune, Receiver, Village
from controller.inventory import apply_seed, load_seed, receiver_point

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


def test_seed_places_villages_and_receivers_on_the_map_inside_the_district(tmp_path: Path) -> None:
    seed = load_seed(DEFAULT_SEED)
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    with Session(engine) as s:
        apply_seed(s, seed)
        villages = s.exec(select(Village)).all()
        assert villages and all(v.lat is not None and v.lon is not None for v in villages)
        receivers = s.exec(select(Receiver)).all()
        # Every point lies in Bắc Trà My (made-up points, but inside the district's box).
        for r in receivers:
            assert r.lat is not None and r.lon is not None
            assert 15.0 <= r.lat <= 15.3 and 108.05 <= r.lon <= 108.35, r.id
        # Two clusters of one village are near their village but not on the same spot.
        one, two = s.get(Receiver, "tra-bui-thon-1-1"), s.get(Receiver, "tra-bui-thon-1-2")
        assert one is not None and two is not None and (one.lat, one.lon) != (two.lat, two.lon)
        village = s.get(Village, one.village_id)
        assert village is not None and village.lat is not None and village.lon is not None
        assert abs(one.lat - village.lat) < 0.002 and abs(one.lon - village.lon) < 0.002
        # A point placed by hand survives loading the seed again; the rest stay where they were.
        one.lat, one.lon = 15.1, 108.1
        s.add(one)
        s.commit()
        apply_seed(s, seed)
        s.refresh(one)
        s.refresh(two)
        assert (one.lat, one.lon) == (15.1, 108.1)
        assert (two.lat, two.lon) == receiver_point(village.lat, village.lon, 2)
    engine.dispose()
