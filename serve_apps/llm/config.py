"""Typed configuration of the LLM application: engine arguments and Serve deployment options.

Like Ray Serve LLM's ``LLMConfig``, every field has a description and the
deployment options are checked by constructing Serve's own ``DeploymentConfig``
so a bad ``autoscaling_config`` fails when the config is built, not at deploy time.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: KV cache of a CPU replica when no memory option is set: 2 GiB holds about 45k tokens
#: of SmolLM2-135M in float32 (30 layers x 2 x 3 KV heads x 64 dims x 4 bytes per token).
CPU_KV_CACHE_BYTES = 2 << 30


class EngineArgs(BaseModel):
    """The vLLM engine arguments we expose; ``extra`` passes any other vLLM CLI option.

    Names and meanings are vLLM 0.32's ``AsyncEngineArgs`` (``vllm serve --help``).
    """

    model_config = ConfigDict(extra="forbid")

    max_model_len: int | None = Field(
        2048, ge=16, description="Longest prompt + completion in tokens (None: the model's own)."
    )
    dtype: str = Field(
        "auto", description="Weights/activations dtype: auto, float32, bfloat16, float16."
    )
    max_num_seqs: int = Field(32, ge=1, description="Most sequences decoded in one batch.")
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1,
        description="Share of accelerator memory vLLM may take (None: vLLM's 0.9). The CPU "
        "backend reads it as a share of *host* memory and refuses to start when that much "
        "is not free, so on CPU it applies only when set here.",
    )
    kv_cache_memory_bytes: int | None = Field(
        None, ge=1,
        description="KV cache size in bytes; overrides gpu_memory_utilization. None: vLLM "
        f"sizes it on GPUs; {CPU_KV_CACHE_BYTES >> 30} GiB on CPU unless "
        "gpu_memory_utilization is set.",
    )
    enable_lora: bool = Field(True, description="Serve LoRA adapters of the base model.")
    max_loras: int = Field(4, ge=1, description="Adapters active in one batch.")
    max_lora_rank: int = Field(16, ge=1, description="Largest LoRA rank r accepted.")
    max_cpu_loras: int | None = Field(
        None, ge=1, description="Adapters cached in host memory (None: max_loras)."
    )
    seed: int | None = Field(0, description="Engine random seed (per-request `seed` overrides).")
    extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Other vLLM CLI options by their dest name, e.g. {'enforce_eager': True}.",
    )

    def cli_args(self, model_path: str, served_name: str, *, on_cpu: bool = False) -> list[str]:
        """vLLM command-line arguments (``--model PATH ...``) for this configuration.

        ``on_cpu`` (vLLM's ``current_platform.is_cpu()`` on the replica) fixes the KV cache
        at ``CPU_KV_CACHE_BYTES`` when neither memory option is set: vLLM 0.32's CPU worker
        otherwise reserves 0.9 of host memory and raises ``ValueError`` when other
        processes (Ray workers, a training job) hold more than a tenth
        (``vllm/v1/worker/cpu_worker.py``).
        """
        values: dict[str, Any] = self.model_dump(exclude={"extra"}) | self.extra
        unset = values["gpu_memory_utilization"] is None and values["kv_cache_memory_bytes"] is None
        if on_cpu and unset:
            values["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        argv = ["--model", model_path, "--served-model-name", served_name]
        for key, value in values.items():
            if value is None or value is False:
                continue
            flag = "--" + key.replace("_", "-")
            if key == "enable_lora" or value is True:
                argv.append(flag)
            else:
                argv += [flag, str(value)]
        return argv


class DeploymentOptions(BaseModel):
    """Ray Serve options of the engine deployment (``@serve.deployment`` keyword arguments),
    and :data:`REPLICA_FIELDS`, which the replica itself reads."""

    model_config = ConfigDict(extra="forbid")

    #: The fields a replica reads itself; every other field is an option Serve applies
    #: (``serve_kwargs``), which a Serve config carries in its ``deployments`` override.
    REPLICA_FIELDS: ClassVar[frozenset[str]] = frozenset({"max_adapters_per_replica"})

    num_replicas: int | None = Field(
        1, ge=1, description="Fixed replica count; leave None when autoscaling_config is set."
    )
    autoscaling_config: dict[str, Any] | None = Field(
        None, description="Serve AutoscalingConfig (min_replicas, max_replicas, ...)."
    )
    ray_actor_options: dict[str, Any] = Field(
        default_factory=lambda: {"num_cpus": 1},
        description="Resources of each engine replica, e.g. {'num_gpus': 1}.",
    )
    max_ongoing_requests: int = Field(
        64, ge=1, description="Requests one engine replica accepts at once."
    )
    max_adapters_per_replica: int = Field(
        8, ge=1, description="serve.multiplexed cache size: adapters one replica holds."
    )
    max_surge_percent: int = Field(
        100, ge=0, le=100,
        description="Serve's rolling update surge: extra replicas (a share of the target "
        "count, rounded up) started with the new config while the old ones keep serving; "
        "an old replica stops only once its replacement is ready. 100 (one extra replica "
        "per replica, at most twice the target at the peak of an upgrade) keeps every "
        "request answered; 0 stops the old replicas first, so requests wait for a new "
        "engine to load.",
    )
    graceful_shutdown_timeout_s: float = Field(
        120.0, ge=0,
        description="Seconds a stopping replica (an upgrade, a scale-down) keeps answering "
        "the requests and streams it holds before Serve kills it; it takes no new ones.",
    )

    @model_validator(mode="after")
    def _check_with_serve(self) -> DeploymentOptions:
        from ray.serve._private.config import DeploymentConfig

        if self.autoscaling_config is not None and self.num_replicas not in (None, 1):
            raise ValueError("set num_replicas or autoscaling_config, not both")
        if self.autoscaling_config is not None:
            self.num_replicas = None
        DeploymentConfig(**self.serve_kwargs(exclude_actor=True))
        return self

    def serve_kwargs(self, *, exclude_actor: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``Deployment.options(...)``."""
        out: dict[str, Any] = {"max_ongoing_requests": self.max_ongoing_requests,
                               "max_surge_percent": self.max_surge_percent,
                               "graceful_shutdown_timeout_s": self.graceful_shutdown_timeout_s}
        if self.autoscaling_config is not None:
            out["autoscaling_config"] = self.autoscaling_config
        else:
            out["num_replicas"] = self.num_replicas
        if not exclude_actor:
            out["ray_actor_options"] = self.ray_actor_options
        return out


class LLMAppConfig(BaseModel):
    """Everything ``build_llm_app`` needs: which catalog model, how to run it, where to mount it."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="Catalog base model: id, name (latest version) or name:version."
    )
    engine_args: EngineArgs = Field(
        default_factory=EngineArgs, description="vLLM engine arguments."
    )
    deployment: DeploymentOptions = Field(
        default_factory=DeploymentOptions, description="Engine deployment options."
    )
    route_prefix: str = Field(
        "/openai", description="Serve route prefix; the OpenAI base URL is <prefix>/v1."
    )
    carbon_country_iso_code: str = Field(
        "FRA", min_length=3, max_length=3,
        description="ISO 3166 alpha-3 country whose grid intensity codecarbon applies.",
    )
    energy_sample_s: float = Field(
        2.0, gt=0, description="How often the engine replica reads codecarbon's energy, in s."
    )
    accounting: bool = Field(
        True,
        description="Write a usage record per request (tokens, energy, CO2; who asked) and "
        "answer carbon_emissions_g. Off only to measure what accounting costs "
        "(bench/accounting_overhead.py): requests are then neither recorded nor limited by "
        "tokens.",
    )
    usage_spool_after_s: float = Field(
        10.0, gt=0,
        description="Seconds a usage record may wait unacknowledged in the replica's memory "
        "(the catalog restarting or down) before it is written to a spool file under the "
        "storage root (catalog.usage_buffer), replayed once the catalog answers.",
    )
    usage_journal: bool = Field(
        True,
        description="Append each usage record to the node's local journal "
        "(catalog.usage_journal) before the response completes, so a killed replica loses "
        "no record of what it answered (the next buffer on the node replays it). Off only to "
        "measure what the journal costs (bench/accounting_overhead.py --peer no-journal).",
    )
