"""The catalog's one exception type, its codes, and the HTTP status of each code.

Modelled on MLflow's ``MlflowException`` + ``ErrorCode`` table: every layer raises
:class:`CatalogError` (or a subclass) and the gateway maps ``code`` to a status
with :data:`HTTP_STATUS`. Exceptions keep their constructor arguments so they
pickle across Ray (an actor's error re-raises with its own class at the caller).
"""

from __future__ import annotations

from typing import Any


class CatalogError(Exception):
    """Base error. ``code`` is stable; ``field`` names the offending input, if any."""

    code = "internal"

    def __init__(self, message: str, *, field: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details

    def __reduce__(self):  # keep keyword arguments through pickling (Ray)
        return (_rebuild, (type(self), self.message, self.field, self.details))

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` member of :class:`catalog.schemas.ErrorResponse`."""
        return {
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "details": self.details,
        }


def _rebuild(cls: type[CatalogError], message: str, field: str | None, details: Any):
    return cls(message, field=field, details=details)


class NotFound(CatalogError):
    """No row with that id (or name)."""

    code = "not_found"


class Conflict(CatalogError):
    """A unique constraint would be violated, or the row is still referenced."""

    code = "conflict"


class InvalidArgument(CatalogError):
    """Input the schema or a reference check rejects."""

    code = "invalid_argument"


class InvalidTransition(CatalogError):
    """A status change the state machine forbids; nothing was written."""

    code = "invalid_transition"


class SchemaOutOfDate(CatalogError):
    """The database schema is behind the code; run the named upgrade command."""

    code = "schema_out_of_date"


class Unauthenticated(CatalogError):
    code = "unauthenticated"


class PermissionDenied(CatalogError):
    code = "permission_denied"


class Unavailable(CatalogError):
    """A dependency (provider, engine, database) cannot serve the request now."""

    code = "unavailable"


class PayloadTooLarge(CatalogError):
    """A request body over the route's size limit (413)."""

    code = "payload_too_large"


#: Error code -> HTTP status: the one table of the gateway and the client. Where several
#: codes share a status, the first listed is the one :func:`code_for_status` names.
HTTP_STATUS: dict[str, int] = {
    "bad_request": 400,
    "invalid_argument": 422,
    "unauthenticated": 401,
    "permission_denied": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "invalid_transition": 409,
    "payload_too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
    "schema_out_of_date": 503,
    "internal": 500,
}

#: Status -> its first code in HTTP_STATUS (built in reverse so the first one wins).
_CODE_OF_STATUS: dict[int, str] = {
    status: code for code, status in reversed(HTTP_STATUS.items())}


def status_for_code(code: str) -> int:
    """The HTTP status of an error ``code`` (:data:`HTTP_STATUS`); unknown codes are 500."""
    return HTTP_STATUS.get(code, 500)


def code_for_status(status: int) -> str:
    """The error code of an HTTP ``status`` with no error body of its own (a framework's
    404/405, a proxy's 502): the first code of :data:`HTTP_STATUS` with that status, or
    ``"error"`` for a status no code has."""
    return _CODE_OF_STATUS.get(status, "error")
