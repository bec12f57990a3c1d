"""Training jobs: LoRA, quantization, hyperparameters, scaling, the job, its metric points,
checkpoints and events, and the one rule of which options need GPUs.

Field names follow seed 002 (Model Garden's training schemas); descriptions give the
equivalent terms of transformers' ``TrainingArguments``, PEFT's ``LoraConfig`` and Ray
Train's ``ScalingConfig``/``FailureConfig``. Constraints follow the seeds: LoRA ``r``
in 1..256, ``learning_rate`` in (0, 1e-2], and so on; a violation raises
``pydantic.ValidationError`` whose ``loc`` names the field.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from catalog.schemas.common import ID_LENGTH, NAME_LENGTH, CreatedAt, Row, Schema, UpdatedAt, UserId
from catalog.schemas.evaluations import EvaluationSettings, EvaluationSummary


class JobStatus(enum.StrEnum):
    """Training job lifecycle. Terminal: completed, failed, cancelled."""

    pending = "pending"
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


class LoraConfig(Schema):
    """PEFT LoRA settings (https://huggingface.co/docs/peft/package_reference/lora), named as
    PEFT's ``LoraConfig`` names them; bounds from seed 002's LoRAConfig."""

    r: int = Field(
        16, ge=1, le=256,
        description="PEFT r: rank of the update matrices B (out x r) and A (r x in).",
    )
    lora_alpha: int = Field(
        32, ge=1, le=512, validation_alias=AliasChoices("lora_alpha", "alpha"),
        description="PEFT lora_alpha: scaling numerator, scale = lora_alpha / r.",
    )
    lora_dropout: float = Field(
        0.05, ge=0.0, le=0.5, validation_alias=AliasChoices("lora_dropout", "dropout"),
        description="PEFT lora_dropout: dropout probability on the adapter's input.",
    )
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        min_length=1,
        description="PEFT target_modules: module names to wrap; 'all-linear' selects every "
        "linear layer but the output head.",
    )
    use_rslora: bool = Field(
        False, description="PEFT use_rslora: rank-stabilised scale lora_alpha / sqrt(r)."
    )


class QuantizationConfig(Schema):
    """Weight quantization while training (QLoRA), as transformers' ``BitsAndBytesConfig``
    names it (seed 002's QuantizationConfig). Needs bitsandbytes and a GPU."""

    bits: Literal[4, 8] | None = Field(
        None,
        description="Load the base weights in 4 or 8 bits with bitsandbytes "
        "(BitsAndBytesConfig load_in_4bit / load_in_8bit); null trains in full precision. "
        "GPU only.",
    )
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field(
        "nf4", validation_alias=AliasChoices("bnb_4bit_quant_type", "quant_type"),
        description="4-bit data type: NormalFloat4 or FP4.",
    )
    bnb_4bit_use_double_quant: bool = Field(
        True, validation_alias=AliasChoices("bnb_4bit_use_double_quant", "double_quant"),
        description="Quantize the quantization constants too (about 0.4 bits per weight "
        "saved, QLoRA paper section 3).",
    )
    bnb_4bit_compute_dtype: Literal["float16", "bfloat16", "float32"] = Field(
        "bfloat16", description="dtype of the matrix multiplications on dequantized weights."
    )


#: Old spellings of ``optim`` (before the TrainingArguments names), accepted on input.
_OPTIM_ALIASES = {"adamw": "adamw_torch", "adamw_8bit": "adamw_bnb_8bit"}


class Hyperparameters(Schema):
    """Optimization settings, named as transformers' ``TrainingArguments`` names them
    (https://huggingface.co/docs/transformers/main_classes/trainer#transformers.TrainingArguments);
    bounds from seed 002's TrainingHyperparameters. Earlier spellings (``num_epochs``,
    ``per_device_batch_size``, ``lr_scheduler``, ``optimizer``) are accepted on input."""

    learning_rate: float = Field(
        2e-4, gt=0, le=1e-2, description="Peak learning rate (TrainingArguments.learning_rate)."
    )
    num_train_epochs: float = Field(
        1.0, gt=0, le=100, validation_alias=AliasChoices("num_train_epochs", "num_epochs"),
        description="Passes over the training rows (TrainingArguments.num_train_epochs); a "
        "fraction stops mid-epoch.",
    )
    max_steps: int | None = Field(
        None, ge=1,
        description="Optimizer steps to run; overrides num_train_epochs when set "
        "(TrainingArguments.max_steps).",
    )
    per_device_train_batch_size: int = Field(
        4, ge=1, le=128,
        validation_alias=AliasChoices("per_device_train_batch_size", "per_device_batch_size"),
        description="Examples per worker per micro-batch "
        "(TrainingArguments.per_device_train_batch_size; evaluation uses the same).",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=256,
        description="Micro-batches per optimizer step "
        "(TrainingArguments.gradient_accumulation_steps); examples per step = "
        "per_device_train_batch_size x gradient_accumulation_steps x scaling.num_workers.",
    )
    max_seq_length: int = Field(
        512, ge=16, le=32768,
        description="Tokens per example after the chat template; longer ones are truncated "
        "(TRL SFTConfig/DPOConfig.max_length).",
    )
    packing: bool = Field(
        False,
        description="sft only: pack examples into rows of max_seq_length tokens (TRL "
        "SFTConfig.packing, best-fit decreasing, no example split) with per-example "
        "position ids, so attention never crosses examples and no token is padding; "
        "per_device_train_batch_size then counts packed rows.",
    )
    warmup_steps: int = Field(
        0, ge=0,
        description="Optimizer steps that warm the learning rate up linearly from 0 "
        "(TrainingArguments.warmup_steps); overrides warmup_ratio when above 0.",
    )
    warmup_ratio: float = Field(
        0.0, ge=0.0, le=0.5,
        description="Fraction of the optimizer steps that warm the learning rate up "
        "(TrainingArguments.warmup_steps given as a fraction below 1).",
    )
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, description="AdamW weight decay (TrainingArguments.weight_decay)."
    )
    max_grad_norm: float = Field(
        1.0, gt=0.0,
        description="Clip gradients to this global L2 norm (TrainingArguments.max_grad_norm).",
    )
    lr_scheduler_type: Literal["linear", "cosine", "constant"] = Field(
        "linear", validation_alias=AliasChoices("lr_scheduler_type", "lr_scheduler"),
        description="Learning-rate schedule after warmup (TrainingArguments.lr_scheduler_type; "
        "constant is transformers' constant_with_warmup).",
    )
    optim: Literal["adamw_torch", "adamw_bnb_8bit", "sgd"] = Field(
        "adamw_torch", validation_alias=AliasChoices("optim", "optimizer"),
        description="Optimizer as TrainingArguments.optim names it: torch AdamW, "
        "bitsandbytes' 8-bit AdamW (GPU only) or torch SGD.",
    )
    bf16: bool = Field(
        False,
        description="Mixed precision in bfloat16 (TrainingArguments.bf16). GPU only.",
    )
    fp16: bool = Field(
        False, description="Mixed precision in float16 (TrainingArguments.fp16). GPU only."
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute activations in the backward pass to save memory "
        "(TrainingArguments.gradient_checkpointing).",
    )
    beta: float = Field(
        0.1, gt=0.0, le=10.0,
        description="DPO only: strength of the KL penalty towards the base model "
        "(TRL DPOConfig.beta; Rafailov et al. 2023, eq. 7). Ignored by sft.",
    )
    logging_steps: int = Field(
        10, ge=1,
        description="Optimizer steps between metric points (TrainingArguments.logging_steps).",
    )
    eval_steps: int | None = Field(
        None, ge=1,
        description="Optimizer steps between evaluations; null evaluates only before the "
        "first and after the last step (TrainingArguments.eval_steps).",
    )
    save_steps: int | None = Field(
        None, ge=1,
        description="Optimizer steps between checkpoints; null saves only at the end "
        "(TrainingArguments.save_steps).",
    )
    save_total_limit: int = Field(
        2, ge=1,
        description="Checkpoints kept: the best by eval loss (the newest without "
        "evaluation) (TrainingArguments.save_total_limit).",
    )
    seed: int = Field(
        42,
        description="Seed of weight init, shuffling and the eval split (TrainingArguments.seed).",
    )

    @field_validator("optim", mode="before")
    @classmethod
    def _old_optim_names(cls, value: Any) -> Any:
        return _OPTIM_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_precision(self) -> Hyperparameters:
        if self.bf16 and self.fp16:
            raise ValueError("bf16 and fp16 are exclusive: choose one")
        return self


class ScalingSpec(Schema):
    """How many Ray Train workers, on what (Ray's ``ScalingConfig`` and ``FailureConfig``)."""

    num_workers: int = Field(
        1, ge=1, le=1024, description="Ray Train workers, ScalingConfig.num_workers (one per GPU)."
    )
    use_gpu: bool = Field(
        False,
        description="One GPU per worker (ScalingConfig.use_gpu); required by quantization.bits, "
        "hyperparameters.optim=adamw_bnb_8bit, hyperparameters.bf16/fp16 and "
        "scaling.deepspeed_stage.",
    )
    cpus_per_worker: float = Field(
        1.0, gt=0, description="CPUs reserved per worker (ScalingConfig.resources_per_worker)."
    )
    resources_per_worker: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources each worker also needs, e.g. {\"trainer\": 1} to "
        "land on the nodes started with that resource (ScalingConfig.resources_per_worker; "
        "CPUs and GPUs are set by cpus_per_worker and use_gpu).",
    )
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK",
        description="How workers are placed over nodes (ScalingConfig.placement_strategy, a "
        "Ray placement group strategy): PACK fills few nodes, SPREAD spreads where it can, "
        "STRICT_SPREAD puts every worker on a different node.",
    )
    deepspeed_stage: Literal[2, 3] | None = Field(
        None,
        description="DeepSpeed ZeRO stage (2: optimizer state and gradients sharded, 3: "
        "parameters too), given to TrainingArguments.deepspeed; null trains with DDP. "
        "GPU only.",
    )
    max_failures: int = Field(
        2, ge=0,
        description="Worker failures tolerated (FailureConfig.max_failures); the run resumes "
        "from its last checkpoint.",
    )

    @field_validator("resources_per_worker")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        for name, amount in value.items():
            if name in ("CPU", "GPU"):
                raise ValueError(f"{name} is set by cpus_per_worker / use_gpu, not here")
            if not name or amount <= 0:
                raise ValueError(f"resource {name!r} needs a positive amount")
        return value


