"""Pydantic v2 models: the contract shared by the gateway, the client and the jobs.

One module per concern; every public name is re-exported here, so callers write
``from catalog import schemas as s`` or ``from catalog.schemas import Model``:

- :mod:`~catalog.schemas.common`: the ``Schema`` and ``Row`` bases, ``Page``, the error
  shape, the annotated id/owner/time types;
- :mod:`~catalog.schemas.training`: training jobs, their settings, metric points,
  checkpoints, events, and which options are GPU-only;
- :mod:`~catalog.schemas.registry`: models (base weights and LoRA adapters);
- :mod:`~catalog.schemas.datasets`: datasets;
- :mod:`~catalog.schemas.media`: predictions, images, source images, edits, videos;
- :mod:`~catalog.schemas.styles`: prompt helpers, themes, tags, project galleries;
- :mod:`~catalog.schemas.usage`: usage and carbon records and summaries;
- :mod:`~catalog.schemas.keys`: API keys;
- :mod:`~catalog.schemas.batches`: batch inference jobs (OpenAI's Batch object).

Every entity has a read model (what the catalog returns) and, where users create it, a
``*Create`` request model; the read model derives from the create model (or from a
``*Spec`` base both share, where the create model has a validator or a field type of its
own), so a constraint lives in one place. Read models are built from ORM rows with
``model_validate(row)`` (``from_attributes``). A constraint violation raises
``pydantic.ValidationError`` whose ``loc`` names the field.
"""

from catalog.schemas.batches import (
    Batch,
    BatchCreate,
    BatchEndpoint,
    BatchError,
    BatchErrors,
    BatchRequestCounts,
    BatchStatus,
    BatchUsage,
)
from catalog.schemas.common import (
    CreatedAt,
    ErrorBody,
    ErrorResponse,
    Page,
    Row,
    RowId,
    Schema,
    UpdatedAt,
    UserId,
)
from catalog.schemas.datasets import (
    BATCH_FORMATS,
    CHAT_FORMATS,
    PREFERENCE_FORMATS,
    Dataset,
    DatasetCreate,
    DatasetFileFormat,
    DatasetFormat,
    DatasetSchema,
    DatasetStatistics,
)
from catalog.schemas.keys import ApiKey, Role
from catalog.schemas.media import (
    EditKind,
    Image,
    ImageCreate,
    ImageEdit,
    ImageEditCreate,
    ImageEditSpec,
    ImageSpec,
    Modality,
    Prediction,
    PredictionCreate,
    PredictionStatus,
    SourceImage,
    SourceImageCreate,
    StoredFile,
    Video,
    VideoCreate,
)
from catalog.schemas.registry import Model, ModelCreate, ModelKind, ModelSpec
from catalog.schemas.styles import (
    ProjectImage,
    ProjectImageCreate,
    PromptHelper,
    PromptHelperCreate,
    PromptHelperSpec,
    PromptHelperVersion,
    PromptPlacement,
    Tag,
    TagCreate,
    ThemeHelper,
    ThemeHelperCreate,
)
from catalog.schemas.training import (
    Checkpoint,
    GpuOnlyOption,
    Hyperparameters,
    JobEvent,
    JobStatus,
    LoraConfig,
    MetricPoint,
    QuantizationConfig,
    ScalingSpec,
    TrainingJob,
    TrainingJobCreate,
    TrainingJobSpec,
    TrainingMethod,
)
from catalog.schemas.usage import (
    CarbonByModel,
    CarbonCreate,
    CarbonGroupBy,
    CarbonRecord,
    CarbonSource,
    CarbonSummary,
    CarbonSummaryRow,
    UsageCreate,
    UsageGroupBy,
    UsageRecord,
    UsageSpec,
    UsageSummary,
    UsageSummaryRow,
)

__all__ = [
    "BATCH_FORMATS",
    "CHAT_FORMATS",
    "PREFERENCE_FORMATS",
    "ApiKey",
    "Batch",
    "BatchCreate",
    "BatchEndpoint",
    "BatchError",
    "BatchErrors",
    "BatchRequestCounts",
    "BatchStatus",
    "BatchUsage",
    "CarbonByModel",
    "CarbonCreate",
    "CarbonGroupBy",
    "CarbonRecord",
    "CarbonSource",
    "CarbonSummary",
    "CarbonSummaryRow",
    "Checkpoint",
    "CreatedAt",
    "Dataset",
    "DatasetCreate",
    "DatasetFileFormat",
    "DatasetFormat",
    "DatasetSchema",
    "DatasetStatistics",
    "EditKind",
    "ErrorBody",
    "ErrorResponse",
    "GpuOnlyOption",
    "Hyperparameters",
    "Image",
    "ImageCreate",
    "ImageEdit",
    "ImageEditCreate",
    "ImageEditSpec",
    "ImageSpec",
    "JobEvent",
    "JobStatus",
    "LoraConfig",
    "MetricPoint",
    "Modality",
    "Model",
    "ModelCreate",
    "ModelKind",
    "ModelSpec",
    "Page",
    "Prediction",
    "PredictionCreate",
    "PredictionStatus",
    "ProjectImage",
    "ProjectImageCreate",
    "PromptHelper",
    "PromptHelperCreate",
    "PromptHelperSpec",
    "PromptHelperVersion",
    "PromptPlacement",
    "QuantizationConfig",
    "Role",
    "Row",
    "RowId",
    "ScalingSpec",
    "Schema",
    "SourceImage",
    "SourceImageCreate",
    "StoredFile",
    "Tag",
    "TagCreate",
    "ThemeHelper",
    "ThemeHelperCreate",
    "TrainingJob",
    "TrainingJobCreate",
    "TrainingJobSpec",
    "TrainingMethod",
    "UpdatedAt",
    "UsageCreate",
    "UsageGroupBy",
    "UsageRecord",
    "UsageSpec",
    "UsageSummary",
    "UsageSummaryRow",
    "UserId",
    "Video",
    "VideoCreate",
]
