"""Migrations upgrade a database that already holds a district, not only an empty one."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlmodel import Session, select

from controller.config import Settings
from controller.db import alembic_config, make_engine, migrate
from controller.db.models import Receiver
from controller.inventory import apply_seed, load_seed


def test_upgrade_from_before_emergencies_keeps_every_receiver(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(alembic_config(engine), "0005")
    with engine.begin() as conn:  # the district as a 0005 controller stored it (raw SQL: today's models are newer)
        conn.exec_driver_sql("INSERT INTO commune (id, code, name, kind) VALUES (1, 'tra-kot', 'Xã Trà Kót', 'xa')")
        conn.exec_driver_sql("INSERT INTO receiver (id, name, commune_id, created_at) "
                             "VALUES ('tra-kot-thon-1-1', 'Cụm loa 1', 1, '2026-11-01 00:00:00')")
        conn.exec_driver_sql("INSERT INTO receiverstatus (receiver_id, availability) "
                             "VALUES ('tra-kot-thon-1-1', 'online')")
    migrate(engine)
    with Session(engine) as s:
        [receiver] = s.exec(select(Receiver)).all()
        assert receiver.id == "tra-kot-thon-1-1" and receiver.accepts_tests is False
        apply_seed(s, load_seed(Settings().seed_file))  # and the upgraded schema takes a whole district
        assert len(s.exec(select(Receiver)).all()) > 100
