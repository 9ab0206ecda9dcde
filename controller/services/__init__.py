"""The controller's core, shared by the API and the staff UI: one module per domain (`receivers`, `content`,
`programmes`, `emergencies`, `reports`, `accounts`, `audit`). A service function takes a `Ctx` — the database
session, the acting principal, settings and the ports (MQTT bridge, media store) — checks the access policy
(`controller.policy`), returns typed models and raises domain errors (`controller.errors`). Nothing here
knows HTTP.
"""

from .context import Ctx, Page

__all__ = ["Ctx", "Page"]
