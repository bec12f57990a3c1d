"""Image and video generation routed to hosted providers through Ray Serve.

Public face: :data:`media_routes` (the FastAPI router, :mod:`serve_apps.media.api`),
:func:`build_media_app` (a Serve application of the service), :class:`MediaConfig`,
:class:`MediaService` (the deployment, usable without Serve) and
:func:`~serve_apps.media.styles.apply_style`.
"""

from serve_apps.media.api import router as media_routes
from serve_apps.media.builder import build_media_app
from serve_apps.media.config import MediaConfig
from serve_apps.media.service import MediaService

__all__ = ["MediaConfig", "MediaService", "build_media_app", "media_routes"]
