"""Bản đồ: the person's receivers on a map, coloured by their live status, each with a popup linking to its
page.

Nothing is fetched from the internet: NiceGUI's Leaflet adds an OpenStreetMap tile layer by default, which is
removed; a tile layer is added only when `settings.ui.map_tiles_url` names a tile server. Without one the map
draws a plain outline of the district instead — the convex hull of every village's point, padded (an
estimate, not a surveyed border) — with the communes' names, so it reads without any background.
"""

from __future__ import annotations

import html
import math
from typing import Any

from nicegui import ui
from sqlmodel import select

from controller.db.models import Commune, Village
from controller.policy import Right

from .. import host, paths
from ..i18n import t
from ..live import ReceiverLive
from ..shell import Staff, staff_page
from .receivers import HEX, availability_text, live_color, receiver_path

PAD_DEG = 0.02  # how far the outline lies outside the outermost villages (about 2 km)
LEGEND = ("online", "playing", "offline", "stopped", "unknown")


def convex_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The convex hull of `points` (Andrew's monotone chain), counter-clockwise."""
    pts = sorted(set(points))
    if len(pts) <= 2:
        return pts

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def outline(points: list[tuple[float, float]], pad: float = PAD_DEG) -> list[list[float]]:
    """A made-up district outline: the hull of `points`, each corner pushed `pad` degrees out from the middle."""
    hull = convex_hull(points)
    if not hull:
        return []
    mid = (sum(p[0] for p in hull) / len(hull), sum(p[1] for p in hull) / len(hull))
    out = []
    for lat, lon in hull:
        d = math.hypot(lat - mid[0], lon - mid[1]) or 1.0
        out.append([round(lat + pad * (lat - mid[0]) / d, 5), round(lon + pad * (lon - mid[1]) / d, 5)])
    return out


def popup(r: ReceiverLive) -> str:
    color = live_color(r)
    state = t("map.legend.playing") if r.availability == "online" and r.playing else availability_text(r.availability)
    return (f'<div data-testid="popup-{html.escape(r.id)}"><b>{html.escape(r.name)}</b><br>'
            f'<span style="color:{color}">●</span> {html.escape(state)}<br>'
            f'<a href="{receiver_path(r.id)}">{html.escape(t("map.open"))}</a></div>')


def marker_style(r: ReceiverLive) -> dict[str, Any]:
    return {"fillColor": live_color(r), "color": "#ffffff"}


@staff_page(paths.MAP, Right.RECEIVERS_READ, "map.title")
def map_page(staff: Staff) -> None:
    view = host.state().fleet_view
    settings = host.state().settings.ui
    who = staff.who
    with staff.ctx() as ctx:
        communes = {c.id: c for c in ctx.session.exec(select(Commune))}
        villages = [v for v in ctx.session.exec(select(Village)) if v.lat is not None and v.lon is not None]
    ui.label(t("map.title")).classes("text-h5")
    mine = [r for r in view.snapshot.receivers.values()
            if who.may_see(r.commune) and r.lat is not None and r.lon is not None]
    count = ui.label(t("map.shown", count=len(mine))).classes("text-caption text-grey-8") \
        .props("data-testid=map-count")
    if not mine:
        ui.label(t("map.no_points")).classes("text-grey-8")
    points = [(v.lat, v.lon) for v in villages if v.lat is not None and v.lon is not None]
    spots = [(r.lat, r.lon) for r in mine if r.lat is not None and r.lon is not None] or points
    middle = (sum(p[0] for p in spots) / len(spots), sum(p[1] for p in spots) / len(spots)) if spots \
        else (15.15, 108.2)
    tiles = settings.map_tiles_url
    m = ui.leaflet(center=middle, zoom=11, options={"attributionControl": bool(tiles), "zoomSnap": 0.25}) \
        .classes("w-full rounded-borders").style("height: min(70vh, 640px); background: #eef3ee") \
        .props("data-testid=map")
    m.clear_layers()  # NiceGUI's default OpenStreetMap layer: nothing is fetched from the internet
    if tiles:
        m.tile_layer(url_template=tiles, options={"attribution": settings.map_tiles_attribution, "maxZoom": 19})
    else:
        ui.label(t("map.outline_note")).classes("text-caption text-grey-7")
        border = outline(points)
        if border:
            m.generic_layer(name="polygon", args=[border, {"color": "#00695c", "weight": 2, "fillColor": "#ffffff",
                                                           "fillOpacity": 0.6, "interactive": False}])
        by_commune: dict[int, list[tuple[float, float]]] = {}
        for v in villages:
            if v.lat is not None and v.lon is not None:
                by_commune.setdefault(v.commune_id, []).append((v.lat, v.lon))
        for cid, pts in by_commune.items():
            commune = communes.get(cid)
            if commune is None or not who.may_see(commune.code):
                continue
            at = [sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)]
            m.generic_layer(name="tooltip", args=[at, {"content": html.escape(commune.name), "permanent": True,
                                                       "direction": "center", "className": "tt-commune-label",
                                                       "interactive": False}])
    markers: dict[str, Any] = {}
    colors: dict[str, tuple[str, str]] = {}
    for r in mine:
        markers[r.id] = m.generic_layer(name="circleMarker", args=[[r.lat, r.lon], {
            "radius": 7, "weight": 1.5, "fillOpacity": 0.95, "className": f"tt-rx tt-rx-{r.id}",
            **marker_style(r)}])
        colors[r.id] = (live_color(r), popup(r))

    def ready() -> None:
        for rid, layer in markers.items():
            layer.run_method("bindPopup", colors[rid][1])
        if spots:
            lats, lons = [p[0] for p in spots], [p[1] for p in spots]
            m.run_map_method("fitBounds", [[min(lats), min(lons)], [max(lats), max(lons)]], {"padding": [24, 24]})

    m.on("init", ready)

    with ui.row().classes("gap-4 items-center").props("data-testid=map-legend"):
        for key in LEGEND:
            with ui.row().classes("items-center gap-1 no-wrap"):
                ui.html(f'<span style="display:inline-block;width:12px;height:12px;border-radius:50%;'
                        f'background:{HEX[key]}"></span>', sanitize=False)
                ui.label(t(f"map.legend.{key}")).classes("text-sm")
    ui.add_head_html("<style>.leaflet-tooltip.tt-commune-label{background:transparent;border:none;"
                     "box-shadow:none;font-weight:600;color:#004d40;text-shadow:0 0 3px #fff,0 0 3px #fff}"
                     ".leaflet-tooltip.tt-commune-label::before{display:none}</style>")
    shown = {"version": view.snapshot.version}

    def refresh() -> None:
        snap = view.snapshot
        if snap.version == shown["version"] or not m.is_initialized:
            return
        shown["version"] = snap.version
        for rid, layer in markers.items():
            r = snap.receivers.get(rid)
            if r is None:
                continue
            now = (live_color(r), popup(r))
            if now != colors[rid]:
                colors[rid] = now
                layer.run_method("setStyle", marker_style(r))
                layer.run_method("setPopupContent", now[1])
        count.set_text(t("map.shown", count=len(markers)))

    ui.timer(view.poll_s, refresh)
