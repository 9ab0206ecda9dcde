"""The staff UI's tests: a real controller with its UI in a process of its own, a real Mosquitto, every
receiver of the seed district simulated (real agents on simulated hardware), and Debian's Chromium driven by
Playwright. One world for the whole session (starting it takes seconds); each test signs in on a fresh
browser context and makes what it changes with names of its own, so the tests do not see each other's work.

- `ui_world`: the world (`url`, `testbed`, `fleet`, `api` — an httpx client with an admin token —, `users`).
- `browser`: headless Chromium, one per test module (skipped, and counted, where /usr/bin/chromium is missing).
- `page`: a fresh browser context and page (1280×800); `phone`: the same at 360×740.
- `sign_in(page, world, who)`: through the real login form.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from controller.services.accounts import UserCreate, add_user, issue_token
from devrig.ports import free_port, stop_child
from devrig.testbed import Testbed
from tests.conftest import TEST_SETTINGS, FleetThread, _testbed, wait_for

CHROMIUM = os.environ.get("TT_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "mat-khau-thu-nghiem"  # every test account's; 10+ characters
# username → (role, communes): the people the tests act as.
PEOPLE: dict[str, tuple[str, list[str] | None]] = {
    "admin": ("district_admin", None),
    "op-nu": ("commune_operator", ["tra-nu"]),
    "leader-nu": ("commune_leader", ["tra-nu"]),
    "op-bui": ("commune_operator", ["tra-bui"]),
    "viewer": ("viewer", ["tra-nu", "tra-bui"]),
    "duty": ("emergency_duty", None),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every UI test in one xdist group: with `pytest -n 2 --dist loadgroup` they share one world on one
    worker while the other tests run on the other."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.xdist_group("ui"))


@dataclass
class UiWorld:
    url: str
    testbed: Testbed
    fleet: FleetThread
    api: httpx.Client
    proc: subprocess.Popen[bytes]
    log: Path
    users: dict[str, str] = field(default_factory=dict)  # username → password

    def receivers(self, commune: str | None = None) -> list[str]:
        rows = self.testbed.fleet["receivers"]
        return [r["receiver_id"] for r in rows if commune is None or r["commune"] == commune]


@pytest.fixture(scope="session")
def ui_world() -> Iterator[UiWorld]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("TT_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{CHROMIUM} not found — TT_REQUIRE_CHROMIUM=1 forbids skipping the browser tests")
        pytest.skip("chromium not installed")
    root = Path(tempfile.mkdtemp(prefix="tt-ui-"))  # Mosquitto, which drops to its own user, reads in here
    os.chmod(root, 0o755)
    port = free_port()
    tb = _testbed(root, "mosquitto", **TEST_SETTINGS, controller_url=f"http://127.0.0.1:{port}")
    with Session(tb.engine) as s:
        for name, (role, communes) in PEOPLE.items():
            add_user(s, UserCreate(username=name, display_name=name, password=PASSWORD, role=role,  # type: ignore[arg-type]
                                   communes=communes), created_by="tests")
        token = issue_token(s, "ui-tests", ["admin"], created_by="tests")[1]
    # Every test signs in from 127.0.0.1: the per-address limit is lifted so that one test's failures cannot
    # lock the others out (the per-name limit stays, and test_login.py tests both).
    settings = {**json.loads(tb.settings.model_dump_json()), "port": port,
                "ui": {"enabled": True, "login_failures_per_address": 10_000}}
    (root / "settings.json").write_text(json.dumps(settings))
    log = root / "controller.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}  # NiceGUI changes under pytest
    env["TT_UI__ENABLED"] = "1"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tests.ui.serve", str(root / "settings.json")],
                                stdout=out, stderr=out, env=env, cwd=Path(__file__).parents[2])
    url = f"http://127.0.0.1:{port}"
    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def connected() -> bool:
        assert proc.poll() is None, f"the controller exited:\n{log.read_text()[-3000:]}"
        try:
            return bool(api.get("/healthz").json()["mqtt"] == "connected")
        except httpx.HTTPError:
            return False

    fleet = FleetThread(tb, root / "fleet")
    world = UiWorld(url, tb, fleet, api, proc, log, {name: PASSWORD for name in PEOPLE})
    try:
        wait_for(connected, 60, "the UI controller to start and reach the broker", interval=0.2)
        fleet.start(fleet.settings(controller_url=url), timeout=90)
        yield world
    finally:
        fleet.close()
        api.close()
        stop_child(proc, 15)
        tb.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(ui_world: UiWorld) -> Iterator[Any]:
    """Per module, not per session: Playwright's sync API keeps an event loop running in the main thread
    while it is open, and the tests that xdist gives this worker between the UI's modules call asyncio.run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        yield b
        b.close()


def _page(browser: Any, **context: Any) -> Iterator[Any]:
    ctx = browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh", **context)
    ctx.set_default_timeout(15_000)
    page = ctx.new_page()
    yield page
    ctx.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    yield from _page(browser, viewport={"width": 1280, "height": 800})


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    yield from _page(browser, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)


_SESSIONS: dict[str, list[Any]] = {}  # username → the cookie of a live session, to skip the form next time


def sign_in(page: Any, world: UiWorld, who: str, *, next_path: str = "/ui/", fresh: bool = False) -> None:
    """Signed in as `who` on `next_path`: through the real login form the first time (or with `fresh`), then
    by reusing that session's cookie while it lives (a test that signs out ends it: the form is used again)."""
    if not fresh and who in _SESSIONS:
        page.context.add_cookies(_SESSIONS[who])
        page.goto(f"{world.url}{next_path}")
        if "/ui/dang-nhap" not in page.url:
            page.wait_for_selector("header")
            return
        page.context.clear_cookies()
    page.goto(f"{world.url}/ui/dang-nhap?next={next_path}")
    page.fill("input[name=username]", who)
    page.fill("input[name=password]", world.users[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{world.url}{next_path}*")
    page.wait_for_selector("header")
    _SESSIONS[who] = [c for c in page.context.cookies() if c["name"] == "tt_session"]


def wait_text(locator: Any, expected: str, timeout: float = 10.0) -> None:
    """Until `locator`'s text is `expected` (live views update on their own)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = locator.inner_text().strip()
        if seen == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"expected {expected!r}, still {seen!r} after {timeout} s")

