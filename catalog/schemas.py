"""Pydantic v2 models: the contract shared by the gateway, the client and the jobs.

Every entity has a read model (what the catalog returns) and, where users create
it, a ``*Create`` request model. Read models are built from ORM rows with
``model_validate(row)`` (``from_attributes``). Field constraints follow the seed
schemas: LoRA ``r`` in 1..256, ``learning_rate`` in (0, 1e-2], and so on; a
violation raises ``pydantic.ValidationError`` whose ``loc`` names the field.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Schema(BaseModel):
    """Base for every contract model: reads ORM attributes, rejects unknown fields."""

    model_config = ConfigDict(from_attributes=True, extra="forbid", protected_namespaces=())


# --------------------------------------------------------------------------- statuses


class JobStatus(enum.StrEnum):
    """Training job lifecycle. Terminal: completed, failed, cancelled."""

    pending = "pending"
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class PredictionStatus(enum.StrEnum):
    """Replicate's prediction statuses, used for every provider.

    Source: https://replicate.com/docs/reference/http#predictions.get
    Terminal: succeeded, failed, canceled (Replicate's spelling).
    """

    starting = "starting"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


class ModelKind(enum.StrEnum):
    base = "base"
    adapter = "adapter"


class DatasetFormat(enum.StrEnum):
    alpaca = "alpaca"
    sharegpt = "sharegpt"
    openai = "openai"


class Modality(enum.StrEnum):
    text = "text"
    image = "image"
    video = "video"


class PromptPlacement(enum.StrEnum):
    """Where a prompt helper's text goes relative to the user's prompt."""

    append = "append"
    prefix = "prefix"
    replace = "replace"


class EditKind(enum.StrEnum):
    edit = "edit"
    upscale = "upscale"


class CarbonSource(enum.StrEnum):
    training = "training"
    inference = "inference"
    media = "media"


class Role(enum.StrEnum):
    admin = "admin"
    user = "user"


# --------------------------------------------------------------------------- pages, errors

T = TypeVar("T")


class Page(Schema, Generic[T]):
    """One page of a list. ``next_cursor`` is opaque; pass it back to get the next page."""

    items: list[T]
    total: int = Field(description="Rows matching the filters, over all pages.")
    page_size: int
    next_cursor: str | None = None


class ErrorBody(Schema):
    code: str = Field(description="Stable machine-readable code, e.g. not_found, conflict.")
    message: str = Field(description="Human-readable explanation.")
    field: str | None = Field(default=None, description="The offending field, if one is.")
    details: Any | None = None
    request_id: str | None = None


class ErrorResponse(Schema):
    """The one error shape of every non-OpenAI route: ``{"error": {...}}``."""

    error: ErrorBody


# --------------------------------------------------------------------------- training


class LoraConfig(Schema):
    """PEFT LoRA settings (https://huggingface.co/docs/peft/package_reference/lora)."""

    r: int = Field(16, ge=1, le=256, description="Rank of the update matrices.")
    alpha: int = Field(32, ge=1, le=512, description="Scaling numerator: scale = alpha / r.")
    dropout: float = Field(0.05, ge=0.0, le=0.5, description="Dropout on the LoRA input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="Module names to wrap; 'all-linear' selects every linear layer.",
    )
    use_rslora: bool = Field(False, description="Rank-stabilised scale alpha / sqrt(r).")


class QuantizationConfig(Schema):
    """Weight quantization while training (QLoRA). Needs bitsandbytes and a GPU."""

    bits: Literal[4, 8] | None = Field(None, description="None trains in full precision.")
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


class Hyperparameters(Schema):
    learning_rate: float = Field(2e-4, gt=0, le=1e-2)
    num_epochs: float = Field(1.0, gt=0, le=100)
    max_steps: int | None = Field(None, ge=1, description="Overrides num_epochs when set.")
    per_device_batch_size: int = Field(4, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(1, ge=1, le=1024)
    max_seq_length: int = Field(512, ge=16, le=131072)
    warmup_ratio: float = Field(0.0, ge=0.0, le=0.5)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    optimizer: Literal["adamw", "adamw_8bit"] = "adamw"
    logging_steps: int = Field(10, ge=1)
    eval_steps: int | None = Field(None, ge=1, description="None evaluates only at the end.")
    save_steps: int | None = Field(None, ge=1, description="None saves only at the end.")
    save_total_limit: int = Field(2, ge=1)
    seed: int = 42


class ScalingSpec(Schema):
    num_workers: int = Field(1, ge=1, le=1024, description="Ray Train workers (one per GPU).")
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)
    deepspeed_stage: Literal[2, 3] | None = Field(None, description="ZeRO stage; GPU only.")
    max_failures: int = Field(2, ge=0, description="Worker failures tolerated (FailureConfig).")


class TrainingJobCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    base_model_id: str
    dataset_id: str
    eval_dataset_id: str | None = None
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Held out when no eval set.")
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    quantization: QuantizationConfig = Field(default_factory=QuantizationConfig)
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    resume_from_checkpoint: str | None = None
    country_iso_code: str = Field("USA", min_length=3, max_length=3)
    output_model_name: str | None = Field(None, max_length=200)
    user_id: str | None = None

    @model_validator(mode="after")
    def _check_hardware(self) -> TrainingJobCreate:
        gpu_only = []
        if self.quantization.bits is not None:
            gpu_only.append("quantization.bits")
        if self.hyperparameters.optimizer == "adamw_8bit":
            gpu_only.append("hyperparameters.optimizer=adamw_8bit")
        if self.scaling.deepspeed_stage is not None:
            gpu_only.append("scaling.deepspeed_stage")
        if gpu_only and not self.scaling.use_gpu:
            raise ValueError(f"{', '.join(gpu_only)} need scaling.use_gpu=true (GPU-only)")
        return self


class MetricPoint(Schema):
    step: int = Field(ge=0)
    epoch: float | None = None
    train_loss: float | None = None
    eval_loss: float | None = None
    perplexity: float | None = None
    learning_rate: float | None = None
    tokens_per_second: float | None = None
    memory_mb: float | None = None
    created_at: datetime | None = None


class Checkpoint(Schema):
    step: int = Field(ge=0)
    path: str
    eval_loss: float | None = None
    created_at: datetime | None = None


class JobEvent(Schema):
    level: Literal["debug", "info", "warning", "error"] = "info"
    message: str
    created_at: datetime | None = None


class TrainingJob(Schema):
    id: str
    name: str
    user_id: str | None
    status: JobStatus
    base_model_id: str
    dataset_id: str
    eval_dataset_id: str | None
    eval_fraction: float
    hyperparameters: Hyperparameters
    lora: LoraConfig
    quantization: QuantizationConfig
    scaling: ScalingSpec
    resume_from_checkpoint: str | None
    country_iso_code: str
    output_model_name: str | None
    ray_job_id: str | None
    output_model_id: str | None
    error_message: str | None
    energy_kwh: float | None
    emissions_kg: float | None
    eval_loss_before: float | None
    eval_loss_after: float | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


# --------------------------------------------------------------------------- models, datasets


class ModelCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(1, ge=1)
    kind: ModelKind
    path: str = Field(min_length=1, description="Local folder or object-store URI.")
    description: str | None = None
    base_model_id: str | None = Field(None, description="Lineage: required for adapters.")
    dataset_id: str | None = None
    training_job_id: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    energy_kwh: float | None = Field(None, ge=0)
    emissions_kg: float | None = Field(None, ge=0)
    size_bytes: int | None = Field(None, ge=0)
    published: bool = False
    user_id: str | None = None

    @model_validator(mode="after")
    def _adapter_needs_base(self) -> ModelCreate:
        if self.kind == ModelKind.adapter and not self.base_model_id:
            raise ValueError("base_model_id is required for an adapter")
        return self


class Model(Schema):
    id: str
    name: str
    version: int
    kind: ModelKind
    path: str
    description: str | None
    base_model_id: str | None
    dataset_id: str | None
    training_job_id: str | None
    config: dict[str, Any]
    metrics: dict[str, float]
    energy_kwh: float | None
    emissions_kg: float | None
    size_bytes: int | None
    published: bool
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class DatasetCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(1, ge=1)
    format: DatasetFormat
    path: str = Field(min_length=1)
    num_rows: int = Field(ge=0)
    size_bytes: int = Field(ge=0)
    description: str | None = None
    source: str | None = Field(None, description="Where the rows came from (package, upload).")
    user_id: str | None = None


class Dataset(Schema):
    id: str
    name: str
    version: int
    format: DatasetFormat
    path: str
    num_rows: int
    size_bytes: int
    description: str | None
    source: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- media


class StoredFile(Schema):
    """An output copied into storage before the provider's URL expired."""

    path: str
    mime_type: str
    size_bytes: int = Field(ge=0)
    width: int | None = None
    height: int | None = None
    source_url: str | None = None


class PredictionCreate(Schema):
    provider: str = Field(min_length=1, max_length=50)
    model: str = Field(min_length=1, max_length=200)
    operation: str = Field(min_length=1, max_length=50, description="generate, upscale, ...")
    modality: Modality
    input: dict[str, Any] = Field(default_factory=dict)
    provider_prediction_id: str | None = None
    user_id: str | None = None


class Prediction(Schema):
    id: str
    provider: str
    model: str
    operation: str
    modality: Modality
    status: PredictionStatus
    input: dict[str, Any]
    output: Any | None
    files: list[StoredFile]
    provider_prediction_id: str | None
    error_message: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_s: float | None
    cost_usd: float | None


class ImageCreate(Schema):
    prompt: str = Field(min_length=1, max_length=10000)
    negative_prompt: str | None = None
    styled_prompt: str | None = None
    applied_style: str | None = Field(None, description="The text the prompt style added.")
    prompt_helper_version_id: str | None = None
    provider: str
    model: str
    width: int | None = Field(None, ge=64, le=4096)
    height: int | None = Field(None, ge=64, le=4096)
    aspect_ratio: str | None = Field(None, pattern=r"^\d+:\d+$")
    output_format: Literal["png", "jpeg", "webp"] = "png"
    prediction_id: str | None = None
    user_id: str | None = None


class Image(Schema):
    id: str
    prompt: str
    negative_prompt: str | None
    styled_prompt: str | None
    applied_style: str | None
    prompt_helper_version_id: str | None
    provider: str
    model: str
    width: int | None
    height: int | None
    aspect_ratio: str | None
    output_format: str
    prediction_id: str | None
    files: list[StoredFile]
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class SourceImageCreate(Schema):
    path: str
    mime_type: str
    size_bytes: int = Field(ge=0)
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    user_id: str | None = None


class SourceImage(Schema):
    id: str
    path: str
    mime_type: str
    size_bytes: int
    width: int | None
    height: int | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class ImageEditCreate(Schema):
    """One row for both edits (inpaint, search-and-replace) and upscales."""

    kind: EditKind
    operation: str = Field(min_length=1, description="inpaint, search_and_replace, fast, ...")
    image_id: str | None = None
    source_image_id: str | None = None
    prompt: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    prediction_id: str | None = None
    user_id: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImageEditCreate:
        if (self.image_id is None) == (self.source_image_id is None):
            raise ValueError("exactly one of image_id or source_image_id is required")
        return self


class ImageEdit(Schema):
    id: str
    kind: EditKind
    operation: str
    image_id: str | None
    source_image_id: str | None
    prompt: str | None
    params: dict[str, Any]
    prediction_id: str | None
    files: list[StoredFile]
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class VideoCreate(Schema):
    prompt: str = Field(min_length=1, max_length=10000)
    provider: str
    model: str
    image_id: str | None = Field(None, description="Set for image-to-video.")
    duration_s: float = Field(5.0, gt=0, le=60)
    ratio: str | None = Field(None, pattern=r"^\d+:\d+$")
    prediction_id: str | None = None
    user_id: str | None = None


class Video(Schema):
    id: str
    prompt: str
    provider: str
    model: str
    image_id: str | None
    duration_s: float
    ratio: str | None
    prediction_id: str | None
    files: list[StoredFile]
    user_id: str | None
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- prompt styles


class PromptHelperCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    text: str = Field(min_length=1, max_length=10000, description="First version's text.")
    placement: PromptPlacement = PromptPlacement.append
    user_id: str | None = None


class PromptHelperVersion(Schema):
    id: str
    helper_id: str
    version: int
    text: str
    placement: PromptPlacement
    created_at: datetime


class PromptHelper(Schema):
    id: str
    name: str
    description: str | None
    current_version: int
    forked_from_id: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class ThemeHelperCreate(Schema):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    prompt_helper_ids: list[str] = Field(default_factory=list)
    user_id: str | None = None


class ThemeHelper(Schema):
    id: str
    name: str
    description: str | None
    prompt_helper_ids: list[str]
    forked_from_id: str | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class TagCreate(Schema):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w\- ]+$")
    user_id: str | None = None


class Tag(Schema):
    id: str
    name: str
    user_id: str | None
    created_at: datetime
    updated_at: datetime


class ProjectImageCreate(Schema):
    project: str = Field(min_length=1, max_length=200)
    image_id: str
    position: int = Field(0, ge=0)
    user_id: str | None = None


class ProjectImage(Schema):
    id: str
    project: str
    image_id: str
    position: int
    user_id: str | None
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- usage, carbon


class UsageCreate(Schema):
    """One request's usage. ``id`` may be set by the caller, which makes writes idempotent."""

    id: str | None = Field(None, max_length=64)
    kind: Literal["llm", "media"] = "llm"
    model: str = Field(min_length=1)
    adapter: str | None = None
    provider: str | None = None
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    latency_ms: float = Field(0.0, ge=0)
    ttft_ms: float | None = Field(None, ge=0)
    energy_kwh: float = Field(0.0, ge=0)
    emissions_kg: float = Field(0.0, ge=0)
    cost_usd: float | None = Field(None, ge=0)
    details: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None


class UsageRecord(Schema):
    id: str
    kind: str
    model: str
    adapter: str | None
    provider: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: float
    ttft_ms: float | None
    energy_kwh: float
    emissions_kg: float
    cost_usd: float | None
    details: dict[str, Any]
    user_id: str | None
    created_at: datetime


class CarbonCreate(Schema):
    source: CarbonSource
    energy_kwh: float = Field(ge=0)
    emissions_kg: float = Field(ge=0)
    duration_s: float = Field(0.0, ge=0)
    training_job_id: str | None = None
    model_id: str | None = None
    country_iso_code: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None


class CarbonRecord(Schema):
    id: str
    source: CarbonSource
    energy_kwh: float
    emissions_kg: float
    duration_s: float
    training_job_id: str | None
    model_id: str | None
    country_iso_code: str | None
    details: dict[str, Any]
    user_id: str | None
    created_at: datetime


class CarbonSummaryRow(Schema):
    key: str | None = Field(description="Model id, job id or period start (ISO date).")
    energy_kwh: float
    emissions_kg: float
    records: int


class CarbonSummary(Schema):
    group_by: Literal["model", "job", "day", "month", "source"]
    rows: list[CarbonSummaryRow]
    total_energy_kwh: float
    total_emissions_kg: float


# --------------------------------------------------------------------------- api keys


class ApiKey(Schema):
    id: str
    user_id: str
    name: str
    prefix: str = Field(description="First characters of the key, to recognise it.")
    role: Role
    revoked: bool
    created_at: datetime
    updated_at: datetime