# --------------------------------------------------------------------------- GPU-only options


@dataclass(frozen=True)
class GpuOnlyOption:
    """A training option that runs only on GPUs.

    Attributes:
        field: its dotted path in :class:`TrainingJobCreate`, e.g. ``quantization.bits``.
        label: how messages name the setting, e.g. ``hyperparameters.optimizer=adamw_8bit``.
        package: the Python package it needs on the workers (``bitsandbytes``, ``deepspeed``).
    """

    field: str
    label: str
    package: str


#: bitsandbytes' quantized layers and 8-bit optimizers are CUDA kernels
#: (https://huggingface.co/docs/bitsandbytes); DeepSpeed ZeRO shards state across GPUs
#: (https://www.deepspeed.ai/tutorials/zero/); TrainingArguments refuses bf16/fp16 mixed
#: precision without an accelerator.
_QUANTIZATION = GpuOnlyOption("quantization.bits", "quantization.bits", "bitsandbytes")
_ADAMW_8BIT = GpuOnlyOption(
    "hyperparameters.optim", "hyperparameters.optim=adamw_bnb_8bit", "bitsandbytes"
)
_BF16 = GpuOnlyOption("hyperparameters.bf16", "hyperparameters.bf16", "torch")
_FP16 = GpuOnlyOption("hyperparameters.fp16", "hyperparameters.fp16", "torch")
_DEEPSPEED = GpuOnlyOption("scaling.deepspeed_stage", "scaling.deepspeed_stage", "deepspeed")


