"""Schemathesis against the controller's own OpenAPI schema: generated requests, valid and invalid, to every
operation, as an admin (so the code behind the checks is reached) and with no token at all.

Each answer must not be a server error (5xx) and must match the schema the route documents. The app is the
one `create_app` builds, on a copy of the seeded demo district, with the in-memory bridge (no broker, no
network); Schemathesis runs its lifespan in-process. Derandomized (Hypothesis' `derandomize`: a seed fixed
by the test itself), so a failure in CI is the same failure on a developer's machine.

Path parameters are half of the time ids that exist (a seeded receiver, commune, abbreviation; the first
rows of each table), so that operations on one thing get past their 404 into the code that acts on it.

Schemathesis' own pytest integration (`from_fixture`, `parametrize`) does not run under pytest 9, so the
operations are parametrized here and each one's cases drawn with `APIOperation.as_strategy`.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from sqlmodel import Session, select

from controller.app import create_app
from controller.bridge_memory import InMemoryBridge
from controller.config import Settings
from controller.services.accounts import issue_token
from tests.conftest import admin_token, seeded_copy

# Examples per operation and per mode (valid, invalid). Here, on two workers: the normal run of this file
# takes about a minute (three principals), the long one (TT_LONG=1, admin only, shrinking on) 2.5 minutes.
QUICK = settings(max_examples=10, derandomize=True, database=None, deadline=None,
                 suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
LONG = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])


@functools.cache
def operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from the app's schema (no lifespan, no database)."""
    app = create_app(Settings(demo=True, data_dir=Path(os.devnull) / "unused"))
    paths = app.openapi()["paths"]
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


# Dates at the calendar's ends, with offsets that put them outside it in UTC: Schemathesis' own dates almost
# never come here, and each route that turns a request's date into UTC, or bounds a window with it, did.
EDGE_DATES = ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999Z",
              "0001-01-01T00:00:00Z", "9999-12-31T23:59:59", "0001-01-01T00:00:00"]


@contextlib.contextmanager
def edge_dates() -> Iterator[None]:
    from schemathesis.specs.openapi.formats import get_default_format_strategies

    default = get_default_format_strategies()["date-time"]
    schemathesis.openapi.format("date-time", st.one_of(default, st.sampled_from(EDGE_DATES)))
    try:
        yield
    finally:
        schemathesis.openapi.format("date-time", default)


class World:
    """The app under test (through Schemathesis' loaded schema), an admin's headers, and ids that exist."""

    def __init__(self, schema: Any, headers: dict[str, str], commune_headers: dict[str, str],
                 known: dict[str, list[Any]]) -> None:
        self.schema = schema
        self.headers = headers
        self.commune_headers = commune_headers  # every right, in one commune only
        self.known = known

    def cases(self, method: str, path: str, mode: GenerationMode) -> st.SearchStrategy[Any]:
        operation = self.schema[path][method]
        names = [p.name for p in operation.path_parameters]
        real = {n: st.sampled_from(self.known[n]) for n in names if self.known.get(n)}
        generated = operation.as_strategy(generation_mode=mode)
        if not real:
            return generated
        return st.one_of(generated, st.fixed_dictionaries(real).flatmap(
            lambda pp: operation.as_strategy(generation_mode=mode, path_parameters=pp)))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Iterator[World]:
    from controller.db.models import Abbreviation, Commune, Receiver

    with seeded_copy(seeded_template, tmp_path_factory.mktemp("fuzz-api")) as seeded:
        token = admin_token(seeded.engine, "fuzz-admin")
        with Session(seeded.engine) as s:
            rids = [r.id for r in s.exec(select(Receiver)).all()][:3]
            codes = [c.code for c in s.exec(select(Commune)).all()][:2]
            abbrs = [a.abbr for a in s.exec(select(Abbreviation)).all()][:2]
            commune_token = issue_token(s, "fuzz-commune", ["receivers:control", "content:write", "content:approve",
                                                            "emergency:trigger"], [codes[0]], created_by="test")[1]
        known: dict[str, list[Any]] = {"rid": rids, "code": codes, "abbr": abbrs, "ident": [1, 2], "bid": [1, 2],
                                       "aid": [1, 2], "eid": [1, 2], "uid": [1, 2], "tid": [1, 2]}
        # A broker URL (never connected: the bridge is in memory), so that enrolment gets past its set-up check.
        app_settings = seeded.settings.model_copy(update={"mqtt_url": "mqtt://127.0.0.1:1883"})
        app = create_app(app_settings, bridge=InMemoryBridge)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        try:
            with edge_dates():
                yield World(schema, {"Authorization": f"Bearer {token}"},
                            {"Authorization": f"Bearer {commune_token}"}, known)
        finally:
            schemathesis_asgi.shutdown_lifespans()


