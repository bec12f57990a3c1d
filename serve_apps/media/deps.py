"""FastAPI dependencies of the media routes (:mod:`serve_apps.media.api`): the caller,
the media service's DeploymentHandle (found through the app's state), path and page
parameters, and the filters of the image and video lists."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from ray import serve
from ray.serve.handle import DeploymentHandle

from catalog import schemas as s
from serve_apps.auth import Principal, current_principal
from serve_apps.media.schemas import IMAGE_REF

#: The Serve deployment name of the media service.
DEPLOYMENT_NAME = "MediaRouter"


def use_media_app(app: FastAPI, app_name: str | None) -> None:
    """Point the media routes mounted on ``app`` at the ``MediaRouter`` deployment of
    the Serve application ``app_name``; without this call (or with None) they use the
    application serving the request (the media deployment bound in the ingress's app)."""
    app.state.media_app = app_name


async def media_service(request: Request) -> DeploymentHandle:
    """The media service's handle (:class:`serve_apps.media.service.MediaService`),
    looked up by name on first use and kept in ``app.state.media``; call its methods as
    ``media.name.remote(...)``. Serve must be running by then. A coroutine, so FastAPI
    runs it on the event loop instead of a threadpool hop per request."""
    state = request.app.state
    handle: DeploymentHandle | None = getattr(state, "media", None)
    if handle is None:
        handle = state.media = serve.get_deployment_handle(
            DEPLOYMENT_NAME, app_name=getattr(state, "media_app", None))
    return handle


Who = Annotated[Principal, Depends(current_principal)]
Media = Annotated[DeploymentHandle, Depends(media_service)]
RowId = Annotated[str, Path(min_length=1, max_length=64)]
ImageRef = Annotated[str, Path(min_length=1, max_length=64, description=IMAGE_REF)]
PageSize = Annotated[int, Query(ge=1, le=1000, description="Rows per page.")]


def list_filters(
    status: s.PredictionStatus | None = None,
    provider: str | None = Query(None, max_length=50),
    tag: str | None = Query(None, max_length=100),
    project: str | None = Query(None, max_length=200),
    favorite: bool | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    page_size: PageSize = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """The filters of the image and video lists: the status of the prediction that makes
    the row, provider, a tag name, a project (id or slug), favourites only, creation
    time bounds, and the page."""
    return {"status": status, "provider": provider, "tag": tag, "project": project,
            "favorite": favorite, "created_after": created_after,
            "created_before": created_before, "page_size": page_size, "cursor": cursor}


ListFilters = Annotated[dict[str, Any], Depends(list_filters)]
