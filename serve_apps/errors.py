"""The one error shape of every non-OpenAI route, and FastAPI handlers that produce it.

``{"error": {"code", "message", "field", "details", "request_id"}}``
(:class:`catalog.schemas.ErrorResponse`). Status codes come from
:data:`catalog.errors.HTTP_STATUS` (both ways); request validation failures are 422 and
name the first offending field (``body.lora.r``).

:func:`error_responses` documents those answers in the OpenAPI document (each status with
the ErrorResponse schema); the gateway attaches them to every router once, as it mounts
it (:func:`serve_apps.gateway.app.create_app`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalog.errors import CatalogError, code_for_status, status_for_code
from catalog.schemas import ErrorResponse

log = logging.getLogger(__name__)

#: What each error status means on this API (the OpenAPI responses' descriptions).
_MEANING: dict[int, str] = {
    400: "Malformed request body (e.g. a broken multipart upload).",
    401: "Missing, unknown or revoked API key (the answer names the scheme in "
         "WWW-Authenticate).",
    403: "The key may not use this route or touch this row (admin only, or another "
         "user's row).",
    404: "No row with that id or name.",
    409: "Conflict: the row already exists, is still referenced, or cannot make this "
         "status change now.",
    413: "Request body larger than the route accepts.",
    422: "Invalid request; error.field names the first offending field, error.details "
         "every one.",
    429: "Rate limited: retry after the seconds in Retry-After.",
    503: "A dependency (the catalog, the Ray job API, a provider) cannot answer now; "
         "retry later.",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The scheme to authenticate with: Bearer.",
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait before retrying.",
                          "schema": {"type": "string"}}},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI ``responses=`` entries documenting ``statuses`` with the one error shape
    (:class:`catalog.schemas.ErrorResponse`), a description and, for 401 and 429, the
    header the answer carries.

    Raises:
        KeyError: a status this API never answers in the error shape.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _MEANING[status]}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


#: The error statuses every route that takes an API key can answer: no or a bad key
#: (401), not the caller's (403), no such row (404), a conflict (409), invalid input
#: (422), a key over its limits (429), a dependency down (503).
ERROR_STATUSES = (401, 403, 404, 409, 422, 429, 503)
#: :data:`ERROR_STATUSES` as FastAPI ``responses=`` entries.
ERROR_RESPONSES = error_responses(*ERROR_STATUSES)


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, details=None,
    request: Request | None = None,
) -> JSONResponse:
    """A JSONResponse in the ErrorResponse shape."""
    request_id = request.headers.get("x-request-id") if request is not None else None
    body = {"error": {"code": code, "message": message, "field": field, "details": details,
                      "request_id": request_id}}
    return JSONResponse(status_code=status, content=body)


async def _catalog_error(request: Request, exc: CatalogError) -> JSONResponse:
    status = status_for_code(exc.code)
    # Structured details (e.g. bad dataset lines) go to the caller; raw strings such as a
    # database driver's message stay in the server log.
    details = exc.details if isinstance(exc.details, list | dict) else None
    response = error_response(status, exc.code, exc.message, field=exc.field,
                              details=details, request=request)
    if status == 401:
        # RFC 6750 section 3: a 401 names the scheme the client should use.
        response.headers["WWW-Authenticate"] = 'Bearer realm="model-garden"'
    return response


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(p) for p in first.get("loc", ()))
    details = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")}
               for e in errors]
    return error_response(422, "invalid_argument", f"{field}: {first.get('msg')}",
                          field=field or None, details=details, request=request)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = code_for_status(exc.status_code)
    response = error_response(exc.status_code, code, str(exc.detail), request=request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal error", request=request)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` raises answer in the ErrorResponse shape."""
    # FastAPI's decorator form: it types each handler by its own exception class.
    app.exception_handler(CatalogError)(_catalog_error)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.exception_handler(Exception)(_unexpected)
