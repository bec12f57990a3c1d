"""``client.images`` and ``client.predictions``: the gateway's media routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from catalog.schemas import Image, Page, Prediction
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


class Predictions(Namespace):
    """Provider-neutral predictions (one per image or video request), newest first."""

    def list(
        self, *, status: str | None = None, provider: str | None = None,
        modality: str | None = None, page_size: int = 50, cursor: str | None = None,
    ) -> Page[Prediction]:
        """GET /v1/predictions: one page of the caller's predictions (admins: everyone's)."""
        return self._page(Prediction, "/v1/predictions", {
            "status": status, "provider": provider, "modality": modality,
            "page_size": page_size, "cursor": cursor})

    def get(self, prediction_id: str) -> Prediction:
        """GET /v1/predictions/{id}. Raises NotFoundError, PermissionDeniedError."""
        return Prediction.model_validate(
            self._client.request("GET", f"/v1/predictions/{prediction_id}").json())

    def cancel(self, prediction_id: str) -> Prediction:
        """POST /v1/predictions/{id}/cancel: cancel at the provider. Raises ConflictError
        (409) when the prediction already finished."""
        return Prediction.model_validate(
            self._client.request("POST", f"/v1/predictions/{prediction_id}/cancel").json())
