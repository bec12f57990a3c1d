"""The media studio's namespaces: ``client.images``, ``client.source_images`` (uploads),
``client.edits`` (edits and upscales), ``client.videos``, ``client.predictions`` and
``client.providers``.

A generation, edit, upscale or video is a row plus the :class:`~catalog.schemas.Prediction`
that tracks the provider's work; the POST routes answer both (:class:`ImageGeneration`,
:class:`ImageEditResult`, :class:`VideoGeneration`). Deleting a row hides it at once
(later gets answer 404) and its files are purged after the server's retention period.

Every method raises the :mod:`garden.errors` subclass of the server's answer:
NotFoundError (404: no such row, deleted, or another user's), PermissionDeniedError (403),
ValidationFailedError (422, ``error.field`` names the field, e.g. a parameter the chosen
provider does not support), PayloadTooLargeError (413: an upload over the limit),
ServerError (503: no provider configured or healthy).
"""

from __future__ import annotations

import base64
import builtins
import mimetypes
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, TypeAdapter

from catalog import schemas as s
from catalog.lifecycle import TERMINAL_PREDICTION_STATUSES
from garden.client.base import Namespace

M = TypeVar("M", bound=BaseModel)

UpscaleMode = Literal["fast", "conservative", "creative"]
EditMode = Literal["inpaint", "search_and_replace", "variation"]
Purpose = Literal["training", "reference", "inspiration"]


class ImageGeneration(BaseModel):
    """The stored image row and the prediction that tracks the provider's work."""

    image: s.Image
    prediction: s.Prediction


class ImageEditResult(BaseModel):
    """An edit or upscale row and the prediction that makes it."""

    edit: s.ImageEdit
    prediction: s.Prediction


class VideoGeneration(BaseModel):
    """The stored video row and the prediction that tracks the provider's work."""

    video: s.Video
    prediction: s.Prediction

    @property
    def done(self) -> bool:
        """Whether the prediction reached a terminal status (succeeded, failed, canceled)."""
        return self.prediction.status in TERMINAL_PREDICTION_STATUSES


class PredictionFailedError(RuntimeError):
    """A prediction that a wait saw end ``failed`` or ``canceled``."""

    def __init__(self, prediction: s.Prediction):
        reason = f": {prediction.error_message}" if prediction.error_message else ""
        super().__init__(f"prediction {prediction.id} {prediction.status}{reason}")
        self.prediction = prediction


def _body(**fields: Any) -> dict[str, Any]:
    """The JSON body: fields left as None are not sent (the server defaults them)."""
    return {k: v for k, v in fields.items() if v is not None}


def _when(value: datetime | str | None) -> str | None:
    """A time filter as the query string carries it (ISO 8601)."""
    return value.isoformat() if isinstance(value, datetime) else value


class _MediaRows(Namespace):
    """List, update and delete, shared by images, videos and source images."""

    _path: str

    def _list(self, model: type[M], params: dict[str, Any]) -> s.Page[M]:
        params = {k: _when(v) if k.startswith("created_") else v for k, v in params.items()}
        return self._page(model, self._path, params)

    def _patch(self, model: type[M], row_id: str, fields: dict[str, Any]) -> M:
        """PATCH the row; the answer is the bare updated row."""
        data = self._client.request("PATCH", f"{self._path}/{row_id}", json=_body(**fields))
        return model.model_validate(data.json())

    def delete(self, row_id: str) -> None:
        """DELETE the row (soft: it vanishes from lists and gets; its files are purged
        after the retention period). Raises NotFoundError, PermissionDeniedError."""
        self._client.request("DELETE", f"{self._path}/{row_id}")