# --------------------------------------------------------------------------- the job


class TrainingMethod(enum.StrEnum):
    """How the adapter learns: supervised fine-tuning on chats (TRL ``SFTTrainer``) or
    Direct Preference Optimization on chosen/rejected pairs (TRL ``DPOTrainer``)."""

    sft = "sft"
    dpo = "dpo"


#: OpenAI fine-tuning's method types (https://platform.openai.com/docs/api-reference/
#: fine-tuning/create, ``method.type``) and ours.
_OPENAI_METHODS = {"supervised": TrainingMethod.sft, "dpo": TrainingMethod.dpo}
#: OpenAI's ``method.<type>.hyperparameters`` names and ours.
_OPENAI_HYPERPARAMETERS = {"n_epochs": "num_train_epochs",
                           "batch_size": "per_device_train_batch_size", "beta": "beta"}


def _openai_method(data: dict[str, Any]) -> dict[str, Any]:
    """Rewrite OpenAI's ``method`` object (``{"type": "dpo", "dpo": {"hyperparameters":
    {"beta": 0.1}}}``) into ``method`` plus ``hyperparameters``; other inputs unchanged.

    Raises:
        ValueError: an unknown type or a hyperparameter with no counterpart here
            (``learning_rate_multiplier``: set ``hyperparameters.learning_rate``).
    """
    method = data.get("method")
    if not isinstance(method, dict):
        return data
    kind = method.get("type")
    if kind not in _OPENAI_METHODS:
        raise ValueError(f"method.type must be one of {sorted(_OPENAI_METHODS)}, got {kind!r}")
    given = dict((method.get(kind) or {}).get("hyperparameters") or {})
    unknown = sorted(set(given) - set(_OPENAI_HYPERPARAMETERS))
    if unknown:
        raise ValueError(
            f"method.{kind}.hyperparameters: {unknown} not supported here; known: "
            f"{sorted(_OPENAI_HYPERPARAMETERS)} (set hyperparameters.learning_rate directly)")
    hp = dict(data.get("hyperparameters") or {})
    hp.update({_OPENAI_HYPERPARAMETERS[k]: v for k, v in given.items() if v != "auto"})
    return {**data, "method": _OPENAI_METHODS[kind], "hyperparameters": hp}


