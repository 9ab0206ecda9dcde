"""Bản đồ: every receiver the person sees is a marker coloured by its live status, with a popup linking to its
page; nothing is fetched from any host but the controller (no tile server by default)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from .conftest import UiWorld, sign_in
from .test_dashboard import cut

GREEN, STOPPED = "#21ba45", "#616161"


def test_the_map_shows_every_receiver_and_fetches_only_from_the_controller(page: Any, ui_world: UiWorld) -> None:
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    sign_in(page, ui_world, "admin", next_path="/ui/ban-do")
    markers = page.locator("path.tt-rx")
    expect(markers).to_have_count(len(ui_world.receivers()), timeout=15_000)  # they arrive one by one
    page.get_by_text("Xã Trà Nú", exact=True).wait_for()  # the communes are named without a background map
    page.wait_for_load_state("networkidle")
    assert hosts == {urlsplit(ui_world.url).netloc}, hosts
    # A marker's popup leads to its receiver.
    rid = ui_world.receivers("tra-nu")[0]
    page.locator(f"path.tt-rx-{rid}").dispatch_event("click")  # markers of a village overlap
    popup = page.get_by_test_id(f"popup-{rid}")
    popup.wait_for()
    popup.get_by_role("link").click()
    page.wait_for_url(f"**/ui/cum-loa/{rid}")
    page.get_by_test_id("receiver-name").wait_for()


def test_a_commune_operator_sees_only_their_communes_markers(page: Any, ui_world: UiWorld) -> None:
    sign_in(page, ui_world, "op-bui", next_path="/ui/ban-do")
    markers = page.locator("path.tt-rx")
    bui = ui_world.receivers("tra-bui")
    expect(markers).to_have_count(len(bui), timeout=15_000)
    assert {m.get_attribute("class").split("tt-rx-")[1].split()[0] for m in markers.all()} == set(bui)


def test_a_marker_changes_colour_when_its_receiver_goes_away(page: Any, ui_world: UiWorld) -> None:
    rid = ui_world.receivers("tra-nu")[5]
    sign_in(page, ui_world, "leader-nu", next_path="/ui/ban-do")
    marker = page.locator(f"path.tt-rx-{rid}")
    marker.wait_for()
    page.wait_for_function(f"document.querySelector('path.tt-rx-{rid}').getAttribute('fill') === '{GREEN}'")
    with cut(ui_world, rid):
        page.wait_for_function(
            f"document.querySelector('path.tt-rx-{rid}').getAttribute('fill') === '{STOPPED}'", timeout=15_000)
    page.wait_for_function(
        f"document.querySelector('path.tt-rx-{rid}').getAttribute('fill') === '{GREEN}'", timeout=20_000)


def test_the_made_up_outline_surrounds_every_village() -> None:
    from controller.ui.pages.map import convex_hull, outline

    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.5, 0.5), (0.2, 0.7)]
    assert sorted(convex_hull(square)) == [(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]
    padded = outline(square, pad=0.1)
    assert len(padded) == 4
    assert all(min(abs(lat - 0.5), abs(lon - 0.5)) > 0.5 for lat, lon in padded)  # every corner pushed out
    assert outline([]) == []
