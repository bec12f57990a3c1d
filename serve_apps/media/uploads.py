"""Uploaded source images: check what the bytes are, make a thumbnail, store both.

The type comes from the bytes (Pillow's own format detection, restricted to the four
formats we take), never from the filename or the client's Content-Type. Files land at
``<root>/uploads/<upload_id>/original.<ext>`` and ``.../thumbnail.webp``; ``root`` is a
local folder or an object-store URI (see :mod:`catalog.storage`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import struct
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from catalog import storage
from catalog.errors import InvalidArgument

ImageFormat = Literal["png", "jpeg", "webp", "gif"]

#: Pillow format names we accept, and our name for each. MPO is the multi-picture
#: JPEG many phone cameras write (CIPA DC-007); Pillow's JPEG plugin opens it as MPO.
_FORMATS: dict[str, ImageFormat] = {
    "PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp", "GIF": "gif",
}
_MIME_TYPES: dict[ImageFormat, str] = {
    "png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
}
#: The Pillow plugins Image.open may try: nothing outside the accepted formats is parsed.
_PILLOW_FORMATS = ["PNG", "JPEG", "WEBP", "GIF"]
#: What Pillow's decoders raise on damaged input (the set Pillow's own fuzz tests expect).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
#: EXIF Orientation tag (EXIF 2.32 §4.6.4, tag 0x0112); values 5-8 swap width and height.
_ORIENTATION = 0x0112

_ACCEPTED = "PNG, JPEG, WebP or GIF"


@dataclass(frozen=True)
class ImageInfo:
    """What an uploaded image is, read from its bytes.

    Attributes:
        format: ``"png"``, ``"jpeg"``, ``"webp"`` or ``"gif"`` (also the file extension).
        mime_type: the IANA media type of ``format`` (``image/png``, ...).
        width, height: pixels as displayed, i.e. after the EXIF orientation is applied
            (a portrait phone photo stored sideways reports its portrait size); for
            animated GIF/WebP, the first frame's canvas.
        size_bytes: length of the file.
    """

    format: ImageFormat
    mime_type: str
    width: int
    height: int
    size_bytes: int


def _human_size(n: int) -> str:
    """``n`` bytes as a user reads it (binary units): ``25.3 MB``, ``20 MB``, ``512 KB``,
    ``10 bytes``."""
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def _invalid(message: str) -> InvalidArgument:
    return InvalidArgument(f"file: {message}", field="file")


def inspect_image(data: bytes, *, max_bytes: int = 20 * 2**20,
                  max_pixels: int = 40_000_000) -> ImageInfo:
    """Check that ``data`` is a whole PNG, JPEG, WebP or GIF image and describe it.

    Pillow identifies the format from the bytes (only the four plugins above are
    tried), ``Image.verify`` checks the container (PNG chunk CRCs, ...) and the pixel
    data is then decoded once (a JPEG at 1/8 scale through ``Image.draft``), so a
    truncated or corrupt file is refused here rather than when a thumbnail is made.
    Animated GIF/WebP are accepted; only the first frame is checked.

    Args:
        data: the uploaded file.
        max_bytes: largest file accepted, bytes (default 20 MB).
        max_pixels: largest ``width * height`` accepted (default 40 million, a
            little above a 7680x4320 8K frame, well under Pillow's own
            decompression-bomb limit ``Image.MAX_IMAGE_PIXELS`` of 89.5 million).

    Returns:
        The image's :class:`ImageInfo`.

    Raises:
        InvalidArgument: (``field="file"``) the file is empty, larger than
            ``max_bytes``, not one of the four formats, damaged or truncated, or has
            more than ``max_pixels`` pixels (a decompression bomb included).
    """
    size = len(data)
    if size == 0:
        raise _invalid("the file is empty")
    if size > max_bytes:
        raise _invalid(f"{_human_size(size)} is over the {_human_size(max_bytes)} limit")
    try:
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as img:
            fmt = _FORMATS.get(img.format or "")
            width, height = img.size
    except UnidentifiedImageError:
        raise _invalid(f"not a {_ACCEPTED} image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid(f"the image has too many pixels (at most {max_pixels:,})") from None
    except _DECODE_ERRORS as exc:
        raise _invalid(f"the image is damaged or truncated ({exc})") from None
    if fmt is None:
        raise _invalid(f"not a {_ACCEPTED} image")
    if width * height > max_pixels:
        raise _invalid(f"{width}x{height} is {width * height:,} pixels, over the "
                       f"{max_pixels:,} limit")
    try:
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as img:
            img.verify()
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as img:
            if fmt == "jpeg":
                img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
            # after load(): a PNG's eXIf chunk may follow the pixel data
            orientation = img.getexif().get(_ORIENTATION)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid(f"the image has too many pixels (at most {max_pixels:,})") from None
    except _DECODE_ERRORS as exc:
        raise _invalid(f"the image is damaged or truncated ({exc})") from None
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(format=fmt, mime_type=_MIME_TYPES[fmt], width=width, height=height,
                     size_bytes=size)


def make_thumbnail(data: bytes, *, max_side: int = 256, quality: int = 80) -> bytes:
    """A WebP thumbnail of the image in ``data`` (its first frame when animated).

    The EXIF orientation is applied (``ImageOps.exif_transpose``), then the image is
    shrunk to fit ``max_side`` x ``max_side`` pixels with its aspect ratio kept
    (``Image.thumbnail``; never enlarged). Transparency is kept (WebP has an alpha
    channel), so WebP serves every source. A pure function of its arguments: safe to
    run in worker threads (``asyncio.to_thread``).

    Args:
        data: an image accepted by :func:`inspect_image`.
        max_side: longest side of the thumbnail, pixels.
        quality: WebP quality, 0-100 (80 is Pillow's default for WebP).

    Returns:
        The WebP file's bytes.

    Raises:
        InvalidArgument: (``field="file"``) Pillow cannot decode ``data``.
    """
    try:
        with Image.open(io.BytesIO(data), formats=_PILLOW_FORMATS) as img:
            if img.format in ("JPEG", "MPO"):
                img.draft("RGB", (max_side, max_side))  # decode at 1/2..1/8 scale
            oriented = ImageOps.exif_transpose(img)
            if oriented.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey PNG
                oriented = oriented.convert("I").point(lambda v: v / 257).convert("L")
            has_alpha = oriented.has_transparency_data
            thumb = oriented.convert("RGBA" if has_alpha else "RGB")
            thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            thumb.save(out, format="WEBP", quality=quality)
            return out.getvalue()
    except UnidentifiedImageError:
        raise _invalid(f"not a {_ACCEPTED} image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid("the image has too many pixels") from None
    except _DECODE_ERRORS as exc:
        raise _invalid(f"the image is damaged or truncated ({exc})") from None


def upload_location(root: str, upload_id: str, name: str) -> str:
    """``<root>/uploads/<upload_id>/<name>`` (``upload_id`` made one path component with
    :func:`catalog.storage.safe_name`); a URI when ``root`` is one."""
    return storage.join(root, "uploads", storage.safe_name(upload_id), name)


async def save_upload(root: str, upload_id: str, data: bytes,
                      info: ImageInfo) -> tuple[str, str]:
    """Store an uploaded image and its thumbnail.

    Writes ``data`` to ``<root>/uploads/<upload_id>/original.<info.format>`` and its
    :func:`make_thumbnail` to ``.../thumbnail.webp`` with
    :func:`catalog.storage.write_bytes`, thumbnailing and writing in a worker thread so
    the event loop is not held. If either write fails, what was written is removed.

    Args:
        root: a local folder or an object-store URI (``s3://bucket/prefix/media``).
        upload_id: the source image's id (e.g. ``src_...``).
        data: the file, already checked by :func:`inspect_image`.
        info: what :func:`inspect_image` returned for ``data``.

    Returns:
        ``(path, thumbnail_path)``: full locations, URIs for object stores.

    Raises:
        InvalidArgument: (``field="file"``) the image cannot be decoded.
        OSError: the store refused a write.
    """
    path = upload_location(root, upload_id, f"original.{info.format}")
    thumbnail_path = upload_location(root, upload_id, "thumbnail.webp")
    thumbnail = await asyncio.to_thread(make_thumbnail, data)
    try:
        await asyncio.to_thread(storage.write_bytes, path, data)
        await asyncio.to_thread(storage.write_bytes, thumbnail_path, thumbnail)
    except BaseException:
        await asyncio.to_thread(_remove_quietly, path, thumbnail_path)
        raise
    return path, thumbnail_path


def _remove_quietly(*locations: str) -> None:
    """Best-effort clean-up after a failed save; the save's own error is what matters."""
    for location in locations:
        with contextlib.suppress(OSError):
            storage.delete(location)
