"""The gateway app's composition (no Ray needed): media routes mount only when configured."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from serve_apps.gateway import GatewayConfig, create_app


def test_media_routes_mount_when_a_media_app_is_named():
    without = create_app(GatewayConfig()).openapi()["paths"]
    assert "/v1/images/generations" not in without
    with_media = create_app(GatewayConfig(media_app="media")).openapi()["paths"]
    for path in ("/v1/images/generations", "/v1/videos", "/v1/predictions",
                 "/v1/webhooks/{provider}"):
        assert path in with_media, path
    assert "/v1/datasets" in with_media


def test_config_rejects_unknown_and_out_of_range_fields():
    with pytest.raises(ValidationError):
        GatewayConfig(num_replicas=0)
    with pytest.raises(ValidationError):
        GatewayConfig(replicas=2)
