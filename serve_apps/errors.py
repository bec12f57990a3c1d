"""The one error shape of every non-OpenAI route, and FastAPI handlers that produce it.

``{"error": {"code", "message", "field", "details", "request_id"}}``
(:class:`catalog.schemas.ErrorResponse`). Status codes come from
:data:`catalog.errors.HTTP_STATUS` (both ways); request validation failures are 422 and
name the first offending field (``body.lora.r``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from catalog.errors import CatalogError, code_for_status, status_for_code

log = logging.getLogger(__name__)


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
