"""Copy provider outputs into our storage before the provider's URLs expire.

Files land at ``<root>/<prediction_id>/<index>.<ext>`` (deterministic, so a webhook and
a poller finishing the same prediction write the same files). ``root`` is a location
string, a local folder or an object-store URI (``s3://bucket/prefix/media``), by default
``media`` under the shared storage root (``GARDEN_STORAGE_URI``, see
:mod:`catalog.storage`), so every node reads what any node stored. MIME type
and dimensions come from the bytes (Pillow for images; the ISO-BMFF ``ftyp`` box for
MP4, ISO/IEC 14496-12 §4.3), never from the provider's word alone.
"""

from __future__ import annotations

import asyncio
import io
import mimetypes
import os

import httpx
from PIL import Image, UnidentifiedImageError

from catalog import storage
from catalog.retry import async_retrying
from catalog.schemas import StoredFile
from serve_apps.media.config import RetryPolicy
from serve_apps.media.providers.base import Output, retry_after_seconds
from serve_apps.media.retry import backoff_of

MAX_BYTES = 512 * 1024 * 1024


def describe(data: bytes, hint: str | None = None) -> tuple[str, int | None, int | None]:
    """``(mime_type, width, height)`` of ``data``; ``hint`` is a Content-Type fallback."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            mime = Image.MIME.get(img.format or "", hint or "application/octet-stream")
            return mime, img.width, img.height
    except UnidentifiedImageError:
        pass
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        return ("video/quicktime" if brand == b"qt  " else "video/mp4"), None, None
    return (hint or "application/octet-stream").split(";")[0].strip(), None, None


class OutputStore:
    """Downloads and writes outputs under ``root``.

    Args:
        root: location of the output tree, a local folder (``str`` or path) or an
            object-store URI such as ``s3://bucket/prefix/media``; None:
            ``catalog.storage.location("media")``, read when the store is made.
        timeout_s: seconds allowed for one download (connect: 5 s).
        limit: parallel downloads at most.
        retry: paces repeated downloads (provider URLs stay valid for an hour, so a
            blip must not fail the prediction).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *,
                 timeout_s: float = 60.0, limit: int = 16,
                 retry: RetryPolicy | None = None):
        self.root = os.fspath(root) if root is not None else storage.location("media")
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=5.0),
                                       follow_redirects=True)
        self._limit = asyncio.Semaphore(limit)

    async def fetch(self, url: str) -> tuple[bytes, str | None]:
        """The bytes at ``url`` and their Content-Type, retried (a GET is idempotent) on
        transport errors, 429 and 5xx per ``retry``. Raises httpx.HTTPError or ValueError
        (larger than MAX_BYTES)."""
        retryer = async_retrying(backoff_of(self.retry, give_up_above_retry_after=False),
                                 retry_if=_retryable, retry_after_of=_retry_after)
        return await retryer(self._fetch_once, url)

    async def _fetch_once(self, url: str) -> tuple[bytes, str | None]:
        async with self._limit, self._http.stream("GET", url) as response:
            response.raise_for_status()
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ValueError(f"output larger than {MAX_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type")

    def location_of(self, prediction_id: str, index: int, ext: str) -> str:
        """Where output ``index`` of a prediction is stored:
        ``<root>/<prediction_id>/<index>.<ext>`` (a URI when ``root`` is one)."""
        return storage.join(self.root, prediction_id, f"{index}.{ext}")

    async def save(self, prediction_id: str, outputs: list[Output]) -> list[StoredFile]:
        """Copy every output of a prediction (downloading those given by URL) to
        :meth:`location_of`; returns their descriptions in order, ``path`` being the
        full location (a URI for object stores, a plain path locally). Outputs with
        neither bytes nor URL are skipped.

        Raises:
            httpx.HTTPError, ValueError: a download failed (see :meth:`fetch`).
            OSError: the store refused the write.
        """
        files = []
        for index, output in enumerate(outputs):
            if output.data is not None:
                data, hint = output.data, output.mime_type
            elif output.url:
                data, hint = await self.fetch(output.url)
            else:
                continue
            mime, width, height = describe(data, hint)
            ext = (mimetypes.guess_extension(mime) or ".bin").lstrip(".")
            ext = {"jpg": "jpeg"}.get(ext, ext)
            location = self.location_of(prediction_id, index, ext)
            await asyncio.to_thread(storage.write_bytes, location, data)
            files.append(StoredFile(path=location, mime_type=mime, size_bytes=len(data),
                                    width=width, height=height, source_url=output.url))
        return files

    async def aclose(self) -> None:
        """Close the download client (the stored files stay)."""
        await self._http.aclose()


def _retryable(exc: BaseException) -> bool:
    """A transport error, 429 or 5xx: worth fetching again."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return isinstance(exc, httpx.TransportError)


def _retry_after(exc: BaseException) -> float | None:
    """The Retry-After of an HTTP error answer, seconds."""
    if isinstance(exc, httpx.HTTPStatusError):
        return retry_after_seconds(exc.response.headers)
    return None

