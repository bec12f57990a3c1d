"""The datasets aggregate: the ``datasets`` repository (a dataset's next version is
:meth:`catalog.store.models.ModelsMixin.next_version`'s, shared with models)."""

from __future__ import annotations

from catalog import schemas as s
from catalog import tables as t
from catalog.store.base import StoreBase
from catalog.store.repo import RepoField


class DatasetsMixin(StoreBase):
    """Registered datasets (training data and batch input files)."""

    datasets = RepoField(
        t.DatasetRow, s.Dataset,
        filters=("name", "version", "format"), updatable=("description",),
    )
