"""The one mapping of domain errors to HTTP: each `DomainError` becomes its status with `{"detail": message}`;
every refusal of the access policy is audited with who, what (method and path) and from which address."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError

from controller.errors import DomainError, Refusal
from controller.policy import Principal
from controller.services import audit


def _document_detail(app: FastAPI) -> None:
    """The schema says what the API answers: FastAPI documents a 422's `detail` as its list of validation
    errors only, but a domain `Invalid` is a 422 with a sentence (`{"detail": "..."}`)."""
    make_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make_schema()
            error = schema.get("components", {}).get("schemas", {}).get("HTTPValidationError", {})
            listed = error.get("properties", {}).get("detail")
            if listed is not None:
                error["properties"]["detail"] = {
                    "title": "Detail", "anyOf": [{"type": "string", "description": "what is wrong, in a sentence"},
                                                 {**listed, "description": "each field that is wrong"}]}
        return app.openapi_schema or make_schema()

    app.openapi = openapi  # type: ignore[method-assign]


def install(app: FastAPI) -> None:
    _document_detail(app)

    @app.exception_handler(OverflowError)
    async def out_of_range(request: Request, exc: OverflowError) -> JSONResponse:
        # From a request's values: a date at the calendar's ends (9999-12-31T23:59-14:00 is in the year 10000
        # in UTC, and a report's window reaches past it) or a number beyond 64 bits. Found by fuzzing: 500s.
        return JSONResponse({"detail": "A date or number in the request is out of range."}, status_code=422)

    @app.exception_handler(StatementError)
    async def unbindable(request: Request, exc: StatementError) -> JSONResponse:
        if isinstance(exc.orig, OverflowError):  # the same, met where the database driver binds it
            return await out_of_range(request, exc.orig)
        raise exc

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, Refusal):
            who: Principal | None = exc.who or getattr(request.state, "principal", None)
            address = request.client.host if request.client else None
            audit.record(request.app.state.engine, who.actor if who else "anonymous", exc.action, "refused",
                         target=f"{request.method} {request.url.path}", detail=exc.message, address=address)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)