#: A checkpoint by job and step, ``<job id>:<step>`` (``job_1a2b...:40``).
CHECKPOINT_REFERENCE = re.compile(r"^(job_[0-9a-f]+):([0-9]+)$")


def checkpoint_reference(value: str | None) -> tuple[str, int] | None:
    """``(job id, step)`` when ``value`` names a checkpoint as ``<job id>:<step>``
    (:data:`CHECKPOINT_REFERENCE`); None for a folder, a URI or nothing."""
    found = CHECKPOINT_REFERENCE.match(value or "")
    return (found.group(1), int(found.group(2))) if found else None


class TrainingJobSpec(Schema):
    """What a job trains, shared by the request and the row (constraints live here)."""

    name: str = Field(min_length=1, max_length=NAME_LENGTH, description="Job name.")
    method: TrainingMethod = Field(
        TrainingMethod.sft,
        description="sft (TRL SFTTrainer, loss on the assistant's reply only) or dpo (TRL "
        "DPOTrainer on prompt/chosen/rejected rows). OpenAI's method object "
        '({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}) is accepted too.',
    )
    base_model_id: str = Field(
        max_length=ID_LENGTH, description="Catalog id of the base Model to fine-tune.")
    dataset_id: str = Field(
        max_length=ID_LENGTH, description="Catalog id of the training Dataset.")
    eval_dataset_id: str | None = Field(
        None, max_length=ID_LENGTH,
        description="Catalog id of the evaluation Dataset; null holds out eval_fraction."
    )
    eval_fraction: float = Field(
        0.1, ge=0.0, lt=1.0,
        description="Held out when no eval set: fraction of training rows used to evaluate "
        "(0 skips evaluation).",
    )
    hyperparameters: Hyperparameters = Field(
        default_factory=Hyperparameters, description="Optimization settings."
    )
    lora: LoraConfig = Field(default_factory=LoraConfig, description="PEFT LoRA settings.")
    quantization: QuantizationConfig = Field(
        default_factory=QuantizationConfig, description="QLoRA weight quantization."
    )
    scaling: ScalingSpec = Field(default_factory=ScalingSpec, description="Ray Train workers.")
    resume_from_checkpoint: str | None = Field(
        None,
        description="Where to resume from (TrainingArguments.resume_from_checkpoint): "
        "'<job id>:<step>', a checkpoint the catalog recorded for one of your jobs on the "
        "same base model and LoRA settings (a managed API's from_checkpoint 'job:step'; "
        "stored as that checkpoint's folder once checked), or a checkpoint folder "
        "(path or storage URI). Optimizer, scheduler, RNG state and data order resume "
        "with it: the steps after it are those of a run never stopped.",
    )
    evaluate: EvaluationSettings | None = Field(
        default_factory=EvaluationSettings,
        description="With an eval set (eval_dataset_id), the job ends with an evaluation: "
        "the base model and the new adapter answer the eval set's first n prompts "
        "(greedy, at most max_tokens) and are scored against its references (ROUGE-L, "
        "BLEU, exact match); the job is completed first, the evaluation follows in the "
        "same Ray job. null: no evaluation.",
    )
    country_iso_code: str = Field(
        "USA", min_length=3, max_length=3,
        description="ISO 3166-1 alpha-3 code of where it runs, for codecarbon's carbon "
        "intensity (kg CO2eq per kWh).",
    )
    output_model_name: str | None = Field(
        None, max_length=NAME_LENGTH,
        description="Name of the adapter Model registered on success; null: '<name>-lora'.",
    )
    report_to: list[Literal["mlflow", "tensorboard"]] = Field(
        default_factory=list,
        description="Trackers that receive the metrics too (TrainingArguments.report_to): "
        "mlflow at MLFLOW_TRACKING_URI, tensorboard under GARDEN_TENSORBOARD_DIR/<job id> "
        "(default <storage root>/tensorboard/<job id>). The catalog always does.",
    )
    user_id: UserId = None

    @model_validator(mode="before")
    @classmethod
    def _accept_openai_method(cls, data: Any) -> Any:
        return _openai_method(data) if isinstance(data, dict) else data

    def gpu_only_options(self) -> list[GpuOnlyOption]:
        """The options set on this job that run only on GPUs, in a fixed order.

        The one place that says which options need ``scaling.use_gpu=true``: the request
        validator (:class:`TrainingJobCreate`) and the job's pre-flight check
        (``train_jobs.trainer.check_requirements``) both read it.
        """
        found: list[GpuOnlyOption] = []
        if self.quantization.bits is not None:
            found.append(_QUANTIZATION)
        if self.hyperparameters.optim == "adamw_bnb_8bit":
            found.append(_ADAMW_8BIT)
        if self.hyperparameters.bf16:
            found.append(_BF16)
        if self.hyperparameters.fp16:
            found.append(_FP16)
        if self.scaling.deepspeed_stage is not None:
            found.append(_DEEPSPEED)
        return found


