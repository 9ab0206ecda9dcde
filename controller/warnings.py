"""The event types of pre-recorded warnings (cảnh báo ghi sẵn) and how a CAP alert's `<info>` maps to one.

- `EVENT_TYPES`: key → `EventType` (its Vietnamese name, the words and CAP `eventCode` values of warnings that
  name it), most specific first: a "flash flood" is a flash flood before it is a flood. A text maps to the type
  it names first; most specific first decides only between words starting at the same place.
- `event_type_of(info)`: the event type of a CAP `<info>`: its `eventCode` values first, then the words of its
  `<event>`, then of its headline; None when nothing matches.
- `communes_sentence(names)`: "Xã Trà Đốc, xã Trà Giác." — what is read after a recording.

Words are matched whole (not inside another word), case-insensitively and with their diacritics: Vietnamese
without its tone marks is ambiguous ("bao" is both bão, storm, and báo, as in cảnh báo, warning), so a
text without them matches only the English words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from controller.cap import CapInfo


@dataclass(frozen=True)
class EventType:
    key: str
    name: str  # Vietnamese, as staff read it and as an emergency's title says it
    words: tuple[str, ...]  # English and Vietnamese, lower case
    codes: tuple[str, ...] = ()  # CAP eventCode values (SAME warnings and common ones), upper case


_TYPES = (
    EventType("flash-flood", "Lũ quét", ("lũ quét", "lũ ống", "flash flood", "flash flooding", "flashflood"),
              ("FFW", "FLASHFLOOD", "FLASH-FLOOD", "FLASH_FLOOD")),
    EventType("landslide", "Sạt lở đất", ("sạt lở đất", "sạt lở", "lở đất", "lũ bùn đá", "trượt lở", "landslide",
                                          "landslides", "mudslide", "mudflow", "debris flow", "rockfall"),
              ("LANDSLIDE", "LSW")),
    EventType("tropical-depression", "Áp thấp nhiệt đới", ("áp thấp nhiệt đới", "vùng áp thấp",
                                                          "tropical depression"),
              ("TROPICAL-DEPRESSION", "TROPICAL_DEPRESSION")),
    EventType("thunderstorm", "Dông, lốc, sét", ("dông", "giông", "lốc", "lốc xoáy", "sét", "mưa đá", "thunderstorm",
                                                 "thunderstorms", "severe thunderstorm", "tornado", "lightning",
                                                 "hail", "whirlwind"),
              ("SVR", "TOR", "THUNDERSTORM", "TORNADO", "LIGHTNING")),
    EventType("storm", "Bão", ("bão", "siêu bão", "storm", "tropical storm", "typhoon", "super typhoon", "cyclone",
                               "tropical cyclone", "hurricane", "storm surge"),
              ("TRW", "HUW", "SSW", "TYPHOON", "STORM", "TROPICAL-STORM",
               "TROPICAL_STORM", "CYCLONE")),
    EventType("flood", "Lũ, ngập lụt", ("lũ", "lụt", "lũ lụt", "ngập lụt", "ngập úng", "nước dâng", "flood", "floods",
                                       "flooding", "inundation", "river flood"),
              ("FLW", "FLOOD")),
    EventType("heavy-rain", "Mưa lớn", ("mưa lớn", "mưa to", "mưa rất to", "mưa to đến rất to", "heavy rain",
                                        "heavy rainfall", "torrential rain", "rainstorm"),
              ("HEAVY-RAIN", "HEAVY_RAIN", "RAIN")),
    EventType("forest-fire", "Cháy rừng", ("cháy rừng", "nguy cơ cháy rừng", "forest fire", "wildfire", "wild fire",
                                          "wildland fire", "bushfire", "bush fire", "grass fire"),
              ("FRW", "FWW", "FIRE", "WILDFIRE", "FOREST-FIRE", "FOREST_FIRE")),
    EventType("earthquake", "Động đất", ("động đất", "dư chấn", "earthquake", "seismic", "aftershock"),
              ("EQW", "EARTHQUAKE")),
    EventType("cold", "Rét đậm, rét hại", ("rét đậm", "rét hại", "rét đậm rét hại", "không khí lạnh", "băng giá",
                                          "sương muối", "cold wave", "cold", "extreme cold", "frost", "freeze"),
              ("ECW", "FZW", "COLD", "COLD-WAVE", "COLD_WAVE")),
    EventType("epidemic", "Dịch bệnh", ("dịch bệnh", "bệnh dịch", "ổ dịch", "epidemic", "pandemic",
                                        "outbreak", "disease outbreak", "infectious disease"),
              ("EPIDEMIC", "PANDEMIC", "OUTBREAK", "DISEASE")),
)
EVENT_TYPES: dict[str, EventType] = {e.key: e for e in _TYPES}
# SAME codes of watches (the event may happen), statements and advisories: not a warning that it is happening,
# so they never play a recorded warning (whose words say it is) — their text is read instead.
NOT_WARNINGS = frozenset({"FFA", "FFS", "FLA", "FLS", "SVA", "SVS", "TOA", "TRA", "HUA", "HLS", "SSA", "TSA",
                          "WSA", "BZA", "CFA", "EQA", "SPS", "HWA", "FRA", "NOW"})


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().replace("-", " ").split())


_PATTERNS = [(e.key, re.compile(r"(?<!\w)(?:" + "|".join(re.escape(_norm(w)) for w in
                                                            sorted(e.words, key=len, reverse=True)) + r")(?!\w)"))
             for e in _TYPES]


def event_type_of_text(text: str) -> str | None:
    """The event type named first in `text` ("Bão kèm dông, lốc" is a storm), else None; where the words of
    two types start at the same place the longer, more specific one wins ("lũ quét" before "lũ")."""
    said = _norm(text)
    found = [(m.start(), -len(m.group()), rank, key)
             for rank, (key, pattern) in enumerate(_PATTERNS) if (m := pattern.search(said)) is not None]
    return min(found)[3] if found else None


def event_type_of_codes(codes: Iterable[str]) -> str | None:
    """The most specific event type one of the CAP eventCode values names, else None (watches and
    statements, `NOT_WARNINGS`, name none)."""
    wanted = {c.strip().upper() for c in codes} - NOT_WARNINGS
    for e in _TYPES:
        if wanted & set(e.codes) or wanted & {e.key.upper()}:
            return e.key
    return None


def event_type_of(info: CapInfo) -> str | None:
    """A CAP `<info>`'s event type: its eventCode values, then its `<event>`, then its headline; None for a
    watch or statement (an eventCode in `NOT_WARNINGS` and none naming a warning), whatever its words."""
    codes = [code.value.strip().upper() for code in info.event_codes]
    if set(codes) & NOT_WARNINGS and event_type_of_codes(codes) is None:
        return None
    return (event_type_of_codes(codes)
            or event_type_of_text(info.event) or event_type_of_text(info.headline or ""))


def name_of(key: str | None) -> str | None:
    return EVENT_TYPES[key].name if key in EVENT_TYPES else None


def communes_sentence(names: Iterable[str]) -> str:
    """The communes' names as one sentence read after a recording: "Xã Trà Đốc, xã Trà Giác." (the first
    word of every name but the first in lower case, as Vietnamese writes a list)."""
    parts = [n.strip() for n in names if n.strip()]
    if not parts:
        return ""
    said = [parts[0], *(p[:1].lower() + p[1:] for p in parts[1:])]
    return ", ".join(said) + "."
