"""Every string a staff member reads, in one place: `locale/<language>/<area>.toml`, one file per area of the
UI (`common`, `dashboard`, …). `t("area.key", **values)` looks one up and fills in `{values}`; a second
language is a second folder with the same keys (tests/ui/test_i18n.py checks that every key used exists).
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

LOCALES = Path(__file__).parent / "locale"
LANGUAGE = "vi"


@cache
def strings(language: str = LANGUAGE) -> dict[str, str]:
    """`area.key` → text, from every file of the language's folder (nested tables join with dots)."""
    table: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, object]) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(f"{prefix}.{key}", value)
            else:
                table[f"{prefix}.{key}"] = str(value)

    for path in sorted((LOCALES / language).glob("*.toml")):
        walk(path.stem, tomllib.loads(path.read_text(encoding="utf-8")))
    return table


def t(key: str, /, **values: object) -> str:
    """The text of `key` with `values` filled in. A missing key is a bug: it raises KeyError."""
    text = strings()[key]
    return text.format(**values) if values else text
