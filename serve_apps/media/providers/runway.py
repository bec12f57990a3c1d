"""Runway video generation over httpx.

https://docs.dev.runwayml.com/api/ — ``POST /v1/text_to_video`` and
``POST /v1/image_to_video`` answer ``{"id"}``; ``GET /v1/tasks/{id}`` reports
``status`` (PENDING, THROTTLED, RUNNING, SUCCEEDED, FAILED, CANCELLED), ``output``
(URLs, which expire) and ``failure``/``failureCode``; ``DELETE /v1/tasks/{id}`` cancels
a running task. Every call sends ``X-Runway-Version``. None of the optional generation
parameters (negative prompt, output count, guidance, style preset) exists in this API, so
:meth:`~serve_apps.media.providers.base.Provider.check_params` refuses each of them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from catalog.schemas import PredictionStatus
from serve_apps.media.providers.base import (
    HttpProvider,
    MediaJob,
    Output,
    ProviderJob,
    data_uri,
)
from serve_apps.media.providers.sizes import RUNWAY_RATIOS

API_VERSION = "2024-11-06"

#: Runway task status -> Replicate status. THROTTLED: queued behind the account's
#: concurrency limit, so still "starting".
STATUS = {
    "PENDING": PredictionStatus.starting,
    "THROTTLED": PredictionStatus.starting,
    "RUNNING": PredictionStatus.processing,
    "SUCCEEDED": PredictionStatus.succeeded,
    "FAILED": PredictionStatus.failed,
    "CANCELLED": PredictionStatus.canceled,
}


class RunwayProvider(HttpProvider):
    name = "runway"
    capabilities = frozenset({"video.generate"})
    default_models: ClassVar[dict[str, str]] = {
        "video.generate": "gen4_turbo",
        "video.generate.text_to_video": "veo3.1",
    }
    headers: ClassVar[dict[str, str]] = {"X-Runway-Version": API_VERSION}

    def body(self, job: MediaJob) -> tuple[str, dict[str, Any]]:
        """``(path, JSON body)`` of the create call."""
        body: dict[str, Any] = {"model": self.model_for(job), "promptText": job.prompt or ""}
        ratio = job.aspect_ratio or "16:9"
        body["ratio"] = RUNWAY_RATIOS.get(ratio, ratio)
        if job.duration_s:
            body["duration"] = round(job.duration_s)
        if job.seed is not None:
            body["seed"] = job.seed
        if job.image is not None:
            body["promptImage"] = data_uri(job.image)
            return "/v1/image_to_video", body
        return "/v1/text_to_video", body

    async def submit(self, job: MediaJob) -> ProviderJob:
        path, body = self.body(job)
        data = (await self._request("POST", path, json=body)).json()
        return ProviderJob(provider_id=data["id"], status=PredictionStatus.starting,
                           raw={"id": data["id"]})

    async def get(self, provider_id: str) -> ProviderJob:
        return self.to_job((await self._request("GET", f"/v1/tasks/{provider_id}")).json())

    async def cancel(self, provider_id: str) -> ProviderJob:
        await self._request("DELETE", f"/v1/tasks/{provider_id}")
        return ProviderJob(provider_id=provider_id, status=PredictionStatus.canceled)

    def to_job(self, data: dict[str, Any]) -> ProviderJob:
        status = STATUS[data["status"]]
        outputs = [Output(url=u) for u in data.get("output") or []]
        error = None
        if status == PredictionStatus.failed:
            error = data.get("failure") or "failed"
            if data.get("failureCode"):
                error = f"{error} ({data['failureCode']})"
        return ProviderJob(provider_id=data.get("id"), status=status,
                           outputs=outputs if status == PredictionStatus.succeeded else [],
                           error=error,
                           raw={"status": data["status"], "progress": data.get("progress")})

    def error_message(self, body: Any) -> str | None:
        """Runway errors: ``{"error": "..."}``."""
        return body.get("error")

