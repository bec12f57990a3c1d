"""``client.images``: image generation through the gateway's media routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from catalog.schemas import Image, Prediction
from garden.client.base import Namespace


class ImageGeneration(BaseModel):
    """The stored image row and the prediction that tracks the provider's work."""

    image: Image
    prediction: Prediction


class Images(Namespace):
    def generate(
        self, prompt: str, *, provider: str | None = None, model: str | None = None,
        size: str | None = None, timeout_s: float = 300.0, **params: Any,
    ) -> ImageGeneration:
        """POST /v1/images/generations. ``size`` is ``"WIDTHxHEIGHT"``; other fields
        (``negative_prompt``, ``aspect_ratio``, ``output_format``, ``seed``, ``style``...)
        pass through. Waits up to ``timeout_s`` for the provider."""
        body = {"prompt": prompt, "provider": provider, "model": model, "size": size, **params}
        data = self._client.request("POST", "/v1/images/generations", timeout=timeout_s,
                                    json={k: v for k, v in body.items() if v is not None})
        return ImageGeneration.model_validate(data.json())

    def get(self, image_id: str) -> ImageGeneration:
        return ImageGeneration.model_validate(
            self._client.request("GET", f"/v1/images/{image_id}").json())
