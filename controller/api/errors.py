"""The one mapping of domain errors to HTTP: each `DomainError` becomes its status with `{"detail": message}`;
every refusal of the access policy is audited with who, what (method and path) and from which address."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controller.errors import DomainError, Refusal
from controller.policy import Principal
from controller.services import audit


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, Refusal):
            who: Principal | None = exc.who or getattr(request.state, "principal", None)
            address = request.client.host if request.client else None
            audit.record(request.app.state.engine, who.actor if who else "anonymous", exc.action, "refused",
                         target=f"{request.method} {request.url.path}", detail=exc.message, address=address)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)
