"""Provider adapters (one interface: :class:`~serve_apps.media.providers.base.Provider`)."""

from __future__ import annotations

from serve_apps.media.config import MediaConfig
from serve_apps.media.providers.base import (
    MediaJob,
    Output,
    Provider,
    ProviderError,
    ProviderJob,
)
from serve_apps.media.providers.openai_images import OpenAIImagesProvider
from serve_apps.media.providers.replicate_provider import ReplicateProvider
from serve_apps.media.providers.runway import RunwayProvider
from serve_apps.media.providers.stability import StabilityProvider

ADAPTERS: dict[str, type[Provider]] = {
    "replicate": ReplicateProvider,
    "stability": StabilityProvider,
    "openai": OpenAIImagesProvider,
    "runway": RunwayProvider,
}

__all__ = ["ADAPTERS", "MediaJob", "Output", "Provider", "ProviderError", "ProviderJob",
           "build_providers"]


def build_providers(config: MediaConfig) -> dict[str, Provider]:
    """One adapter per configured provider name (tokenless ones too: they answer 503)."""
    providers: dict[str, Provider] = {}
    for name, settings in config.providers.items():
        cls = ADAPTERS[name]
        if cls is ReplicateProvider:
            providers[name] = cls(settings, timeout_s=config.request_timeout_s,
                                  webhook_tolerance_s=config.webhook_tolerance_s)
        else:
            providers[name] = cls(settings, timeout_s=config.request_timeout_s)
    return providers
