"""The catalog's transactional operations over one SQLAlchemy engine.

:class:`CatalogStore` exposes one :class:`Repo` per entity (``store.models``,
``store.datasets``, ...: create, get, list, update, delete) and the operations
that span rows (status transitions, metrics, lineage, carbon, usage, prompt
styles, API keys). Each public call is one transaction (:meth:`CatalogStore.session`):
it commits on success, rolls back on any error, and maps database errors to
:mod:`catalog.errors` (unique violation -> Conflict, foreign key -> InvalidArgument
or Conflict on delete). ORM rows never leave this package: callers get
:mod:`catalog.schemas` models.

The store is composed as MLflow composes its tracking store: :mod:`catalog.store.base`
holds the engine, sessions and repository construction, and one mixin module per
aggregate (models, datasets, training, batches, evaluations, media, styles, library,
usage, carbon, keys) declares its repositories next to its operations.
"""

from catalog.store.base import StoreBase, make_engine
from catalog.store.batches import BATCH_UPDATABLE, BatchesMixin
from catalog.store.carbon import CarbonMixin
from catalog.store.datasets import DatasetsMixin
from catalog.store.evaluations import EvaluationsMixin
from catalog.store.keys import KeysMixin, hash_key
from catalog.store.library import LibraryMixin
from catalog.store.marks import idempotent, is_idempotent
from catalog.store.media import MediaMixin, PurgeItem
from catalog.store.models import ModelsMixin
from catalog.store.paging import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from catalog.store.repo import Repo
from catalog.store.styles import StylesMixin
from catalog.store.training import TrainingMixin
from catalog.store.usage import USAGE_CHUNK, UsageMixin


class CatalogStore(
    ModelsMixin, DatasetsMixin, CarbonMixin, UsageMixin, TrainingMixin, BatchesMixin,
    EvaluationsMixin, MediaMixin, StylesMixin, LibraryMixin, KeysMixin, StoreBase,
):
    """All catalog operations over one engine: one class composed of the aggregates'
    mixins, so :mod:`catalog.port` names each operation as ``CatalogStore.<name>``.

    Build one with :meth:`open` (migrates or checks the schema) or pass an engine
    whose schema is already at head.
    """


__all__ = [
    "BATCH_UPDATABLE",
    "MAX_PAGE_SIZE",
    "USAGE_CHUNK",
    "CatalogStore",
    "PurgeItem",
    "Repo",
    "decode_cursor",
    "encode_cursor",
    "hash_key",
    "idempotent",
    "is_idempotent",
    "make_engine",
]
