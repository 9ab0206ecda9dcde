"""Administrative units as data: load a district's seed file (TOML) and bring the database in line with it.

The file lists communes, their villages and how many loudspeaker clusters each village has; receiver ids
are derived as `{commune}-{village}-{n}`. Loading is idempotent: existing rows are updated, new ones added,
nothing is deleted (a receiver removed from the file keeps its history).

A village may carry a point (`lat`, `lon`) for the staff UI's map; each of its receivers is placed at a small,
fixed offset from it (`receiver_point`), so clusters of one village do not sit on top of each other. A
receiver that already has a point keeps it (it may have been placed by hand).
"""

from __future__ import annotations

import math
import tomllib
import unicodedata
from pathlib import Path

from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, select

from controller.db.models import Commune, Receiver, Village
from receivers.protocol import check_level


class VillageSeed(BaseModel):
    code: str
    name: str
    clusters: int = Field(ge=0, le=50)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)

    _code = field_validator("code")(check_level)


class CommuneSeed(BaseModel):
    code: str
    name: str
    kind: str = "xa"
    villages: list[VillageSeed]

    _code = field_validator("code")(check_level)


class DistrictSeed(BaseModel):
    code: str
    name: str
    province: str | None = None


class Seed(BaseModel):
    district: DistrictSeed
    communes: list[CommuneSeed]

    @field_validator("communes")
    @classmethod
    def _unique(cls, communes: list[CommuneSeed]) -> list[CommuneSeed]:
        codes = [c.code for c in communes]
        if len(codes) != len(set(codes)):
            raise ValueError("commune codes must be unique")
        return communes


def load_seed(path: Path) -> Seed:
    with path.open("rb") as f:
        return Seed.model_validate(tomllib.load(f))


def receiver_id(commune: str, village: str, n: int) -> str:
    return check_level(f"{commune}-{village}-{n}")


def receiver_point(lat: float, lon: float, n: int) -> tuple[float, float]:
    """Where cluster `n` of a village at (`lat`, `lon`) is drawn: about 60 m × √n away, each at its own
    angle (the golden angle apart), the same every time."""
    angle, radius = n * 2.39996, 0.0006 * math.sqrt(n)
    return round(lat + radius * math.sin(angle), 6), round(lon + radius * math.cos(angle), 6)


def apply_seed(session: Session, seed: Seed) -> int:
    """Upsert the seed's communes, villages and receivers; return how many receivers were added."""
    added = 0
    communes = {c.code: c for c in session.exec(select(Commune))}
    for cs in seed.communes:
        commune = communes.get(cs.code) or Commune(code=cs.code, name="", kind=cs.kind)
        commune.name, commune.kind = unicodedata.normalize("NFC", cs.name), cs.kind
        session.add(commune)
        session.flush()
        assert commune.id is not None
        villages = {v.code: v for v in session.exec(select(Village).where(Village.commune_id == commune.id))}
        for vs in cs.villages:
            village = villages.get(vs.code) or Village(commune_id=commune.id, code=vs.code, name="")
            village.name = unicodedata.normalize("NFC", vs.name)
            if vs.lat is not None and vs.lon is not None:
                village.lat, village.lon = vs.lat, vs.lon
            session.add(village)
            session.flush()
            for n in range(1, vs.clusters + 1):
                rid = receiver_id(cs.code, vs.code, n)
                receiver = session.get(Receiver, rid)
                if receiver is None:
                    receiver = Receiver(id=rid, name=f"Cụm loa {n} – {village.name}",
                                        commune_id=commune.id, village_id=village.id)
                    added += 1
                if receiver.lat is None and village.lat is not None and village.lon is not None:
                    receiver.lat, receiver.lon = receiver_point(village.lat, village.lon, n)
                session.add(receiver)
    session.commit()
    return added
