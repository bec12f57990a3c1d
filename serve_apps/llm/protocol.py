"""Seed 002's inference contract: ``POST /v1/generate`` and ``POST /v1/generate/batch``.

The models are seed 002's (section 3: ``SamplingParameters``, ``GenerateRequest``,
``TokenUsage``, ``GenerateResponse``, ``BatchInferenceRequest``, ``BatchInferenceResult``,
``BatchInferenceResponse``) with their defaults and bounds as written; the OpenAI routes
use vLLM's own protocol. ``GenerateResponse`` also keeps OpenAI's ``id`` and ``model``.
Unknown fields are refused (400 naming the field), so a body in another shape is not
silently run with defaults.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SamplingParameters(BaseModel):
    """Sampling parameters for generation (seed 002), passed to vLLM's ``SamplingParams``
    under the same names. ``top_k=0`` disables top-k (vLLM's convention);
    ``repetition_penalty`` is vLLM's/Hugging Face's multiplicative penalty (1 = none);
    ``presence_penalty``/``frequency_penalty`` are OpenAI's additive ones (0 = none)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int = Field(512, ge=1, le=4096, description="Most tokens to generate.")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float = Field(0.9, ge=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(50, ge=0, le=200, description="Top-k sampling; 0 disables it.")
    repetition_penalty: float = Field(
        1.1, ge=1.0, le=2.0, description="Multiplicative penalty on repeated tokens (1: none).")
    stop: list[str] | None = Field(None, max_length=10,
                                   description="Strings that end generation (at most 10).")
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0,
                                    description="OpenAI's presence penalty.")
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0,
                                     description="OpenAI's frequency penalty.")


class GenerateRequest(BaseModel):
    """Generate text request (seed 002). ``model_id`` takes what OpenAI's ``model`` takes
    here: the base model's name or id, ``base:adapter``, or an adapter's id, name or
    name:version (:func:`serve_apps.llm.models.resolve`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"example": {
            "model_id": "SmolLM2-135M-Instruct", "prompt": "What is machine learning?",
            "parameters": {"max_tokens": 64, "temperature": 0.7},
        }},
    )

    model_id: str = Field(min_length=1, description="Model identifier (base or adapter).")
    prompt: str = Field(min_length=1, max_length=8192, description="Text to continue.")
    parameters: SamplingParameters = Field(default_factory=SamplingParameters)
    stream: bool = Field(False, description="Answer as server-sent events.")


class TokenUsage(BaseModel):
    """Token usage statistics (seed 002), as the engine counted them."""

    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    total_tokens: int = Field(0, ge=0)


FinishReason = Literal["stop", "length", "error"]


class GenerateResponse(BaseModel):
    """Generate text response (seed 002) plus OpenAI's ``id`` and ``model``.

    ``latency_ms``: time in the engine replica, milliseconds. ``carbon_emissions_g``: the
    request's share of the replica's measured emissions, grams CO2eq
    (:mod:`serve_apps.llm.energy`). ``finish_reason``: ``stop`` (end of text or a stop
    string), ``length`` (``max_tokens`` reached) or ``error``.
    """

    id: str
    model: str = Field(description="The served name: base, or base:adapter:version.")
    generated_text: str
    usage: TokenUsage
    carbon_emissions_g: float = Field(ge=0)
    latency_ms: float = Field(ge=0)
    finish_reason: FinishReason = "stop"


class GenerateChunk(BaseModel):
    """One event of a streamed generate answer: the next piece of text. The stream ends
    with one :class:`GenerateResponse` event (the whole text, usage, carbon, latency and
    finish reason), then ``data: [DONE]``."""

    id: str
    model: str
    text: str


class BatchInferenceRequest(BaseModel):
    """Batch inference request (seed 002): up to 100 prompts, one model, one set of
    sampling parameters. ``model_id`` as in :class:`GenerateRequest`."""

    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1, description="Model identifier (base or adapter).")
    prompts: list[str] = Field(min_length=1, max_length=100, description="1 to 100 prompts.")
    parameters: SamplingParameters = Field(default_factory=SamplingParameters)


class BatchInferenceResult(BaseModel):
    """Batch inference single result (seed 002): the text, or ``error`` (then the text
    is empty and the usage zero) when the engine refused or failed this prompt."""

    prompt: str
    generated_text: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    error: str | None = None


class BatchInferenceResponse(BaseModel):
    """Batch inference response (seed 002), results in the order of the prompts.

    ``total_carbon_emissions_g``: the sum of the prompts' shares, grams CO2eq.
    ``total_latency_ms``: wall time of the whole batch in the engine replica (the
    prompts run concurrently, so it is less than the sum of their latencies).
    ``model``: the served name (not in the seed; as :class:`GenerateResponse`).
    """

    model: str
    results: list[BatchInferenceResult]
    total_carbon_emissions_g: float = Field(ge=0)
    total_latency_ms: float = Field(ge=0)
