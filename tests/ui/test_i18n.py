"""Every string a person reads is in controller/ui/locale: each `t("area.key")` written in the UI's code names
a text that exists, every text is in Unicode NFC (as Vietnamese must be, for search and comparison), and the
format fields a call fills in are the ones its text has. Needs no browser."""

from __future__ import annotations

import ast
import string
import unicodedata
from pathlib import Path

from controller.ui.i18n import strings

UI = Path(__file__).resolve().parents[2] / "controller" / "ui"


def calls() -> list[tuple[Path, int, str, set[str]]]:
    """(file, line, key, keyword names) of every `t("literal", ...)` in the UI's code."""
    found = []
    for path in sorted(UI.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                kwargs = {k.arg for k in node.keywords if k.arg is not None}
                if any(k.arg is None for k in node.keywords):  # t(key, **values): fields not known here
                    kwargs = {"*"}
                found.append((path, node.lineno, node.args[0].value, kwargs))
    return found


def test_every_key_used_exists_and_gets_its_fields() -> None:
    table = strings()
    used = calls()
    assert len(used) > 20
    missing = [f"{p.relative_to(UI)}:{line}: {key}" for p, line, key, _ in used if key not in table]
    assert not missing, "texts missing from controller/ui/locale/vi: " + ", ".join(missing)
    wrong = []
    for p, line, key, given in used:
        fields = {f for _, f, _, _ in string.Formatter().parse(table[key]) if f}
        if "*" not in given and fields != given:
            wrong.append(f"{p.relative_to(UI)}:{line}: {key} has {sorted(fields)}, given {sorted(given)}")
    assert not wrong, "; ".join(wrong)


def test_every_text_is_nfc() -> None:
    not_nfc = [k for k, v in strings().items() if not unicodedata.is_normalized("NFC", v)]
    assert not not_nfc, f"not in Unicode NFC: {not_nfc}"
