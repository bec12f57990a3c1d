"""The Model Garden Python client: :class:`Client` and its resource namespaces.

::

    from garden import Client
    client = Client()                       # GARDEN_API_URL, GARDEN_API_KEY
    ds = client.datasets.upload("chat.jsonl")
    base = client.models.list(kind="base", published=True).items[0]
    job = client.training.create(name="demo", base_model_id=base.id, dataset_id=ds.id)
    job.wait(on_progress=lambda j, points: print(j.status, points[-1:] ))
    client.usage.summary(group_by="day")    # requests, tokens, kWh, kg CO2eq per day
    openai.OpenAI(base_url=client.openai_base_url, api_key=client.api_key)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import httpx

from garden.client.batches import Batches, BatchJob
from garden.client.carbon import Carbon
from garden.client.datasets import Datasets
from garden.client.keys import Keys
from garden.client.library import Projects, Tags
from garden.client.media import (
    Edits,
    ImageEditResult,
    ImageGeneration,
    Images,
    PredictionFailedError,
    Predictions,
    Providers,
    SourceImages,
    VideoGeneration,
    Videos,
)
from garden.client.models import Models
from garden.client.styles import PromptHelpers, ThemeHelpers
from garden.client.training import Job, Training
from garden.client.transport import RetryTransport
from garden.client.usage import Usage
from garden.errors import GardenError

DEFAULT_API_URL = "http://127.0.0.1:8000"
#: Where the LLM app is mounted on the same Serve HTTP proxy (OpenAI base: <url>/openai/v1).
OPENAI_PREFIX = "/openai/v1"


class Client:
    """HTTP client of the gateway.

    Args:
        base_url: the API's URL (default ``$GARDEN_API_URL`` or http://127.0.0.1:8000).
        api_key: bearer key (default ``$GARDEN_API_KEY``); ``/health`` works without one.
        timeout_s: default timeout of one request, in seconds.
        transport: the httpx transport; default a :class:`RetryTransport` (idempotent
            requests retried on 429/502/503/504 and connection errors).

    Every error answer raises a :class:`garden.errors.GardenError` subclass carrying
    the server's ErrorResponse.
    """

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *,
        timeout_s: float = 60.0, transport: httpx.BaseTransport | None = None,
    ):
        self.base_url = (base_url or os.environ.get("GARDEN_API_URL") or DEFAULT_API_URL
                         ).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("GARDEN_API_KEY")
        headers = {"User-Agent": "garden-client/0.1"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s,
                                  transport=transport or RetryTransport())

    def __repr__(self) -> str:  # never shows the key
        return f"Client(base_url={self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; raise the typed GardenError for a 4xx/5xx answer."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise GardenError.from_response(response)
        return response

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Send one request and yield the response before its body is read (iterate it
        with ``iter_bytes``); raise the typed GardenError for a 4xx/5xx answer."""
        with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                raise GardenError.from_response(response)
            yield response

    @property
    def openai_base_url(self) -> str:
        """Base URL for the official ``openai`` client (``<api>/openai/v1``)."""
        return self.base_url + OPENAI_PREFIX

    def openai(self, **kwargs: Any):
        """An ``openai.OpenAI`` client on :attr:`openai_base_url` with this client's key."""
        import openai

        return openai.OpenAI(base_url=self.openai_base_url, api_key=self.api_key or "none",
                             **kwargs)

    @cached_property
    def datasets(self) -> Datasets:
        return Datasets(self)

    @cached_property
    def models(self) -> Models:
        return Models(self)

    @cached_property
    def training(self) -> Training:
        return Training(self)

    @cached_property
    def images(self) -> Images:
        return Images(self)

    @cached_property
    def predictions(self) -> Predictions:
        return Predictions(self)

    @cached_property
    def source_images(self) -> SourceImages:
        return SourceImages(self)

    @cached_property
    def edits(self) -> Edits:
        return Edits(self)

    @cached_property
    def videos(self) -> Videos:
        return Videos(self)

    @cached_property
    def providers(self) -> Providers:
        return Providers(self)

    @cached_property
    def prompt_helpers(self) -> PromptHelpers:
        return PromptHelpers(self)

    @cached_property
    def theme_helpers(self) -> ThemeHelpers:
        return ThemeHelpers(self)

    @cached_property
    def tags(self) -> Tags:
        return Tags(self)

    @cached_property
    def projects(self) -> Projects:
        return Projects(self)

    @cached_property
    def batches(self) -> Batches:
        return Batches(self)

    @cached_property
    def carbon(self) -> Carbon:
        return Carbon(self)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self)

    @cached_property
    def usage(self) -> Usage:
        return Usage(self)

    def health(self) -> dict[str, Any]:
        """``/health``: ``{"status", "components": {name: {"status", "detail"}}}``. An
        unhealthy server answers 503, returned here as the report rather than raised."""
        response = self._http.get("/health")
        if response.status_code not in (200, 503):
            raise GardenError.from_response(response)
        return response.json()

    def system(self) -> dict[str, Any]:
        """``/v1/system``: GPUs, CPUs, storage, package versions, database backend, the
        Serve applications with their replicas (``serve``) and ``dashboard_url``."""
        return self.request("GET", "/v1/system").json()

    def whoami(self) -> dict[str, Any]:
        """``/v1/whoami``: ``{"user_id", "role" ("admin" or "user"), "key_id"}`` of this
        client's key. Raises AuthenticationError (401) for a missing or unknown key."""
        return self.request("GET", "/v1/whoami").json()


__all__ = ["BatchJob", "Client", "GardenError", "ImageEditResult", "ImageGeneration", "Job",
           "PredictionFailedError", "RetryTransport", "VideoGeneration"]