class TrainingJobCreate(TrainingJobSpec):
    """A request to fine-tune a LoRA adapter (seed 002's TrainingJobCreate).

    Raises ``ValueError`` (a 422 at the gateway) when a GPU-only option is set without
    ``scaling.use_gpu``; the message names every such option. Raises it too for
    ``hyperparameters.packing`` with a method other than sft.
    """

    @model_validator(mode="after")
    def _check_hardware(self) -> TrainingJobCreate:
        gpu_only = [option.label for option in self.gpu_only_options()]
        if gpu_only and not self.scaling.use_gpu:
            raise ValueError(f"{', '.join(gpu_only)} need scaling.use_gpu=true (GPU-only)")
        return self

    @model_validator(mode="after")
    def _check_packing(self) -> TrainingJobCreate:
        if self.hyperparameters.packing and self.method != TrainingMethod.sft:
            raise ValueError("hyperparameters.packing is for method sft only (TRL's "
                             "DPOTrainer does not pack preference pairs)")
        return self


# Derives from TrainingJobSpec, not TrainingJobCreate: the hardware check is a request
# rule; a stored job is read back as it is (its pre-flight check reports it instead).
class TrainingJob(TrainingJobSpec, Row):
    """A training job as the catalog stores it (seed 002's TrainingJob, seed 004's
    TrainingRun)."""

    status: JobStatus = Field(description="Lifecycle status; moves by transitions only.")
    ray_job_id: str | None = Field(description="Ray job submission id, once submitted.")
    output_model_id: str | None = Field(description="The adapter Model registered on success.")
    error_message: str | None = Field(description="Why it failed or was rejected.")
    energy_kwh: float | None = Field(description="Energy measured by codecarbon so far, kWh.")
    emissions_kg: float | None = Field(description="Emissions measured so far, kg CO2eq.")
    eval_loss_before: float | None = Field(
        description="Eval loss (mean token cross-entropy, nats) before the first step."
    )
    eval_loss_after: float | None = Field(
        description="Eval loss (mean token cross-entropy, nats) after the last step."
    )
    evaluation: EvaluationSummary | None = Field(
        description="The evaluation the job ended with (see evaluate), once completed.")
    progress: float = Field(
        ge=0.0, le=1.0, description="Fraction of the optimizer steps done: current_step / "
        "total_steps (seed 002); 1.0 once the last step ran.",
    )
    current_step: int = Field(ge=0, description="Optimizer steps done so far.")
    total_steps: int = Field(
        ge=0, description="Optimizer steps the run will take (0 until the trainer has sized it)."
    )
    current_epoch: float = Field(ge=0.0, description="Epochs done so far, fractional.")
    total_epochs: float = Field(
        ge=0.0, description="Epochs the run will take (num_train_epochs, or what max_steps "
        "amounts to); 0 until sized.",
    )
    created_at: CreatedAt
    updated_at: UpdatedAt
    started_at: datetime | None = Field(description="When it started running (UTC).")
    completed_at: datetime | None = Field(
        description="When it reached a terminal status (UTC)."
    )


