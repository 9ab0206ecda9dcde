"""Vietnamese text normalisation: what staff type → what the loudspeaker says, one table per category."""

from __future__ import annotations

import unicodedata

import pytest

from audio.vi_text import normalize, read_integer

CASES = {
    "numbers": [
        ("0", "không"), ("5", "năm"), ("10", "mười"), ("15", "mười lăm"), ("21", "hai mươi mốt"),
        ("24", "hai mươi tư"), ("25", "hai mươi lăm"), ("105", "một trăm linh năm"), ("110", "một trăm mười"),
        ("2026", "hai nghìn không trăm hai mươi sáu"), ("1.500", "một nghìn năm trăm"),
        ("1.000.005", "một triệu không trăm linh năm"), ("3.200.000.000", "ba tỷ hai trăm triệu"),
        ("2,5", "hai phẩy năm"), ("0,05", "không phẩy không năm"),
        ("1.234,75", "một nghìn hai trăm ba mươi tư phẩy bảy mươi lăm"),
    ],
    "ordinals": [
        ("thứ 2 tuần sau", "thứ hai tuần sau"), ("Thứ 4", "Thứ tư"), ("lần thứ 1", "lần thứ nhất"),
        ("đạt hạng 3", "đạt hạng ba"),
    ],
    "dates": [
        ("26/11/2026", "ngày hai mươi sáu tháng mười một năm hai nghìn không trăm hai mươi sáu"),
        ("ngày 5/4/2027", "ngày năm tháng tư năm hai nghìn không trăm hai mươi bảy"),
        ("ngày 01-02-2026", "ngày một tháng hai năm hai nghìn không trăm hai mươi sáu"),
        ("từ ngày 26/11 đến 30/11", "từ ngày hai mươi sáu tháng mười một đến ngày ba mươi tháng mười một"),
        ("tháng 10/2026", "tháng mười năm hai nghìn không trăm hai mươi sáu"),
    ],
    "times": [
        ("lúc 6h30", "lúc sáu giờ ba mươi phút"), ("7h", "bảy giờ"), ("06:05", "sáu giờ năm phút"),
        ("17 giờ 15", "mười bảy giờ mười lăm"), ("từ 7h-9h", "từ bảy giờ-chín giờ"),
    ],
    "phone numbers": [
        ("gọi 0905 123 456", "gọi không chín không năm, một hai ba, bốn năm sáu"),
        ("0235.3882.115", "không hai ba năm, ba tám tám hai, một một năm"),
        ("0905123456", "không chín không năm một hai ba bốn năm sáu"),
        ("+84 905 123 456", "không, chín không năm, một hai ba, bốn năm sáu"),
    ],
    "money": [
        ("1.500.000 đồng", "một triệu năm trăm nghìn đồng"), ("50.000đ", "năm mươi nghìn đồng"),
        ("2,5 triệu VNĐ", "hai phẩy năm triệu đồng"), ("3 tỷ đồng", "ba tỷ đồng"),
        ("200.000 VND", "hai trăm nghìn đồng"),
    ],
    "percentages": [
        ("15%", "mười lăm phần trăm"), ("2,5 %", "hai phẩy năm phần trăm"), ("100%", "một trăm phần trăm"),
    ],
    "units": [
        ("120 mm", "một trăm hai mươi mi-li-mét"), ("35°C", "ba mươi lăm độ C"), ("3 ha", "ba héc-ta"),
        ("12 km", "mười hai ki-lô-mét"), ("5 m³", "năm mét khối"), ("5 m3", "năm mét khối"),
        ("40 kg", "bốn mươi ki-lô-gam"), ("60 km/h", "sáu mươi ki-lô-mét trên giờ"),
    ],
    "abbreviations": [
        ("UBND xã", "ủy ban nhân dân xã"), ("HĐND huyện", "hội đồng nhân dân huyện"),
        ("UBMTTQ xã", "ủy ban mặt trận tổ quốc xã"), ("BCH quân sự", "ban chỉ huy quân sự"),
        ("PCCC rừng", "phòng cháy chữa cháy rừng"),
        ("BCH PCTT&TKCN", "ban chỉ huy phòng chống thiên tai và tìm kiếm cứu nạn"),
        ("trường THCS và THPT", "trường trung học cơ sở và trung học phổ thông"),
        ("TP Tam Kỳ", "thành phố Tam Kỳ"), ("CSGT", "cảnh sát giao thông"),
        ("TPHCM", "TPHCM"),  # unknown: left alone, not read letter by letter as TP + HCM
    ],
    "ranges and mixed": [
        ("nghỉ 3-4 ngày", "nghỉ ba đến bốn ngày"),
        ("UBND xã họp lúc 7h30 ngày 26/11/2026.", "ủy ban nhân dân xã họp lúc bảy giờ ba mươi phút ngày hai mươi sáu "
         "tháng mười một năm hai nghìn không trăm hai mươi sáu."),
    ],
}


@pytest.mark.parametrize(("written", "spoken"), [c for cases in CASES.values() for c in cases],
                         ids=[f"{k}:{w}" for k, cases in CASES.items() for w, _ in cases])
def test_normalisation_table(written: str, spoken: str) -> None:
    assert normalize(written) == spoken


def test_nfc_and_staff_abbreviations_win() -> None:
    decomposed = unicodedata.normalize("NFD", "Xã Trà Đốc")
    assert normalize(decomposed) == "Xã Trà Đốc" and unicodedata.is_normalized("NFC", normalize(decomposed))
    assert normalize("UBND và HTX Trà Giác", {"UBND": "ủy ban", "HTX": "hợp tác xã"}) == "ủy ban và hợp tác xã Trà Giác"


def test_every_integer_reads_without_gaps() -> None:
    for n in list(range(0, 2100)) + [10**6, 10**9 + 1, 999_999_999_999]:
        words = read_integer(n).split()
        assert words and "" not in words and not (words[0] == "không" and n)
