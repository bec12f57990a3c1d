"""FastAPI dependencies shared by the gateway's routers: the caller, the catalog,
the settings, the heavy-work port and list pagination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from catalog.errors import Unavailable
from catalog.port import AsyncCatalogPort
from serve_apps.auth import Principal, current_principal
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.work import Work

#: Declares the bearer scheme in the OpenAPI document; the check is current_principal's.
_bearer = HTTPBearer(auto_error=False, description="A Model Garden API key.")


async def principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The authenticated caller (401 without a valid key), see :mod:`serve_apps.auth`."""
    return await current_principal(request)


def catalog(request: Request) -> AsyncCatalogPort:
    """The replica's catalog port (:class:`catalog.actor.AsyncCatalog`), built on first use."""
    cat: AsyncCatalogPort | None = getattr(request.app.state, "catalog", None)
    if cat is None:
        from catalog.actor import AsyncCatalog

        cat = request.app.state.catalog = AsyncCatalog()
    return cat


def settings(request: Request) -> GatewayConfig:
    """The gateway's :class:`GatewayConfig`."""
    return request.app.state.config


def work(request: Request) -> Work:
    """The :class:`~serve_apps.gateway.work.Work` bound by ``build_gateway_app``.

    Raises:
        Unavailable: the app was built without one (503).
    """
    bound = getattr(request.app.state, "work", None)
    if bound is None:
        raise Unavailable("this gateway has no work backend for imports and training jobs")
    return bound


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
Cat = Annotated[AsyncCatalogPort, Depends(catalog)]
Settings = Annotated[GatewayConfig, Depends(settings)]
Worker = Annotated[Work, Depends(work)]
Paging = Annotated[PageParams, Depends(page_params)]
