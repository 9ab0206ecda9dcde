"""Rights in one place, for pages too: every page NiceGUI serves was registered through `staff_page` (with the
right its visitors need) or `public_page` (saying why anybody may open it). A page added any other way fails
here. Needs no browser."""

from __future__ import annotations

import os
import tempfile


def test_every_page_of_the_ui_declares_its_policy() -> None:
    os.environ.setdefault("NICEGUI_STORAGE_PATH", tempfile.mkdtemp(prefix="tt-nicegui-"))
    from nicegui import core
    from starlette.routing import Route

    from controller.ui import pages  # noqa: F401  # registers every page
    from controller.ui.shell import PAGES, PUBLIC_PAGES

    served = {r.path for r in core.app.routes if isinstance(r, Route) and not r.path.startswith("/_nicegui")}
    assert served, "no page registered: is controller.ui.pages importing its modules?"
    undeclared = sorted(p for p in served if p not in PAGES and p not in PUBLIC_PAGES)
    assert not undeclared, f"pages without a policy (use shell.staff_page or shell.public_page): {undeclared}"
    assert set(PUBLIC_PAGES) == {"/dang-nhap"}, f"public pages: {PUBLIC_PAGES}"
