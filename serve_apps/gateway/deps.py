"""FastAPI dependencies shared by the gateway's routers: the caller, the catalog,
the settings and list pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serve_apps.auth import Principal, current_principal
from serve_apps.gateway.config import GatewayConfig

#: Declares the bearer scheme in the OpenAPI document; the check is current_principal's.
_bearer = HTTPBearer(auto_error=False, description="A Model Garden API key.")


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The authenticated caller (401 without a valid key), see :mod:`serve_apps.auth`."""
    return await current_principal(request)


def catalog(request: Request):
    """The replica's :class:`catalog.actor.Catalog` facade, built on first use."""
    cat = getattr(request.app.state, "catalog", None)
    if cat is None:
        from catalog.actor import Catalog

        cat = request.app.state.catalog = Catalog()
    return cat


def settings(request: Request) -> GatewayConfig:
    """The gateway's :class:`GatewayConfig`."""
    return request.app.state.config


@dataclass(frozen=True)
class PageParams:
    """Keyset pagination: ``page_size`` rows (1..1000) after the opaque ``cursor``."""

    page_size: int
    cursor: str | None


def page_params(
    page_size: Annotated[int, Query(ge=1, le=1000, description="Rows per page.")] = 50,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page.")
    ] = None,
) -> PageParams:
    return PageParams(page_size=page_size, cursor=cursor)


Caller = Annotated[Principal, Depends(principal)]
Cat = Annotated[Any, Depends(catalog)]
Settings = Annotated[GatewayConfig, Depends(settings)]
Paging = Annotated[PageParams, Depends(page_params)]
