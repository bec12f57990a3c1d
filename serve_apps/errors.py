"""The one error shape of every non-OpenAI route, and FastAPI handlers that produce it.

``{"error": {"code", "message", "field", "details", "request_id"}}``
(:class:`catalog.schemas.ErrorResponse`). Status codes come from
:data:`catalog.errors.HTTP_STATUS`; request validation failures are 422 and name
the first offending field (``body.lora.r``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalog.errors import HTTP_STATUS, CatalogError

log = logging.getLogger(__name__)

_HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "permission_denied",
               404: "not_found", 405: "method_not_allowed", 409: "conflict",
               413: "payload_too_large", 422: "invalid_argument", 429: "rate_limited",
               503: "unavailable"}


def error_response(
    status: int, code: str, message: str, *, field: str | None = None, details=None,
    request: Request | None = None,
) -> JSONResponse:
    """A JSONResponse in the ErrorResponse shape."""
    request_id = request.headers.get("x-request-id") if request is not None else None
    body = {"error": {"code": code, "message": message, "field": field, "details": details,
                      "request_id": request_id}}
    return JSONResponse(status_code=status, content=body)


class PayloadTooLarge(CatalogError):
    """A request body over the route's size limit (413)."""

    code = "payload_too_large"


#: Gateway-only codes that :data:`catalog.errors.HTTP_STATUS` does not know.
_EXTRA_STATUS = {PayloadTooLarge.code: 413}


def status_of(exc: CatalogError) -> int:
    """The HTTP status of a catalog (or gateway) error code; unknown codes are 500."""
    return HTTP_STATUS.get(exc.code) or _EXTRA_STATUS.get(exc.code, 500)


async def _catalog_error(request: Request, exc: CatalogError) -> JSONResponse:
    status = status_of(exc)
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
    code = _HTTP_CODES.get(exc.status_code, "error")
    response = error_response(exc.status_code, code, str(exc.detail), request=request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal", "internal error", request=request)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error ``app`` raises answer in the ErrorResponse shape."""
    app.add_exception_handler(CatalogError, _catalog_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
