"""Image size and aspect-ratio vocabularies, and conversions between them.

Sources: Stability v2beta ``aspect_ratio`` enum
(https://platform.stability.ai/docs/api-reference#tag/Generate), OpenAI Images ``size``
enum for dall-e-2, dall-e-3 and gpt-image-1
(https://platform.openai.com/docs/api-reference/images/create), Runway ``ratio`` for
gen4_turbo (https://docs.dev.runwayml.com/api/).
"""

from __future__ import annotations

from math import gcd

ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")
OPENAI_SIZES = ("256x256", "512x512", "1024x1024", "1792x1024", "1024x1792",
                "1536x1024", "1024x1536")
RUNWAY_RATIOS = {"16:9": "1280:720", "9:16": "720:1280", "1:1": "960:960", "4:3": "1104:832",
                 "3:4": "832:1104", "21:9": "1584:672"}
OUTPUT_FORMATS = ("png", "jpeg", "webp")


def ratio_value(ratio: str) -> float:
    """``"16:9" -> 1.777…``."""
    w, h = ratio.split(":")
    return int(w) / int(h)


def nearest_aspect_ratio(width: int, height: int, choices=ASPECT_RATIOS) -> str:
    """The listed ratio closest to ``width/height`` (exact when it is listed)."""
    d = gcd(width, height)
    exact = f"{width // d}:{height // d}"
    if exact in choices:
        return exact
    target = width / height
    return min(choices, key=lambda r: abs(ratio_value(r) - target))


def nearest_openai_size(
    width: int | None, height: int | None, aspect_ratio: str | None, model: str
) -> str:
    """An OpenAI ``size`` for the request: exact when allowed, else the closest shape.

    dall-e-2 takes only squares (256, 512, 1024); dall-e-3 1024x1024, 1792x1024,
    1024x1792; gpt-image-1 1024x1024, 1536x1024, 1024x1536.
    """
    allowed = {
        "dall-e-2": ("256x256", "512x512", "1024x1024"),
        "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    }.get(model, ("1024x1024", "1536x1024", "1024x1536"))
    if width and height and f"{width}x{height}" in allowed:
        return f"{width}x{height}"
    if width and height:
        target = width / height
    elif aspect_ratio:
        target = ratio_value(aspect_ratio)
    else:
        return "1024x1024" if "1024x1024" in allowed else allowed[-1]

    def shape(size: str) -> float:
        w, h = size.split("x")
        return int(w) / int(h)

    return min(allowed, key=lambda s: (abs(shape(s) - target), -int(s.split("x")[0])))
