"""`truyenthanh-dev screenshots`: the staff UI's main screens as PNG files, for the README
(docs/screenshots/), taken with Debian's Chromium from a running demo (`make demo`) as its district admin."""

from __future__ import annotations

import json
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# (file name, path, viewport width): the screens a newcomer sees first.
SCREENS = [
    ("dashboard", "/ui/", 1280),
    ("receivers", "/ui/cum-loa", 1280),
    ("receiver", "/ui/cum-loa/{receiver}", 1280),
    ("map", "/ui/ban-do", 1280),
    ("library", "/ui/thu-vien", 1280),
    ("compose", "/ui/soan-tin", 1280),
    ("schedule", "/ui/lich-phat", 1280),
    ("emergency", "/ui/khan-cap", 1280),
    ("approval", "/ui/duyet-tin", 1280),
    ("reports", "/ui/bao-cao", 1280),
    ("phone-dashboard", "/ui/", 360),
    ("phone-emergency", "/ui/khan-cap", 360),
]


def take(credentials: Path, out: Path, chromium: str = "/usr/bin/chromium") -> list[Path]:
    from playwright.sync_api import sync_playwright

    ui = json.loads(credentials.read_text())["ui"]
    base = ui["url"].removesuffix("/ui/").rstrip("/")
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
        page = context.new_page()
        page.goto(f"{base}/ui/dang-nhap")
        page.screenshot(path=str(out / "login.png"))
        made.append(out / "login.png")
        page.fill("input[name=username]", ui["username"])
        page.fill("input[name=password]", ui["password"])
        page.click("button[type=submit]")
        page.wait_for_selector("header")
        receiver = page.request.get(f"{base}/api/v1/receivers?limit=1",
                                    headers={"Authorization": f"Bearer {json.loads(credentials.read_text())['token']}"}
                                    ).json()["data"][0]["id"]
        for name, path, width in SCREENS:
            page.set_viewport_size({"width": width, "height": 900 if width > 400 else 760})
            page.goto(base + path.format(receiver=receiver))
            page.wait_for_selector("header")
            page.wait_for_timeout(2500)  # live parts (counts, map markers, charts) have filled in
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=width < 400)
            made.append(target)
        browser.close()
    return made