def _checks() -> list[Any]:
    import schemathesis.checks as c

    return [c.not_a_server_error, c.response_schema_conformance]


def _fuzz(world: World, method: str, path: str, headers: dict[str, str], budget: settings) -> None:
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        @budget
        @given(case=world.cases(method, path, mode))
        def one(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=_checks())

        try:
            one()
        except Unsatisfiable:
            # Nothing to make invalid: an operation without parameters, or with only unconstrained strings.
            assert mode is GenerationMode.NEGATIVE, f"no valid request could be made for {method} {path}"


OPS = [pytest.param(m, p, id=f"{m} {p}") for m, p in operations()]


@pytest.mark.parametrize(("method", "path"), OPS)
def test_admin_requests_never_break_the_server_or_the_schema(world: World, method: str, path: str) -> None:
    _fuzz(world, method, path, world.headers, QUICK)


@pytest.mark.parametrize(("method", "path"), OPS)
def test_commune_staff_requests_never_break_the_server_or_the_schema(world: World, method: str, path: str) -> None:
    """A token with every right but in one commune: the policy's refusals (another commune's receivers and
    content are hidden, district-wide things forbidden) are reached too."""
    _fuzz(world, method, path, world.commune_headers, QUICK)


@pytest.mark.parametrize(("method", "path"), OPS)
def test_anonymous_requests_never_break_the_server_or_the_schema(world: World, method: str, path: str) -> None:
    _fuzz(world, method, path, {}, QUICK)


@pytest.mark.long
@pytest.mark.parametrize(("method", "path"), OPS)
def test_admin_requests_at_length(world: World, method: str, path: str) -> None:
    _fuzz(world, method, path, world.headers, LONG)


STATEFUL = settings(max_examples=8, stateful_step_count=8, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.generate])


def test_admin_sequences_never_break_the_server_or_the_schema(world: World) -> None:
    """Stateful: sequences of calls that feed one answer's values into the next request, along the links
    Schemathesis infers from the schema (the schema declares none; on this one it infers those between the
    users' operations: a created user's id into PATCH /users/{uid}). The known ids above do the rest."""
    headers = world.headers

    class Sequences(world.schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=_checks(), headers=headers, transport_kwargs=kwargs)

    Sequences.run(settings=STATEFUL)



def test_dates_at_the_calendars_ends_are_refused_not_a_server_error(api: Any) -> None:
    """What the fuzzing above found, on every route that takes a date: each such date is a 422 (the
    request's fault), never a 500."""
    from tests.conftest import Api

    assert isinstance(api, Api)
    rid = api.get("/api/v1/receivers").json()["data"][0]["id"]
    for date in EDGE_DATES:
        routes: list[tuple[str, str, dict[str, Any]]] = [
            ("GET", "/api/v1/reports/broadcast", {"params": {"from": date}}),
            ("GET", "/api/v1/reports/broadcast", {"params": {"to": date}}),
            ("GET", "/api/v1/plays", {"params": {"from": date}}),
            ("GET", "/api/v1/plays", {"params": {"to": date}}),
            ("GET", f"/api/v1/receivers/{rid}/plays", {"params": {"from": date}}),
            ("GET", "/api/v1/schedule", {"params": {"from": date}}),
            ("POST", "/api/v1/emergencies", {"json": {"text": "Thử", "targets": {"all": True}, "expires_at": date}}),
        ]
        for method, path, kw in routes:
            answer = api.client.request(method, path, headers=api.headers, **kw)
            assert answer.status_code < 500, f"{method} {path} {kw}: {answer.status_code}"
