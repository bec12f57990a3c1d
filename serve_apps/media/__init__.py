"""Image and video generation routed to hosted providers through Ray Serve.

Public face: :func:`build_media_router` (FastAPI routes for the gateway),
:func:`build_media_app` (a standalone Serve application), :class:`MediaConfig`,
:class:`MediaService` (the logic, usable without Serve) and
:func:`~serve_apps.media.styles.apply_style`.
"""

from serve_apps.media.config import MediaConfig
from serve_apps.media.deployment import MediaRouter, build_media_app
from serve_apps.media.service import MediaService


def build_media_router(**kwargs):
    """See :func:`serve_apps.media.api.build_media_router`."""
    from serve_apps.media.api import build_media_router as build

    return build(**kwargs)


__all__ = ["MediaConfig", "MediaRouter", "MediaService", "build_media_app",
           "build_media_router"]
