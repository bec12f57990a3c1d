"""SQLAlchemy 2.0 typed ORM tables for every catalog entity, one module per aggregate
(the store's nouns) on the declarative base of :mod:`catalog.tables.base`.

Rows never leave :mod:`catalog.store`: it turns them into :mod:`catalog.schemas`
models first. Timestamps are stored as UTC and read back timezone-aware on both
SQLite and PostgreSQL; JSON columns are ``JSONB`` on PostgreSQL and JSON text on
SQLite. The schema itself is created by the Alembic migrations in
``catalog/migrations``; ``Base.metadata`` is their target (this package imports every
table module, so the metadata holds every table).
"""

from catalog.tables.base import (
    NAMING,
    Base,
    Event,
    JSONType,
    Owned,
    Row,
    Timestamps,
    UTCDateTime,
    Versions,
    new_id,
    utcnow,
)
from catalog.tables.batches import BatchEventRow, BatchRow
from catalog.tables.carbon import CarbonRow
from catalog.tables.datasets import DatasetRow
from catalog.tables.evaluations import EvaluationRow
from catalog.tables.keys import ApiKeyRow
from catalog.tables.library import (
    FavoriteRow,
    ProjectItemRow,
    ProjectRow,
    Tagged,
    TaggingRow,
    TagRow,
)
from catalog.tables.media import (
    ImageEditRow,
    ImageRow,
    MediaMeta,
    PredictionRow,
    SoftDeleted,
    SourceImageRow,
    VideoRow,
)
from catalog.tables.models import ModelRow
from catalog.tables.styles import (
    PromptHelperRow,
    PromptHelperVersionRow,
    ThemeHelperRow,
    ThemeHelperVersionRow,
)
from catalog.tables.training import JobCheckpointRow, JobEventRow, JobMetricRow, TrainingJobRow
from catalog.tables.usage import ROLLUP_KEYS, ROLLUP_SUMS, UsageRollupRow, UsageRow

__all__ = [
    "NAMING",
    "ROLLUP_KEYS",
    "ROLLUP_SUMS",
    "ApiKeyRow",
    "Base",
    "BatchEventRow",
    "BatchRow",
    "CarbonRow",
    "DatasetRow",
    "EvaluationRow",
    "Event",
    "FavoriteRow",
    "ImageEditRow",
    "ImageRow",
    "JSONType",
    "JobCheckpointRow",
    "JobEventRow",
    "JobMetricRow",
    "MediaMeta",
    "ModelRow",
    "Owned",
    "PredictionRow",
    "ProjectItemRow",
    "ProjectRow",
    "PromptHelperRow",
    "PromptHelperVersionRow",
    "Row",
    "SoftDeleted",
    "SourceImageRow",
    "TagRow",
    "Tagged",
    "TaggingRow",
    "ThemeHelperRow",
    "ThemeHelperVersionRow",
    "Timestamps",
    "TrainingJobRow",
    "UTCDateTime",
    "UsageRollupRow",
    "UsageRow",
    "Versions",
    "VideoRow",
    "new_id",
    "utcnow",
]