class _Generated(_MediaRows, Generic[M]):
    """What generated images and videos share: their list and its filters."""

    _model: type[M]

    def list(
        self, *, status: s.PredictionStatus | str | None = None, provider: str | None = None,
        tag: str | None = None, project: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None, favorite: bool | None = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> s.Page[M]:
        """GET ``{path}``: one page of the caller's images or videos, newest first.

        Args:
            status: their prediction's status (``succeeded``, ``failed``, ...).
            tag: carrying this tag name. project: in this project (id or slug).
            created_after, created_before: creation time bounds (UTC when naive).
            favorite: True only favorites.
        """
        return self._list(self._model, {
            "status": status, "provider": provider, "tag": tag, "project": project,
            "created_after": created_after, "created_before": created_before,
            "favorite": favorite, "page_size": page_size, "cursor": cursor})


class Images(_Generated[s.Image]):
    """Generated images: ``/v1/images``."""

    _path = "/v1/images"
    _model = s.Image

    def generate(
        self, prompt: str, *, provider: str | None = None, model: str | None = None,
        size: str | None = None, negative_prompt: str | None = None,
        num_outputs: int | None = None, guidance_scale: float | None = None,
        style_preset: str | None = None, prompt_helper_id: str | None = None,
        prompt_helper_version: int | None = None, theme_helper_id: str | None = None,
        timeout_s: float = 300.0, **params: Any,
    ) -> ImageGeneration:
        """POST /v1/images/generations (201); waits up to ``timeout_s`` for the provider.

        Args:
            size: ``"WIDTHxHEIGHT"`` in pixels (64..4096 each).
            num_outputs: images asked for, 1..10; the chosen model must support more
                than 1 (else ValidationFailedError naming ``num_outputs``).
            guidance_scale: prompt adherence, 0..30 (classifier-free guidance).
            style_preset: the provider's own preset, e.g. Stability's ``cinematic``.
            prompt_helper_id: a style applied to the prompt; ``prompt_helper_version``
                pins one of its versions (default: current).
            theme_helper_id: a theme applied to the prompt.
            params: other request fields (``aspect_ratio``, ``width``, ``height``,
                ``output_format``, ``steps``, ``seed``) pass through.

        Raises ValidationFailedError naming a field the chosen provider does not support.
        """
        body = _body(prompt=prompt, provider=provider, model=model, size=size,
                     negative_prompt=negative_prompt, num_outputs=num_outputs,
                     guidance_scale=guidance_scale, style_preset=style_preset,
                     prompt_helper_id=prompt_helper_id,
                     prompt_helper_version=prompt_helper_version,
                     theme_helper_id=theme_helper_id, **params)
        data = self._client.request("POST", "/v1/images/generations", timeout=timeout_s,
                                    json=body)
        return ImageGeneration.model_validate(data.json())

    def get(self, image_id: str) -> ImageGeneration:
        """GET /v1/images/{id}: the image and its prediction. Raises NotFoundError."""
        return ImageGeneration.model_validate(
            self._client.request("GET", f"/v1/images/{image_id}").json())

    def update(
        self, image_id: str, *, title: str | None = None, caption: str | None = None,
        alt_text: str | None = None, is_public: bool | None = None,
        is_favorite: bool | None = None,
    ) -> s.Image:
        """PATCH /v1/images/{id}: change the fields given (None: unchanged). Raises
        NotFoundError, PermissionDeniedError, ValidationFailedError."""
        return self._patch(s.Image, image_id, {
            "title": title, "caption": caption, "alt_text": alt_text,
            "is_public": is_public, "is_favorite": is_favorite})

    def content(self, image_id: str, index: int = 0) -> bytes:
        """GET /v1/images/{id}/content: the bytes of the image's ``index``-th stored file
        (0..9; one per output). Raises NotFoundError (also: deleted, or its files
        purged)."""
        return self._client.request("GET", f"{self._path}/{image_id}/content",
                                    params={"index": index}).content

    def upscale(
        self, image_id: str, *, mode: UpscaleMode = "fast", prompt: str | None = None,
        provider: str | None = None, model: str | None = None,
        output_format: str | None = None, seed: int | None = None,
        timeout_s: float = 300.0,
    ) -> ImageEditResult:
        """POST /v1/images/{id}/upscale (201): a larger copy of a generated image
        (``img_...``) or an upload (``src_...``).

        Args:
            mode: ``fast``, ``conservative`` or ``creative`` (Stability's upscalers); the
                last two need ``prompt``.

        Raises NotFoundError, ValidationFailedError (e.g. ``prompt`` missing).
        """
        data = self._client.request("POST", f"/v1/images/{image_id}/upscale", timeout=timeout_s,
                                    json=_body(mode=mode, prompt=prompt, provider=provider,
                                               model=model, output_format=output_format,
                                               seed=seed))
        return ImageEditResult.model_validate(data.json())

    def edit(
        self, image_id: str, *, mode: EditMode = "inpaint", prompt: str | None = None,
        search_prompt: str | None = None, mask: bytes | None = None,
        provider: str | None = None, model: str | None = None,
        output_format: str | None = None, seed: int | None = None,
        timeout_s: float = 300.0,
    ) -> ImageEditResult:
        """POST /v1/images/{id}/edits (201): edit a generated image (``img_...``) or an
        upload (``src_...``).

        Args:
            mode: ``inpaint`` (repaint the mask's white pixels per ``prompt``),
                ``search_and_replace`` (replace ``search_prompt`` by ``prompt``) or
                ``variation``.
            mask: PNG bytes, the image's size; sent base64-encoded.

        Raises NotFoundError, ValidationFailedError (e.g. ``prompt`` missing).
        """
        data = self._client.request("POST", f"/v1/images/{image_id}/edits", timeout=timeout_s,
                                    json=_body(
            mode=mode, prompt=prompt, search_prompt=search_prompt,
            mask=None if mask is None else base64.b64encode(mask).decode("ascii"),
            provider=provider, model=model, output_format=output_format, seed=seed))
        return ImageEditResult.model_validate(data.json())


class Videos(_Generated[s.Video]):
    """Generated videos: ``/v1/videos``."""

    _path = "/v1/videos"
    _model = s.Video

    def create(
        self, prompt: str, image_id: str | None = None, *, provider: str | None = None,
        model: str | None = None, duration_s: float | None = None, ratio: str | None = None,
        seed: int | None = None, **params: Any,
    ) -> VideoGeneration:
        """POST /v1/videos (201): start a video; the prediction runs on (see :meth:`wait`).

        Args:
            image_id: the first frame: a generated image (``img_...``) or an upload
                (``src_...``); None for text-to-video.
            duration_s: clip length, seconds (server default 5).
            ratio: frame ratio, e.g. ``16:9`` or ``1280:720``.
            params: other request fields pass through.

        Raises NotFoundError (image unknown), ValidationFailedError.
        """
        data = self._client.request("POST", "/v1/videos", json=_body(
            prompt=prompt, image_id=image_id, provider=provider, model=model,
            duration_s=duration_s, ratio=ratio, seed=seed, **params))
        return VideoGeneration.model_validate(data.json())

    def get(self, video_id: str) -> VideoGeneration:
        """GET /v1/videos/{id}: the video and its prediction. Raises NotFoundError."""
        return VideoGeneration.model_validate(
            self._client.request("GET", f"/v1/videos/{video_id}").json())

    def update(
        self, video_id: str, *, title: str | None = None, caption: str | None = None,
        is_public: bool | None = None, is_favorite: bool | None = None,
    ) -> s.Video:
        """PATCH /v1/videos/{id}: change the fields given (None: unchanged). Raises
        NotFoundError, PermissionDeniedError, ValidationFailedError."""
        return self._patch(s.Video, video_id, {
            "title": title, "caption": caption, "is_public": is_public,
            "is_favorite": is_favorite})

    def content(self, video_id: str, index: int = 0, *, thumbnail: bool = False) -> bytes:
        """GET /v1/videos/{id}/content: the bytes of the video's ``index``-th stored file
        (``thumbnail``: its thumbnail image, where the provider gave one). Raises
        NotFoundError (also: deleted, purged, or no thumbnail)."""
        params: dict[str, Any] = {"index": index}
        if thumbnail:
            params["thumbnail"] = "true"
        return self._client.request("GET", f"{self._path}/{video_id}/content",
                                    params=params).content

    def wait(
        self, video_id: str, timeout_s: float = 600.0, *, poll_interval_s: float = 2.0,
        on_poll: Callable[[VideoGeneration], None] | None = None,
        raise_on_failure: bool = True,
    ) -> VideoGeneration:
        """Poll GET /v1/videos/{id} every ``poll_interval_s`` seconds until its prediction
        is terminal (succeeded, failed, canceled); returns the last answer.
        ``on_poll(result)`` runs after each poll (a progress display).

        Raises:
            TimeoutError: not terminal after ``timeout_s`` seconds.
            PredictionFailedError: it ended failed or canceled (unless
                ``raise_on_failure`` is False).
            NotFoundError: the video is unknown or was deleted.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.get(video_id)
            if on_poll is not None:
                on_poll(result)
            if result.done:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"video {video_id} still {result.prediction.status} "
                                   f"after {timeout_s} s")
            time.sleep(min(poll_interval_s, left))
        if raise_on_failure and result.prediction.status != s.PredictionStatus.succeeded:
            raise PredictionFailedError(result.prediction)
        return result


class SourceImages(_MediaRows):
    """Uploaded images (references, training images, inputs of edits): ``/v1/source-images``."""

    _path = "/v1/source-images"

    def upload(
        self, file: str | Path | bytes, *, title: str | None = None,
        description: str | None = None, purpose: Purpose | str | None = None,
        is_public: bool | None = None, filename: str | None = None,
    ) -> s.SourceImage:
        """POST /v1/source-images (multipart, 201).

        Args:
            file: a path (streamed from disk) or the image bytes.
            purpose: ``training``, ``reference`` or ``inspiration``.
            filename: the name sent for bytes (default ``upload.png``); its extension
                sets the content type.

        Raises FileNotFoundError (no such path), PayloadTooLargeError,
        ValidationFailedError (not an image, unknown purpose).
        """
        data = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in _body(
            title=title, description=description, purpose=purpose,
            is_public=is_public).items()}
        if isinstance(file, bytes):
            name = filename or "upload.png"
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            response = self._client.request("POST", self._path, data=data,
                                            files={"file": (name, file, ctype)})
        else:
            path = Path(file)
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            with path.open("rb") as handle:
                response = self._client.request("POST", self._path, data=data,
                                                files={"file": (path.name, handle, ctype)})
        return s.SourceImage.model_validate(response.json())

    def list(
        self, *, purpose: Purpose | str | None = None, tag: str | None = None,
        page_size: int = 50, cursor: str | None = None,
    ) -> s.Page[s.SourceImage]:
        """GET /v1/source-images: one page of the caller's uploads, newest first
        (``purpose``: only this one; ``tag``: carrying this tag name)."""
        return self._list(s.SourceImage, {
            "purpose": purpose, "tag": tag, "page_size": page_size, "cursor": cursor})

    def get(self, source_image_id: str) -> s.SourceImage:
        """GET /v1/source-images/{id}. Raises NotFoundError."""
        return s.SourceImage.model_validate(self._client.request(
            "GET", f"{self._path}/{source_image_id}").json())

    def update(
        self, source_image_id: str, *, title: str | None = None,
        description: str | None = None, purpose: Purpose | str | None = None,
        is_public: bool | None = None,
    ) -> s.SourceImage:
        """PATCH /v1/source-images/{id}: change the fields given (None: unchanged)."""
        return self._patch(s.SourceImage, source_image_id, {
            "title": title, "description": description, "purpose": purpose,
            "is_public": is_public})

    def content(self, source_image_id: str, thumbnail: bool = False) -> bytes:
        """GET /v1/source-images/{id}/content: the image's bytes (``thumbnail``: the small
        copy the server made). Raises NotFoundError (also: its file was purged)."""
        params = {"thumbnail": "true"} if thumbnail else None
        return self._client.request("GET", f"{self._path}/{source_image_id}/content",
                                    params=params).content


class Edits(Namespace):
    """Edits and upscales: ``/v1/edits``."""

    def list(self, *, image_id: str | None = None, kind: s.EditKind | str | None = None,
             page_size: int = 50, cursor: str | None = None) -> s.Page[s.ImageEdit]:
        """GET /v1/edits: one page of the caller's edits and upscales, newest first
        (``image_id``: of this image or upload only; ``kind``: only edits or only
        upscales)."""
        return self._page(s.ImageEdit, "/v1/edits", {
            "image_id": image_id, "kind": kind, "page_size": page_size, "cursor": cursor})

    def get(self, edit_id: str) -> ImageEditResult:
        """GET /v1/edits/{id}: the edit or upscale and its prediction. Raises
        NotFoundError."""
        return ImageEditResult.model_validate(
            self._client.request("GET", f"/v1/edits/{edit_id}").json())

    def content(self, edit_id: str, index: int = 0) -> bytes:
        """GET /v1/edits/{id}/content: the bytes of the result's ``index``-th stored file.
        Raises NotFoundError (also: deleted, or its files purged)."""
        return self._client.request("GET", f"/v1/edits/{edit_id}/content",
                                    params={"index": index}).content

    def delete(self, edit_id: str) -> None:
        """DELETE /v1/edits/{id} (soft: it vanishes from lists and gets; its files are
        purged after the retention period). Raises NotFoundError, PermissionDeniedError."""
        self._client.request("DELETE", f"/v1/edits/{edit_id}")


class Providers(Namespace):
    """The media providers the server knows."""

    def list(self) -> builtins.list[s.ProviderStatus]:
        """GET /v1/providers: each provider (replicate, stability, openai, runway) with
        ``configured``, ``healthy``, ``cooldown_s`` (seconds), ``token_env`` and its
        ``models`` (name, version, capabilities, active):
        :class:`catalog.schemas.ProviderStatus` rows."""
        data = self._client.request("GET", "/v1/providers").json()
        return TypeAdapter(builtins.list[s.ProviderStatus]).validate_python(data)


class Predictions(Namespace):
    """Provider-neutral predictions (one per image or video request), newest first."""

    def list(
        self, *, status: str | None = None, provider: str | None = None,
        modality: str | None = None, page_size: int = 50, cursor: str | None = None,
    ) -> s.Page[s.Prediction]:
        """GET /v1/predictions: one page of the caller's predictions (admins: everyone's)."""
        return self._page(s.Prediction, "/v1/predictions", {
            "status": status, "provider": provider, "modality": modality,
            "page_size": page_size, "cursor": cursor})

    def get(self, prediction_id: str) -> s.Prediction:
        """GET /v1/predictions/{id}. Raises NotFoundError, PermissionDeniedError."""
        return s.Prediction.model_validate(
            self._client.request("GET", f"/v1/predictions/{prediction_id}").json())

    def cancel(self, prediction_id: str) -> s.Prediction:
        """POST /v1/predictions/{id}/cancel: cancel at the provider. Raises ConflictError
        (409) when the prediction already finished."""
        return s.Prediction.model_validate(
            self._client.request("POST", f"/v1/predictions/{prediction_id}/cancel").json())
