"""Typed exceptions of the client, each carrying the server's ErrorResponse.

:func:`GardenError.from_response` picks the subclass from the HTTP status (the
habit of replicate-python's ``ReplicateError.from_response``).
"""

from __future__ import annotations

import httpx
from pydantic import ValidationError

from catalog.errors import code_for_status
from catalog.schemas import ErrorBody, ErrorResponse


class GardenError(Exception):
    """An error answer of the Model Garden API.

    Attributes:
        status: the HTTP status code.
        error: the server's :class:`catalog.schemas.ErrorBody` (code, message, field,
            details, request_id).
    """

    def __init__(self, status: int, error: ErrorBody):
        super().__init__(f"{status} {error.code}: {error.message}")
        self.status = status
        self.error = error

    @property
    def code(self) -> str:
        return self.error.code

    @classmethod
    def from_response(cls, response: httpx.Response) -> GardenError:
        """The typed error for a 4xx/5xx response (any body: non-JSON becomes the message)."""
        try:
            error = ErrorResponse.model_validate_json(response.content).error
        except ValidationError:
            error = ErrorBody(code=code_for_status(response.status_code),
                              message=response.text[:500] or response.reason_phrase)
        kind = _BY_STATUS.get(response.status_code)
        if kind is None:
            kind = ServerError if response.status_code >= 500 else GardenError
        return kind(response.status_code, error)


class BadRequestError(GardenError):
    """400."""


class AuthenticationError(GardenError):
    """401: no API key, or one the server does not know."""


class PermissionDeniedError(GardenError):
    """403: the key is valid but may not touch this row or route."""


class NotFoundError(GardenError):
    """404."""


class ConflictError(GardenError):
    """409: already exists, still referenced, or a forbidden status change."""


class PayloadTooLargeError(GardenError):
    """413."""


class ValidationFailedError(GardenError):
    """422: the request failed validation; ``error.field`` names the field."""


class RateLimitError(GardenError):
    """429."""


class ServerError(GardenError):
    """5xx (503: a dependency such as the job API or a provider is unavailable)."""


class JobFailedError(Exception):
    """A training job that :meth:`garden.client.training.Job.wait` saw end failed/cancelled."""

    def __init__(self, job):
        super().__init__(f"training job {job.id} {job.status}: {job.error_message or ''}")
        self.job = job


_BY_STATUS: dict[int, type[GardenError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 413: PayloadTooLargeError,
    422: ValidationFailedError, 429: RateLimitError,
}
