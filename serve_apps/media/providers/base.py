"""The one provider interface: submit, get, cancel, parse webhook.

Every adapter turns its provider's API into :class:`ProviderJob` (Replicate's status
vocabulary) and its failures into :class:`ProviderError`, so the router's retries,
fallbacks and lifecycle code never look at a provider's own shapes.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from catalog.errors import InvalidArgument, NotFound
from catalog.lifecycle import TERMINAL_PREDICTION_STATUSES
from catalog.retry import parse_retry_after
from catalog.schemas import Modality, PredictionStatus
from serve_apps.media.config import ProviderSettings


@dataclass(frozen=True)
class Output:
    """One output: a URL to download before it expires, or bytes already received."""

    url: str | None = None
    data: bytes | None = None
    mime_type: str | None = None


@dataclass
class ProviderJob:
    """A provider's view of one job, in Replicate's statuses."""

    provider_id: str | None
    status: PredictionStatus
    outputs: list[Output] = field(default_factory=list)
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_PREDICTION_STATUSES


@dataclass(frozen=True)
class MediaJob:
    """What the router asks a provider to do (already validated and styled).

    ``operation`` is one of generate, upscale, edit, variation (images) or generate
    (videos); ``mode`` refines it (upscale: fast|conservative|creative; edit:
    inpaint|search_and_replace; video: text_to_video|image_to_video).
    ``image``/``mask`` are PNG/JPEG/WebP bytes. ``width``/``height`` in pixels.
    ``num_outputs``: images wanted from one call; ``guidance_scale``: classifier-free
    guidance (Stability ``cfg_scale``, flux ``guidance``); ``style_preset``: a provider
    preset name (Stability's enum). Whether a provider takes them:
    :meth:`Provider.check_params`.
    """

    modality: Modality
    operation: str
    prompt: str | None = None
    model: str | None = None
    mode: str | None = None
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    output_format: str = "png"
    seed: int | None = None
    steps: int | None = None
    image: bytes | None = None
    mask: bytes | None = None
    search_prompt: str | None = None
    duration_s: float | None = None
    webhook_url: str | None = None
    num_outputs: int = 1
    guidance_scale: float | None = None
    style_preset: str | None = None

    @property
    def key(self) -> str:
        """Policy key, e.g. ``image.generate``."""
        return f"{self.modality.value}.{self.operation}"

    @property
    def size(self) -> str | None:
        return f"{self.width}x{self.height}" if self.width and self.height else None

    def given(self, *names: str) -> dict[str, Any]:
        """The fields ``names`` that are set (not None, empty or 0), by name: the
        optional inputs a provider takes under the job's own field names."""
        return {name: getattr(self, name) for name in names if getattr(self, name)}


@dataclass(frozen=True)
class ParamSupport:
    """Which optional generation parameters one model takes for one operation, as its
    provider documents them (each adapter cites its source).

    ``negative_prompt``: accepted at all. ``num_outputs``: most outputs one call returns
    (1: one image per call). ``guidance_scale``: the provider's inclusive ``(min, max)``
    range, None when the model has no guidance. ``style_presets``: the accepted preset
    names, None when the model has no presets. ``passthrough``: a model we know nothing
    about (any Replicate model): every set parameter is sent and the model's own input
    schema judges it, so nothing is refused here.
    """

    negative_prompt: bool = False
    num_outputs: int = 1
    guidance_scale: tuple[float, float] | None = None
    style_presets: frozenset[str] | None = None
    passthrough: bool = False


#: Nothing optional: what a model without documented support gets (Runway).
NO_PARAMS = ParamSupport()
#: Unknown model: send everything, let the provider judge.
PASSTHROUGH = ParamSupport(passthrough=True)


class ProviderError(Exception):
    """A provider call failed.

    Args:
        provider: provider name.
        message: what the provider said (tokens redacted by the caller).
        status: HTTP status, None for transport errors.
        retry_after_s: the provider's Retry-After, seconds, if it sent one.
        sent: False when the request certainly never reached the provider (connection
            refused), so even a create may be sent again.
    """

    def __init__(
        self, provider: str, message: str, *, status: int | None = None,
        retry_after_s: float | None = None, sent: bool = True,
    ):
        super().__init__(f"{provider}: {message}" + (f" (HTTP {status})" if status else ""))
        self.provider = provider
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s
        self.sent = sent

    @property
    def retryable(self) -> bool:
        """429, 5xx, or a transport error: worth another attempt for idempotent calls."""
        return self.status is None or self.status == 429 or self.status >= 500


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from the ``Retry-After`` of ``headers`` (:func:`catalog.retry.parse_retry_after`);
    plain dicts are looked up in both spellings."""
    if not headers:
        return None
    return parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))


def image_mime_type(data: bytes) -> str:
    """The MIME type of PNG, JPEG, WebP or GIF bytes from their signatures (PNG spec
    §5.2, JFIF SOI marker, RIFF/WEBP header, GIF87a/89a); ``image/png`` otherwise."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "image/png"


def data_uri(data: bytes, mime_type: str | None = None) -> str:
    """``data:`` URI (RFC 2397) for APIs that take images inline (Replicate, Runway);
    the MIME type defaults to the one the bytes' signature names."""
    mime = mime_type or image_mime_type(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


class Provider:
    """Base class of the adapters. Subclasses set ``name``, ``capabilities``,
    ``default_models`` and implement :meth:`submit` (and :meth:`get`/:meth:`cancel`
    where the provider has asynchronous jobs).

    ``idempotent_create``: the provider de-duplicates creates, so a create that may
    have succeeded can be re-sent. None of the four does.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    default_models: ClassVar[dict[str, str]] = {}
    idempotent_create: ClassVar[bool] = False

    def __init__(self, settings: ProviderSettings, *, timeout_s: float = 60.0):
        self.settings = settings
        self.timeout_s = timeout_s

    @property
    def configured(self) -> bool:
        return self.settings.token is not None

    @property
    def token(self) -> str:
        return self.settings.token.get_secret_value() if self.settings.token else ""

    def supports(self, key: str) -> bool:
        return key in self.capabilities

    def model_for(self, job: MediaJob) -> str:
        """The model a job runs on: the request's, the configured default, or ours."""
        if job.model:
            return job.model
        for key in (f"{job.key}.{job.mode}", job.key):
            if key in self.settings.models:
                return self.settings.models[key]
            if key in self.default_models:
                return self.default_models[key]
        raise NotFound(f"{self.name} has no model for {job.key}", field="model")

    def param_support(self, job: MediaJob, model: str) -> ParamSupport:
        """The optional parameters ``model`` takes for ``job.key`` (and ``job.mode``).
        Adapters override this with their provider's documented table; the default takes
        none of them."""
        return NO_PARAMS

    def check_params(self, job: MediaJob) -> None:
        """Refuse an optional generation parameter the job's model cannot take, before
        anything is written or sent. ``num_outputs`` counts as set above 1.

        Raises:
            InvalidArgument: 422 with ``field`` one of ``negative_prompt``,
                ``num_outputs``, ``guidance_scale``, ``style_preset``.
            NotFound: no model for ``job.key`` (from :meth:`model_for`).
        """
        model = self.model_for(job)
        support = self.param_support(job, model)
        where = f"{self.name} model {model!r} ({job.key})"
        if job.num_outputs < 1:
            raise InvalidArgument("num_outputs must be at least 1", field="num_outputs")
        if support.passthrough:
            return
        if job.negative_prompt and not support.negative_prompt:
            raise InvalidArgument(f"{where} takes no negative prompt", field="negative_prompt")
        if job.num_outputs > support.num_outputs:
            raise InvalidArgument(
                f"{where} returns at most {support.num_outputs} output"
                f"{'s' if support.num_outputs > 1 else ''} per call", field="num_outputs")
        if job.guidance_scale is not None:
            if support.guidance_scale is None:
                raise InvalidArgument(f"{where} takes no guidance scale",
                                      field="guidance_scale")
            low, high = support.guidance_scale
            if not low <= job.guidance_scale <= high:
                raise InvalidArgument(f"{where} takes guidance_scale {low:g}..{high:g}",
                                      field="guidance_scale")
        if job.style_preset is not None:
            if support.style_presets is None:
                raise InvalidArgument(f"{where} takes no style preset", field="style_preset")
            if job.style_preset not in support.style_presets:
                raise InvalidArgument(
                    f"{where} has no style preset {job.style_preset!r}; one of "
                    f"{', '.join(sorted(support.style_presets))}", field="style_preset")

    def split_model(self, ref: str) -> tuple[str, str | None]:
        """``(name, version)`` of a model reference; providers without versions: None."""
        return ref, None

    def models(self) -> list[dict[str, Any]]:
        """Each model this provider runs by default or by configuration, sorted by name.

        Returns ``[{"name": str, "version": str | None, "capabilities": [operation key,
        ...] (sorted, e.g. "image.generate"), "active": bool}]``: ``default_models`` with
        ``settings.models`` overriding per key; a mode key such as
        ``video.generate.text_to_video`` counts as ``video.generate``. ``active``: the
        provider has a token.
        """
        keys: dict[str, set[str]] = {}
        for key, ref in {**self.default_models, **self.settings.models}.items():
            keys.setdefault(ref, set()).add(".".join(key.split(".")[:2]))
        rows = []
        for ref in sorted(keys):
            name, version = self.split_model(ref)
            rows.append({"name": name, "version": version, "capabilities": sorted(keys[ref]),
                         "active": self.configured})
        return rows

    def check_model(self, model: str) -> None:
        """Refuse a ``model`` this provider cannot name before anything is written.

        Raises:
            InvalidArgument: ``model`` is not in the provider's reference format (422,
                field ``model``). The default accepts any name.
        """

    async def submit(self, job: MediaJob) -> ProviderJob:
        """Start ``job``. Synchronous APIs return a terminal job with outputs."""
        raise NotImplementedError

    async def get(self, provider_id: str) -> ProviderJob:
        """The job's current state. Raises ProviderError."""
        raise NotFound(f"{self.name} has no asynchronous jobs to poll", field="provider")

    async def cancel(self, provider_id: str) -> ProviderJob:
        """Ask the provider to stop the job; returns its state after the request."""
        raise NotFound(f"{self.name} jobs cannot be canceled", field="provider")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> ProviderJob:
        """Verify and parse a callback. Raises Unauthenticated on a bad signature."""
        raise NotFound(f"{self.name} does not send webhooks", field="provider")

    async def aclose(self) -> None:
        """Release HTTP connections."""


class HttpProvider(Provider):
    """A provider reached over plain REST with ``Authorization: Bearer <token>``.

    ``headers`` adds the provider's own fixed headers (API version, Accept). The
    httpx client is built on first use and closed by :meth:`aclose`.
    """

    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, settings: ProviderSettings, *, timeout_s: float = 60.0):
        super().__init__(settings, timeout_s=timeout_s)
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.settings.base_url,
                headers={"Authorization": f"Bearer {self.token}", **self.headers},
                timeout=httpx.Timeout(self.timeout_s, connect=5.0),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def error_message(self, body: Any) -> str | None:
        """The message of a JSON error answer, in the provider's documented shape."""
        return None

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request. Raises ProviderError: ``sent=False`` when the connection was
        refused (nothing reached the provider), else with the HTTP status and the
        ``Retry-After`` delay of an error answer."""
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ProviderError(self.name, f"cannot connect: {exc}", sent=False) from exc
        except httpx.HTTPError as exc:
            raise ProviderError(self.name, f"transport error: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            try:
                message = self.error_message(response.json()) or "error"
            except ValueError:
                message = response.text[:200] or "error"
            raise ProviderError(self.name, str(message), status=response.status_code,
                                retry_after_s=retry_after_seconds(response.headers))
        return response
