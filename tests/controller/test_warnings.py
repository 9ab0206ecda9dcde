"""Event types of pre-recorded warnings: a CAP alert's `<info>` (its eventCode values, its event, its
headline) maps to the most specific type — a flash flood before a flood — in English or Vietnamese."""

from __future__ import annotations

import pytest

from controller import cap as caplib
from controller.warnings import EVENT_TYPES, communes_sentence, event_type_of, event_type_of_text

from .test_cap import edit, sample


@pytest.mark.parametrize(("event", "expected"), [
    ("Lũ quét, sạt lở đất", "flash-flood"),  # most specific first: the flash flood is named first
    ("Flash Flood Warning", "flash-flood"),
    ("flash-flood", "flash-flood"),
    ("Sạt lở đất", "landslide"),
    ("Landslide", "landslide"),
    ("Áp thấp nhiệt đới", "tropical-depression"),
    ("Tropical Depression", "tropical-depression"),
    ("Bão số 3 (Yagi)", "storm"),
    ("Typhoon", "storm"),
    ("Tropical Storm Warning", "storm"),
    ("Severe Thunderstorm Warning", "thunderstorm"),  # not a storm: "storm" inside another word is not a word
    ("Dông, lốc, sét", "thunderstorm"),
    ("Tornado Warning", "thunderstorm"),
    ("Lũ trên sông Trường", "flood"),
    ("Ngập lụt", "flood"),
    ("Flood Warning", "flood"),
    ("Mưa lớn", "heavy-rain"),
    ("Heavy Rain", "heavy-rain"),
    ("Cháy rừng cấp IV", "forest-fire"),
    ("Wildfire", "forest-fire"),
    ("Động đất", "earthquake"),
    ("Earthquake", "earthquake"),
    ("Rét đậm, rét hại", "cold"),
    ("Cold wave", "cold"),
    ("Dịch bệnh", "epidemic"),
    ("Epidemic", "epidemic"),
    ("Cảnh báo", None),  # báo (to report) is not bão (storm)
    ("Chiến dịch tiêm chủng", None),  # a campaign, not an epidemic
    ("Lũy tre làng", None),  # lũ only as a whole word
    ("Civil emergency message", None),
    ("Bão kèm dông, lốc", "storm"),  # the type named first, not the first in the table
    ("Dông lốc, mưa đá sau bão", "thunderstorm"),
    ("Flash flood and river flood warning", "flash-flood"),
    ("Mưa lớn gây lũ quét", "heavy-rain"),
    ("Lũ quét", "flash-flood"),  # "lũ" starts there too: the longer words win
])
def test_event_text_maps_to_the_most_specific_type(event: str, expected: str | None) -> None:
    assert event_type_of_text(event) == expected


def test_every_type_has_a_vietnamese_name_and_maps_from_its_own_name() -> None:
    assert {"flash-flood", "landslide", "storm", "tropical-depression", "flood", "forest-fire", "earthquake", "cold",
            "thunderstorm", "heavy-rain", "epidemic"} <= set(EVENT_TYPES)
    for key, kind in EVENT_TYPES.items():
        assert event_type_of_text(kind.name) == key, kind.name


def test_cap_info_maps_by_event_code_then_event_then_headline() -> None:
    info = caplib.choose_info(caplib.parse_alert(sample("flash-flood-alert.xml")))
    assert info is not None and event_type_of(info) == "flash-flood"
    # An eventCode wins over the words: the sender's own classification.
    coded = edit("flash-flood-alert.xml", "<responseType>",
                 "<eventCode><valueName>SAME</valueName><value>EQW</value></eventCode><responseType>")
    info = caplib.choose_info(caplib.parse_alert(coded))
    assert info is not None and info.event_codes == (("SAME", "EQW"),) and event_type_of(info) == "earthquake"
    # An event that names nothing known: the headline decides.
    vague = edit("flash-flood-alert.xml", "<event>Lũ quét, sạt lở đất</event>", "<event>Thiên tai</event>")
    info = caplib.choose_info(caplib.parse_alert(vague))
    assert info is not None and event_type_of(info) == "flash-flood"
    landslide = caplib.choose_info(caplib.parse_alert(sample("landslide-bilingual.xml")))
    fire = caplib.choose_info(caplib.parse_alert(sample("forest-fire-test.xml")))
    assert landslide is not None and event_type_of(landslide) == "landslide"
    assert fire is not None and event_type_of(fire) == "forest-fire"


def test_communes_are_read_as_one_sentence() -> None:
    assert communes_sentence(["Xã Trà Đốc", "Xã Trà Giác"]) == "Xã Trà Đốc, xã Trà Giác."
    assert communes_sentence(["Thị trấn Trà My"]) == "Thị trấn Trà My."
    assert communes_sentence([]) == ""


def code(*values: str) -> bytes:
    codes = "".join(f"<eventCode><valueName>SAME</valueName><value>{v}</value></eventCode>" for v in values)
    return edit("flash-flood-alert.xml", "<responseType>", codes + "<responseType>")


def test_watches_and_statements_are_not_warnings() -> None:
    for watch in ("FFA", "FFS", "FLS", "TOA", "SVA"):  # a flash flood watch is not "lũ quét đang xảy ra"
        info = caplib.choose_info(caplib.parse_alert(code(watch)))
        assert info is not None and event_type_of(info) is None, watch
    for warning, kind in (("FFW", "flash-flood"), ("TOR", "thunderstorm"), ("FLW", "flood")):
        info = caplib.choose_info(caplib.parse_alert(code(warning)))
        assert info is not None and event_type_of(info) == kind, warning


def test_an_incomplete_event_code_is_skipped_not_the_alert() -> None:
    raw = edit("flash-flood-alert.xml", "<responseType>",
               "<eventCode><valueName>SAME</valueName></eventCode><eventCode><value>EQW</value></eventCode>"
               "<eventCode><valueName>SAME</valueName><value>FFW</value></eventCode><responseType>")
    info = caplib.choose_info(caplib.parse_alert(raw))
    assert info is not None and info.event_codes == (("SAME", "FFW"),) and event_type_of(info) == "flash-flood"
    assert info.response_types == ("Evacuate",)
