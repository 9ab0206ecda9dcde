"""Domain errors: what services raise, each with the HTTP status the API maps it to in one place
(`controller.api.errors`) and a message a person can act on. No service raises `HTTPException`.

`Refusal` (`Forbidden`, `Hidden`, `Unauthenticated`) marks what the access policy refused: the faces audit
each with who, what and from where.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from controller.policy import Principal


class DomainError(Exception):
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None, detail: Any = None,
                 code: str | None = None, params: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        self.detail = detail if detail is not None else message
        # For faces that speak another language (the staff UI): what happened, as a key of their texts
        # (`errors.<code>` in controller/ui/locale), and the values it names.
        self.code = code
        self.params = params or {}


class Invalid(DomainError):
    status = 422


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class TooLarge(DomainError):
    status = 413


class Unsupported(DomainError):
    status = 415


class RateLimited(DomainError):
    status = 429


class Unavailable(DomainError):
    """A port (the broker, a TTS service) cannot be reached; nothing, or only what the message says, was done."""

    status = 503


class Refusal(DomainError):
    """Refused by the access policy."""

    def __init__(self, message: str, *, who: Principal | None = None, action: str = "auth.refused",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers)
        self.who = who
        self.action = action


class Unauthenticated(Refusal):
    status = 401


class Forbidden(Refusal):
    status = 403


class Hidden(Refusal, NotFound):
    """Outside the principal's communes: answered as if it did not exist."""

    status = 404
