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
import logging
import mimetypes
import os
import tempfile
from collections.abc import Iterable

import httpx
from PIL import Image, UnidentifiedImageError

from catalog import storage
from catalog.retry import async_retrying
from catalog.schemas import StoredFile
from serve_apps.media.config import RetryPolicy
from serve_apps.media.providers.base import Output, retry_after_seconds
from serve_apps.media.retry import backoff_of

MAX_BYTES = 512 * 1024 * 1024
log = logging.getLogger(__name__)


def first_frame_thumbnail(video: bytes, *, max_side: int = 256) -> tuple[bytes, int, int]:
    """A WebP still of a video's first frame, fitting ``max_side`` pixels, and the
    video's frame width and height. None of the four providers' video APIs returns a
    thumbnail (Runway's task output and Replicate's are the video URLs only), so we make
    one: OpenCV decodes the frame (it needs a file, so the bytes go to a temporary one),
    Pillow scales and encodes it.

    Raises:
        ValueError: OpenCV cannot read a frame from ``video``.
    """
    import cv2  # OpenCV: a dependency of ours and of vLLM's multimodal inputs

    with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
        tmp.write(video)
        tmp.flush()
        capture = cv2.VideoCapture(tmp.name)
        try:
            ok, frame = capture.read()
        finally:
            capture.release()
    if not ok or frame is None:
        raise ValueError("no frame could be decoded from the video")
    height, width = frame.shape[:2]
    still = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    still.thumbnail((max_side, max_side))
    out = io.BytesIO()
    still.save(out, format="WEBP", quality=80)
    return out.getvalue(), width, height


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

    async def video_thumbnail(self, prediction_id: str, video: StoredFile) -> StoredFile | None:
        """Make and store :func:`first_frame_thumbnail` of a stored video at
        ``<root>/<prediction_id>/thumbnail.webp``; its ``width``/``height`` are the
        video's frame size. None (logged) when the video cannot be decoded: a missing
        thumbnail never fails the prediction."""
        try:
            data = await asyncio.to_thread(storage.read_bytes, video.path)
            still, width, height = await asyncio.to_thread(first_frame_thumbnail, data)
            location = storage.join(self.root, prediction_id, "thumbnail.webp")
            await asyncio.to_thread(storage.write_bytes, location, still)
        except (OSError, ValueError) as exc:
            log.warning("no thumbnail for %s: %s", video.path, exc)
            return None
        return StoredFile(path=location, mime_type="image/webp", size_bytes=len(still),
                          width=width, height=height)

    async def aclose(self) -> None:
        """Close the download client (the stored files stay)."""
        await self._http.aclose()


async def delete_files(paths: Iterable[str], *, limit: int = 16) -> int:
    """Remove stored files (outputs, uploads, thumbnails), e.g. when the retention purge
    runs.

    Each location (a local path or an object-store URI, as catalog rows store it) is
    removed with :func:`catalog.storage.delete` in a worker thread, at most ``limit``
    at a time. Only files are removed: a location that is gone already, empty
    (``""``) or a folder is skipped and a repeated one counts once, so a purge can run
    again after a partial failure. Emptied local folders are left in place.

    Returns:
        How many files were removed.

    Raises:
        OSError: the store refused a removal; every other location is still tried
            first, then the first such error is raised.
    """
    gate = asyncio.Semaphore(limit)

    def remove(location: str) -> bool:
        if not storage.is_file(location):
            return False
        storage.delete(location)
        return True

    async def remove_one(location: str) -> bool:
        async with gate:
            return await asyncio.to_thread(remove, location)

    results = await asyncio.gather(*(remove_one(p) for p in dict.fromkeys(paths) if p),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return sum(1 for result in results if result is True)


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