class MetricPoint(Schema):
    """Metrics of one logged optimizer step (seed 002's TrainingMetrics)."""

    step: int = Field(
        ge=0, description="Optimizer steps done (TrainingArguments' global_step); 0: before "
        "training.",
    )
    epoch: float | None = Field(None, description="Epochs done, fractional.")
    train_loss: float | None = Field(
        None,
        description="Mean token cross-entropy (nats) over the steps since the last point, "
        "averaged over workers.",
    )
    eval_loss: float | None = Field(
        None, description="Mean token cross-entropy (nats) on the evaluation rows."
    )
    perplexity: float | None = Field(None, description="exp(eval_loss), capped at exp(80).")
    learning_rate: float | None = Field(None, description="The scheduler's learning rate.")
    tokens_per_second: float | None = Field(
        None,
        description="Training throughput since the last point: non-padding tokens of all "
        "workers per second.",
    )
    memory_mb: float | None = Field(
        None,
        description="Peak GPU memory, or the process's resident memory on CPU, of rank 0, "
        "MiB.",
    )
    extra: dict[str, float] | None = Field(
        None,
        description="Other numbers the trainer logged at this step, by TRL's names: "
        "grad_norm, and for dpo rewards/chosen, rewards/rejected, rewards/accuracies, "
        "rewards/margins, logps/chosen, logps/rejected (eval ones prefixed eval_).",
    )
    created_at: datetime | None = Field(None, description="When it was recorded (UTC).")


class Checkpoint(Schema):
    """One saved checkpoint (seed 002's TrainingCheckpoint): a transformers Trainer
    checkpoint folder (PEFT adapter, optimizer, scheduler and trainer state)."""

    step: int = Field(ge=0, description="Optimizer step it was saved at.")
    path: str = Field(description="Checkpoint folder (local path or storage URI).")
    eval_loss: float | None = Field(
        None, description="Eval loss (nats) at that step, if evaluated."
    )
    train_loss: float | None = Field(
        None, description="Train loss (nats) of the last metric point at or before that step."
    )
    size_bytes: int | None = Field(None, ge=0, description="Bytes of the checkpoint's files.")
    created_at: datetime | None = Field(None, description="When it was recorded (UTC).")


class JobEvent(Schema):
    """A line of a job's event log (status changes, warnings, errors)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Severity."
    )
    message: str = Field(description="What happened.")
    created_at: datetime | None = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When it happened (UTC), set where the event is made.")
