"""The seed's ``POST /v1/generate`` contract (the OpenAI routes use vLLM's own protocol)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GenerateRequest(BaseModel):
    """One plain-text completion."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="Text to continue.")
    model: str | None = Field(
        None, description="Base model or adapter (same forms as OpenAI `model`); None: base."
    )
    max_tokens: int = Field(128, ge=1, description="Most tokens to generate.")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    stop: list[str] | None = Field(None, description="Strings that end generation.")
    seed: int | None = Field(None, description="Sampling seed, for reproducible output.")


class GenerateUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    """The completion with its usage, latency (ms), finish reason and CO2 (grams)."""

    id: str
    model: str = Field(description="The served name: base, or base:adapter:version.")
    text: str
    finish_reason: str | None = Field(description="stop, length or abort.")
    usage: GenerateUsage
    latency_ms: float = Field(description="Time in the engine replica, in milliseconds.")
    carbon_emissions_g: float = Field(
        description="This request's share of measured emissions, grams CO2eq "
        "(see serve_apps.llm.energy)."
    )
