"""The live fleet view every dashboard reads (controller.ui.live.FleetView), without a browser: what the
bridge hears is in the counts at once, and a database round that read older rows does not undo it."""

from __future__ import annotations

import asyncio

from controller.ui.live import FleetView
from tests.conftest import Seeded


def test_an_availability_heard_changes_the_counts_at_once_and_survives_an_older_read(seeded: Seeded) -> None:
    async def go() -> None:
        view = FleetView(1.0)
        await view.refresh(seeded.engine)
        rid, first = next(iter(view.snapshot.receivers.items()))
        commune = next(c for c in view.snapshot.communes if c.code == first.commune)
        assert first.availability == "unknown" and commune.online == 0
        view.on_availability(rid, "online")
        after = view.snapshot
        assert after.receivers[rid].availability == "online"
        assert next(c for c in after.communes if c.code == first.commune).online == 1
        # The database still says "unknown" (the bridge's flush has not written it): the heard state stands.
        await view.refresh(seeded.engine)
        assert view.snapshot.receivers[rid].availability == "online"
        assert view.snapshot.version == after.version
        view.on_availability(rid, "offline")
        assert view.snapshot.version == after.version + 1
        assert next(c for c in view.snapshot.communes if c.code == first.commune).online == 0

    asyncio.run(go())
