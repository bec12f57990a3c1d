"""Estimated cost of one provider call, for the usage log.

List prices as published on the providers' pricing pages in 2025 (Stability: credits
at $0.01, platform.stability.ai/pricing; OpenAI: openai.com/api/pricing, 1024px
standard; Replicate: the model pages' per-output price; Runway: credits at $0.01,
docs.dev.runwayml.com/guides/pricing). They are estimates, not invoices: prices change,
so ``MediaConfig.prices_usd`` overrides any entry. Video prices are per second.
"""

from __future__ import annotations

PER_OUTPUT_USD: dict[str, float] = {
    "stability/core": 0.03,
    "stability/ultra": 0.08,
    "stability/sd3": 0.065,
    "stability/sd3.5-large": 0.065,
    "stability/sd3.5-large-turbo": 0.04,
    "stability/sd3.5-medium": 0.035,
    "stability/fast": 0.02,
    "stability/conservative": 0.40,
    "stability/creative": 0.60,
    "stability/inpaint": 0.03,
    "stability/search_and_replace": 0.04,
    "openai/dall-e-2": 0.02,
    "openai/dall-e-3": 0.04,
    "openai/gpt-image-1": 0.042,
    "replicate/black-forest-labs/flux-schnell": 0.003,
    "replicate/black-forest-labs/flux-fill-pro": 0.05,
    "replicate/nightmareai/real-esrgan": 0.002,
}

PER_SECOND_USD: dict[str, float] = {
    "runway/gen4_turbo": 0.05,
    "runway/veo3.1": 0.40,
    "replicate/minimax/video-01": 0.10,
}


def estimate_cost(provider: str, model: str, *, duration_s: float | None = None,
                  overrides: dict[str, float] | None = None) -> float | None:
    """USD for one output of ``provider/model`` (videos: times ``duration_s``); None when
    no price is known."""
    key = f"{provider}/{model}"
    if overrides and key in overrides:
        price = overrides[key]
        return price * duration_s if duration_s and key in PER_SECOND_USD else price
    if key in PER_SECOND_USD:
        return round(PER_SECOND_USD[key] * (duration_s or 5.0), 6)
    return PER_OUTPUT_USD.get(key)
