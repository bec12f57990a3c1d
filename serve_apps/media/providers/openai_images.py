"""OpenAI Images through the official ``openai`` client (``AsyncOpenAI``).

https://platform.openai.com/docs/api-reference/images — ``images.generate``,
``images.edit`` (image + optional mask + prompt) and ``images.create_variation``. All
are synchronous; dall-e models answer URLs that expire after 60 minutes (copied by the
router at once), gpt-image-1 answers base64. The client's own retries are off
(``max_retries=0``): it would re-send creates on 5xx, which may have been billed; the
router retries only what is safe.

Of the optional generation fields only the count exists: ``n`` is 1..10, and dall-e-3
takes only ``n=1`` (API reference, ``n``). There is no negative prompt, guidance or
style preset (dall-e-3's ``style`` vivid|natural is not a preset of ours).
"""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import openai
from openai.types import ImagesResponse

from catalog.schemas import PredictionStatus
from serve_apps.media.providers.base import (
    MediaJob,
    Output,
    ParamSupport,
    Provider,
    ProviderError,
    ProviderJob,
    retry_after_seconds,
)
from serve_apps.media.providers.sizes import nearest_openai_size

#: Most images per request (``n``), every model but dall-e-3.
MAX_N = 10


class OpenAIImagesProvider(Provider):
    name = "openai"
    capabilities = frozenset({"image.generate", "image.edit", "image.variation"})
    default_models: ClassVar[dict[str, str]] = {
        "image.generate": "dall-e-3", "image.edit": "dall-e-2", "image.variation": "dall-e-2",
    }

    def __init__(self, settings, *, timeout_s: float = 60.0):
        super().__init__(settings, timeout_s=timeout_s)
        self._client: openai.AsyncOpenAI | None = None

    @property
    def client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            self._client = openai.AsyncOpenAI(
                api_key=self.token, base_url=self.settings.base_url,
                timeout=self.timeout_s, max_retries=0,
            )
        return self._client

    def param_support(self, job: MediaJob, model: str) -> ParamSupport:
        """``n`` up to 10 (dall-e-3: 1); nothing else."""
        return ParamSupport(num_outputs=1 if model.startswith("dall-e-3") else MAX_N)

    def params(self, job: MediaJob) -> dict[str, Any]:
        """Keyword arguments of the client call for ``job``."""
        model = self.model_for(job)
        params: dict[str, Any] = {
            "model": model, "n": job.num_outputs,
            "size": nearest_openai_size(job.width, job.height, job.aspect_ratio, model),
        }
        if model.startswith("dall-e"):
            params["response_format"] = "url"
        elif job.output_format:
            params["output_format"] = job.output_format
        if job.operation != "variation":
            params["prompt"] = job.prompt or ""
        if job.image is not None:
            params["image"] = ("image.png", job.image, "image/png")
        if job.mask is not None:
            params["mask"] = ("mask.png", job.mask, "image/png")
        return params

    async def submit(self, job: MediaJob) -> ProviderJob:
        params = self.params(job)
        calls: dict[str, Callable[..., Awaitable[ImagesResponse]]] = {
            "generate": self.client.images.generate,
            "edit": self.client.images.edit,
            "variation": self.client.images.create_variation,
        }
        call = calls[job.operation]
        try:
            result = await call(**params)
        except openai.APIStatusError as exc:
            raise ProviderError(self.name, exc.message, status=exc.status_code,
                                retry_after_s=retry_after_seconds(exc.response.headers)) from exc
        except openai.APITimeoutError as exc:
            raise ProviderError(self.name, "timed out") from exc
        except openai.APIConnectionError as exc:
            raise ProviderError(self.name, f"cannot connect: {exc}", sent=False) from exc
        outputs = []
        for item in result.data or []:
            if item.b64_json:
                outputs.append(Output(data=base64.b64decode(item.b64_json)))
            elif item.url:
                outputs.append(Output(url=item.url))
        revised = [d.revised_prompt for d in result.data or [] if d.revised_prompt]
        if not outputs:
            return ProviderJob(provider_id=None, status=PredictionStatus.failed,
                               error="openai returned no image")
        return ProviderJob(provider_id=None, status=PredictionStatus.succeeded, outputs=outputs,
                           raw={"created": result.created, "revised_prompt": revised or None})

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
