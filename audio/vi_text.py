"""Vietnamese text normalisation for speech: what the engine should say for what staff typed.

`normalize(text, extra_abbreviations)` runs a pipeline of small pure steps, in this order (each later step
sees the output of the earlier ones, so e.g. a phone number is never read as one large number):

    NFC → abbreviations → phone numbers → dates → times → ordinals → numbers with a unit
    (%, money, km, ha, mm, m³, °C, kg…) → ranges → plain numbers → tidy

Conventions follow official Vietnamese usage: "." groups thousands and "," marks decimals
(1.500.000 = một triệu năm trăm nghìn; 2,5 = hai phẩy năm); "nghìn" (not "ngàn"); "linh" for a zero tens
digit (một trăm linh năm); "mốt", "tư", "lăm" after tens (hai mươi mốt, hai mươi tư, mười lăm).
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path

DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]
SCALES = ["", "nghìn", "triệu", "tỷ", "nghìn tỷ", "triệu tỷ"]

# A number as written in Vietnamese: 1.500.000 / 2,5 / 120 (dots group thousands, comma is the decimal mark)
NUM = r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?"
W = r"[\w\u00C0-\u1EF9]"  # a word character, Vietnamese letters included


# ------------------------------------------------------------------------------------ reading numbers


def _triple(n: int, full: bool) -> list[str]:
    """0–999; `full` reads "không trăm"/"linh" as needed inside a larger number."""
    h, t, u = n // 100, n // 10 % 10, n % 10
    words: list[str] = []
    if h or full:
        words += [DIGITS[h], "trăm"]
    if t == 0:
        if u and (h or full):
            words += ["linh", DIGITS[u]]
        elif u:
            words.append(DIGITS[u])
    elif t == 1:
        words.append("mười")
        if u:
            words.append("lăm" if u == 5 else DIGITS[u])
    else:
        words += [DIGITS[t], "mươi"]
        if u:
            words.append({1: "mốt", 4: "tư", 5: "lăm"}.get(u, DIGITS[u]))
    return words


def read_integer(n: int) -> str:
    if n == 0:
        return "không"
    if n < 0:
        return "âm " + read_integer(-n)
    groups = []
    while n:
        groups.append(n % 1000)
        n //= 1000
    if len(groups) > len(SCALES):
        return " ".join(DIGITS[int(d)] for d in str(n))
    words: list[str] = []
    top = len(groups) - 1
    for i in range(top, -1, -1):
        g = groups[i]
        if g == 0:
            continue
        words += _triple(g, full=i != top)
        if SCALES[i]:
            words.append(SCALES[i])
    return " ".join(words)


def read_number(written: str) -> str:
    """A number as written ("1.500.000", "2,5", "007") in words."""
    whole, _, frac = written.partition(",")
    text = read_integer(int(whole.replace(".", "")))
    if frac:
        text += " phẩy " + (read_digits(frac) if frac.startswith("0") else read_integer(int(frac)))
    return text


def read_digits(digits: str) -> str:
    return " ".join(DIGITS[int(d)] for d in digits if d.isdigit())


def read_ordinal(n: int) -> str:
    return {1: "nhất", 4: "tư"}.get(n, read_integer(n))


def read_month(m: int) -> str:
    return {4: "tư"}.get(m, read_integer(m))


# -------------------------------------------------------------------------------------------- steps

Step = Callable[[str], str]


def _sub(pattern: str, repl: Callable[[re.Match[str]], str], flags: int = 0) -> Step:
    rx = re.compile(pattern, flags)
    return lambda text: rx.sub(repl, text)


def _phone(m: re.Match[str]) -> str:
    groups = re.split(r"[\s.]+", m.group(0).replace("+84", "0 ").strip())
    return ", ".join(read_digits(g) for g in groups if g)


def _date(m: re.Match[str]) -> str:
    before, d, mo, y = m.group(1) or "", int(m.group(2)), int(m.group(3)), m.group(4)
    if not (1 <= d <= 31 and 1 <= mo <= 12):
        return m.group(0)
    prefix = before if before else "ngày "
    text = f"{prefix}{read_integer(d)} tháng {read_month(mo)}"
    return text + (f" năm {read_integer(int(y))}" if y else "")


def _month_year(m: re.Match[str]) -> str:
    mo = int(m.group(2))
    if not 1 <= mo <= 12:
        return m.group(0)
    return f"{m.group(1) or 'tháng '}{read_month(mo)} năm {read_integer(int(m.group(3)))}"


def _time(m: re.Match[str]) -> str:
    h, mins = int(m.group(1)), m.group(2)
    if h > 24 or (mins and int(mins) > 59):
        return m.group(0)
    text = f"{read_integer(h)} giờ"
    if mins and int(mins):
        text += f" {read_integer(int(mins))} phút"
    return text


UNITS = {
    "%": "phần trăm", "km/h": "ki-lô-mét trên giờ", "km²": "ki-lô-mét vuông", "km2": "ki-lô-mét vuông",
    "km": "ki-lô-mét", "m³": "mét khối", "m3": "mét khối", "m²": "mét vuông", "m2": "mét vuông",
    "mm": "mi-li-mét", "cm": "xen-ti-mét", "ha": "héc-ta", "kg": "ki-lô-gam", "°C": "độ C", "ºC": "độ C",
    "oC": "độ C", "độ C": "độ C", "tấn": "tấn", "lít": "lít", "l": "lít", "ml": "mi-li-lít", "m": "mét",
    "VNĐ": "đồng", "VND": "đồng", "vnđ": "đồng", "đ": "đồng", "đồng": "đồng", "USD": "đô la Mỹ",
}
_UNIT_RX = "|".join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))


def _unit(m: re.Match[str]) -> str:
    return f"{read_number(m.group(1))} {UNITS[m.group(2)]}"


def _abbreviations(table: Mapping[str, str]) -> Step:
    if not table:
        return lambda text: text
    keys = sorted(table, key=len, reverse=True)
    rx = re.compile(r"(?<!" + W + r")(" + "|".join(re.escape(k) for k in keys) + r")(?!" + W + r")")
    return lambda text: rx.sub(lambda m: table[m.group(1)], text)


def _steps(abbreviations: Mapping[str, str]) -> list[Step]:
    return [
        lambda text: unicodedata.normalize("NFC", text),
        _abbreviations(abbreviations),
        # Phone numbers: 0905 123 456, 0905.123.456, 0905123456, +84 905 123 456 — digit by digit.
        _sub(r"(?<![\d,.])(?:\+84[\s.]?|0)\d(?:[\s.]?\d){8,9}(?![\d,])", _phone),
        # Dates: 26/11/2026, 26-11-2026, 26/11 (with or without a preceding "ngày"); a bare "3-4" is a
        # range, not a date, so "-" needs the year.
        _sub(r"(ngày\s+)?(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}))?(?![\d/])", _date, re.I),
        _sub(r"(ngày\s+)?(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{4})(?![\d-])", _date, re.I),
        # Month and year: 11/2026, tháng 11/2026.
        _sub(r"(tháng\s+)?(?<![\d/])(\d{1,2})/(\d{4})(?![\d/])", _month_year, re.I),
        # Times: 6h30, 6h, 06:30, 17g15.
        _sub(r"(?<![\d,.])(\d{1,2})\s?(?:h|g|:)\s?(\d{2})?(?![\w\d])", _time),
        # Ordinals: thứ 2 → thứ hai, thứ 1 → thứ nhất, thứ 4 → thứ tư.
        _sub(r"\b(thứ|Thứ|hạng|Hạng)\s+(\d+)\b", lambda m: f"{m.group(1)} {read_ordinal(int(m.group(2)))}"),
        # A number with its unit, currency or percent sign.
        _sub(r"(" + NUM + r")\s?(" + _UNIT_RX + r")(?!" + W + r")", _unit),
        # Currency words standing alone (2,5 triệu VNĐ).
        _sub(r"(?<!" + W + r")(VNĐ|VND|vnđ)(?!" + W + r")", lambda m: "đồng"),
        # Ranges between numbers: 7-8 → bảy đến tám.
        _sub(r"(?<![\d.,])(" + NUM + r")\s?[-–]\s?(" + NUM + r")(?![\d])",
             lambda m: f"{read_number(m.group(1))} đến {read_number(m.group(2))}"),
        _sub(r"(?<![\w])(" + NUM + r")(?![\d])", lambda m: read_number(m.group(1))),
        _sub(r"\s*&\s*", lambda m: " và "),
        _sub(r"[ \t]+", lambda m: " "),
        str.strip,
    ]


@lru_cache
def builtin_abbreviations() -> dict[str, str]:
    with (Path(__file__).parent / "vi_abbreviations.toml").open("rb") as f:
        return dict(tomllib.load(f)["abbreviations"])


def normalize(text: str, extra_abbreviations: Mapping[str, str] | None = None) -> str:
    table = {**builtin_abbreviations(), **(extra_abbreviations or {})}
    for step in _steps(table):
        text = step(text)
    return text
