"""Replicate through the official ``replicate`` client.

API: https://replicate.com/docs/reference/http — ``POST /v1/models/{owner}/{name}/predictions``
(official models) or ``POST /v1/predictions`` with ``version`` (``owner/name:version``),
``GET /v1/predictions/{id}``, ``POST /v1/predictions/{id}/cancel``. Statuses are already
ours (starting, processing, succeeded, failed, canceled). Output file URLs expire after
one hour (https://replicate.com/docs/topics/predictions/data-retention).

The client's own transport retries idempotent requests (GET) on 429/5xx honouring
Retry-After; creates are never retried by it. Webhooks are verified with the client's
``Webhooks.validate`` (Standard Webhooks scheme: HMAC-SHA256 over
``{webhook-id}.{webhook-timestamp}.{body}`` keyed by the base64 part of ``whsec_...``).

Optional generation inputs follow each model's input schema on its API page:
flux-schnell takes ``num_outputs`` 1..4 and no guidance; flux-dev ``num_outputs`` 1..4 and
``guidance`` 0..10; neither takes a negative prompt or style preset (:data:`PARAMS`).
Any other model is passed through: the set fields go as ``num_outputs``,
``guidance`` (flux models) or ``guidance_scale`` (the SD convention), ``negative_prompt``
and ``style_preset``, and the model's schema judges them.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import replicate
from replicate.exceptions import ModelError, ReplicateError
from replicate.identifier import ModelVersionIdentifier
from replicate.webhook import Webhooks, WebhookSigningSecret, WebhookValidationError

from catalog.errors import InvalidArgument, Unauthenticated, Unavailable
from catalog.schemas import PredictionStatus
from serve_apps.media.providers.base import (
    PASSTHROUGH,
    MediaJob,
    Output,
    ParamSupport,
    Provider,
    ProviderError,
    ProviderJob,
    data_uri,
    retry_after_seconds,
)

_retry_after: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "replicate_retry_after", default=None
)


#: Models whose optional inputs we know (name without version) -> what they take.
PARAMS: dict[str, ParamSupport] = {
    "black-forest-labs/flux-schnell": ParamSupport(num_outputs=4),
    "black-forest-labs/flux-dev": ParamSupport(num_outputs=4, guidance_scale=(0.0, 10.0)),
}


async def _remember_retry_after(response: httpx.Response) -> None:
    """httpx response hook: keep Retry-After, which ReplicateError does not carry."""
    _retry_after.set(retry_after_seconds(response.headers))


class ReplicateProvider(Provider):
    name = "replicate"
    capabilities = frozenset({"image.generate", "image.upscale", "image.edit", "video.generate"})
    default_models: ClassVar[dict[str, str]] = {
        "image.generate": "black-forest-labs/flux-schnell",
        "image.upscale": "nightmareai/real-esrgan",
        "image.edit": "black-forest-labs/flux-fill-pro",
        "video.generate": "minimax/video-01",
    }

    def __init__(self, settings, *, timeout_s: float = 60.0, webhook_tolerance_s: int = 300):
        super().__init__(settings, timeout_s=timeout_s)
        self.webhook_tolerance_s = webhook_tolerance_s
        self._client: replicate.Client | None = None

    @property
    def client(self) -> replicate.Client:
        if self._client is None:
            self._client = replicate.Client(
                api_token=self.token,
                base_url=self.settings.base_url,
                timeout=httpx.Timeout(self.timeout_s, connect=5.0),
                event_hooks={"response": [_remember_retry_after]},
            )
        return self._client

    def split_model(self, ref: str) -> tuple[str, str | None]:
        """``owner/name:version`` -> ``("owner/name", "version")``; no version: None."""
        name, _, version = ref.partition(":")
        return name, version or None

    def param_support(self, job: MediaJob, model: str) -> ParamSupport:
        """:data:`PARAMS` for the known flux models, else pass-through."""
        return PARAMS.get(self.split_model(model)[0], PASSTHROUGH)

    def build_input(self, job: MediaJob, model: str | None = None) -> dict[str, Any]:
        """The model input for ``job`` (flux / real-esrgan / minimax input names);
        ``model`` (default: :meth:`model_for`) picks the guidance input's name."""
        model = model or self.model_for(job)
        data: dict[str, Any] = job.given("prompt")
        if job.operation == "generate" and job.modality.value == "image":
            data["output_format"] = job.output_format
            data |= job.given("aspect_ratio", "negative_prompt", "style_preset")
            if job.steps:
                data["num_inference_steps"] = job.steps
            if job.num_outputs > 1:
                data["num_outputs"] = job.num_outputs
            if job.guidance_scale is not None:
                key = "guidance" if "flux" in self.split_model(model)[0] else "guidance_scale"
                data[key] = job.guidance_scale
        if job.seed is not None:
            data["seed"] = job.seed
        if job.image is not None:
            key = "first_frame_image" if job.modality.value == "video" else "image"
            data[key] = data_uri(job.image)
        if job.mask is not None:
            data["mask"] = data_uri(job.mask)
        if job.duration_s:
            data["duration"] = job.duration_s
        return data

    def check_model(self, model: str) -> None:
        """Replicate names models ``owner/name`` or ``owner/name:version`` (parsed with the
        client's own ``ModelVersionIdentifier``).

        Raises:
            InvalidArgument: any other form (422, field ``model``).
        """
        try:
            ModelVersionIdentifier.parse(model)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="model") from None

    async def submit(self, job: MediaJob) -> ProviderJob:
        model = self.model_for(job)
        params: dict[str, Any] = {"input": self.build_input(job, model)}
        if ":" in model:
            params["version"] = model.split(":", 1)[1]
        else:
            params["model"] = model
        if job.webhook_url:
            params["webhook"] = job.webhook_url
            params["webhook_events_filter"] = ["start", "completed"]
        prediction = await self._call(self.client.predictions.async_create(**params))
        return self.to_job(prediction.dict() if hasattr(prediction, "dict") else prediction)

    async def get(self, provider_id: str) -> ProviderJob:
        prediction = await self._call(self.client.predictions.async_get(provider_id))
        return self.to_job(prediction.dict())

    async def cancel(self, provider_id: str) -> ProviderJob:
        prediction = await self._call(self.client.predictions.async_cancel(provider_id))
        return self.to_job(prediction.dict())

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderJob:
        """Verify a webhook per Replicate's spec, then parse its prediction body.

        Raises:
            Unavailable: no signing secret configured (REPLICATE_WEBHOOK_SECRET).
            Unauthenticated: missing headers, bad or stale signature.
        """
        secret = self.settings.webhook_secret
        if secret is None:
            raise Unavailable("replicate webhooks need a signing secret: set "
                              "REPLICATE_WEBHOOK_SECRET")
        try:
            text = body.decode()
            Webhooks.validate(
                headers=dict(headers), body=text,
                secret=WebhookSigningSecret(key=secret.get_secret_value()),
                tolerance=self.webhook_tolerance_s,
            )
        except (WebhookValidationError, UnicodeDecodeError, ValueError) as exc:
            raise Unauthenticated(f"invalid replicate webhook signature: {exc}") from exc
        return self.to_job(json.loads(text))

    def to_job(self, data: Mapping[str, Any]) -> ProviderJob:
        """A Replicate prediction body (API JSON) as a ProviderJob."""
        output = data.get("output")
        urls = [output] if isinstance(output, str) else list(output or [])
        status = PredictionStatus(data["status"])
        outputs = [Output(url=u) for u in urls if isinstance(u, str)]
        if status != PredictionStatus.succeeded:
            outputs = []
        return ProviderJob(
            provider_id=data.get("id"), status=status, outputs=outputs,
            error=str(data["error"]) if data.get("error") else None,
            raw={k: data.get(k) for k in ("id", "model", "version", "status", "metrics")},
        )

    async def _call(self, awaitable):
        _retry_after.set(None)
        try:
            return await awaitable
        except ReplicateError as exc:
            raise ProviderError(self.name, exc.detail or exc.title or "error",
                                status=exc.status, retry_after_s=_retry_after.get()) from exc
        except ModelError as exc:
            raise ProviderError(self.name, str(exc), status=None) from exc
        except httpx.ConnectError as exc:
            raise ProviderError(self.name, f"cannot connect: {exc}", sent=False) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(self.name, f"transport error: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        if self._client is not None:  # the client exposes no close; its httpx client does
            await self._client._async_client.aclose()
