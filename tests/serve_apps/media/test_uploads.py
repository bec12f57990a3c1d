"""Uploaded source images: type from the bytes, refusals as InvalidArgument on "file",
WebP thumbnails, and storing then deleting real files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from catalog.errors import InvalidArgument
from serve_apps.media.storage import delete_files
from serve_apps.media.uploads import ImageInfo, inspect_image, make_thumbnail, save_upload


def encode(fmt: str, size: tuple[int, int] = (64, 32), mode: str = "RGB", **params) -> bytes:
    """A real image file made by Pillow."""
    out = io.BytesIO()
    color = (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, size, color[: len(mode)]).save(out, format=fmt, **params)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header (IHDR, PNG spec §11.2.2) claims ``width`` x ``height``;
    no pixel data is ever decoded from it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize(("fmt", "expected", "mime"), [
    ("PNG", "png", "image/png"), ("JPEG", "jpeg", "image/jpeg"),
    ("WEBP", "webp", "image/webp"), ("GIF", "gif", "image/gif"),
])
def test_accepted_formats_report_format_and_size(fmt, expected, mime):
    data = encode(fmt, (64, 32))
    assert inspect_image(data) == ImageInfo(format=expected, mime_type=mime, width=64,
                                            height=32, size_bytes=len(data))


def test_type_comes_from_the_bytes_not_the_name(tmp_path: Path):
    renamed = tmp_path / "photo.jpg"  # a PNG under a JPEG name
    renamed.write_bytes(encode("PNG"))
    assert inspect_image(renamed.read_bytes()).format == "png"


def test_exif_orientation_swaps_reported_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = encode("JPEG", (64, 32), exif=exif.tobytes())
    info = inspect_image(data)
    assert (info.width, info.height) == (32, 64)
    with Image.open(io.BytesIO(make_thumbnail(data, max_side=16))) as thumb:
        assert thumb.size == (8, 16)


def refusal(data: bytes, **limits) -> str:
    with pytest.raises(InvalidArgument) as caught:
        inspect_image(data, **limits)
    assert caught.value.field == "file"
    assert caught.value.message.startswith("file: ")
    return caught.value.message


def test_refuses_text_empty_and_other_formats():
    assert "not a PNG, JPEG, WebP or GIF image" in refusal(b"hello, I am not an image\n")
    assert "empty" in refusal(b"")
    assert "not a PNG, JPEG, WebP or GIF image" in refusal(encode("BMP"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_refuses_truncated_files(fmt):
    out = io.BytesIO()
    Image.effect_noise((256, 256), 64).convert("RGB").save(out, format=fmt)  # noisy: large
    data = out.getvalue()
    assert "damaged or truncated" in refusal(data[: len(data) // 2])


def test_refuses_files_over_the_byte_limit():
    small = encode("PNG")
    assert refusal(small, max_bytes=10) == f"file: {len(small)} bytes is over the 10 bytes limit"
    too_big = b"\x89PNG" + bytes(int(25.3 * 2**20))
    assert refusal(too_big) == "file: 25.3 MB is over the 20 MB limit"


def test_refuses_decompression_bombs_without_decoding_them():
    # 100000 x 100000: over twice Pillow's MAX_IMAGE_PIXELS, Pillow refuses at open.
    assert "too many pixels" in refusal(png_declaring(100_000, 100_000))
    # 10000 x 5000 = 50 million: under Pillow's limit, over ours (40 million).
    assert "over the 40,000,000 limit" in refusal(png_declaring(10_000, 5_000))
    assert "over the 100 limit" in refusal(encode("PNG", (20, 20)), max_pixels=100)


@pytest.mark.parametrize(("fmt", "mode", "size", "expected"), [
    ("PNG", "RGBA", (1000, 500), (256, 128)),
    ("JPEG", "RGB", (300, 900), (85, 256)),
    ("GIF", "P", (40, 20), (40, 20)),  # never enlarged
])
def test_thumbnail_is_webp_fitting_max_side_with_aspect_kept(fmt, mode, size, expected):
    source = encode(fmt, size, mode="RGB" if mode == "P" else mode)
    with Image.open(io.BytesIO(make_thumbnail(source))) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == expected
        assert thumb.mode == ("RGBA" if mode == "RGBA" else "RGB")


def test_thumbnail_of_16_bit_grey_png_keeps_its_tone():
    out = io.BytesIO()
    Image.new("I;16", (300, 100), 40_000).save(out, format="PNG")  # 61% grey
    with Image.open(io.BytesIO(make_thumbnail(out.getvalue()))) as thumb:
        grey = thumb.convert("L").getpixel((0, 0))
        assert isinstance(grey, int) and abs(grey - 40_000 / 257) <= 2


async def test_save_upload_then_delete_files_round_trip(tmp_path: Path):
    data = encode("PNG", (600, 300))
    info = inspect_image(data)
    path, thumbnail_path = await save_upload(str(tmp_path), "src_abc", data, info)
    assert path == str(tmp_path / "uploads" / "src_abc" / "original.png")
    assert thumbnail_path == str(tmp_path / "uploads" / "src_abc" / "thumbnail.webp")
    assert Path(path).read_bytes() == data
    with Image.open(thumbnail_path) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (256, 128))

    assert await delete_files([path, thumbnail_path, path, ""]) == 2
    assert not Path(path).exists() and not Path(thumbnail_path).exists()
    assert await delete_files([path, str(tmp_path / "never-written.png")]) == 0
    assert await delete_files([str(tmp_path)]) == 0  # a folder is never removed
    assert tmp_path.is_dir()
