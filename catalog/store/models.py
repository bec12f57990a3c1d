"""The models aggregate: the ``models`` repository, registering a model with its lineage,
finding one by name and version, and the next free version of a model or dataset name."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import func, select

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, NotFound
from catalog.store.base import StoreBase
from catalog.store.marks import idempotent
from catalog.store.repo import RepoField


class ModelsMixin(StoreBase):
    """Base models, adapters and merged models, with their lineage."""

    models = RepoField(
        t.ModelRow, s.Model,
        filters=("kind", "name", "version", "base_model_id", "training_job_id",
                 "merged_from_id", "published"),
        updatable=("description", "published", "metrics", "config", "path", "size_bytes"),
        public_column="published",
    )

    def register_model(self, request: s.ModelCreate) -> s.Model:
        """Register a base model or an adapter with its lineage, in one transaction.

        An adapter's ``base_model_id`` must name a model of kind ``base``; a given
        ``dataset_id`` and ``training_job_id`` must exist; a merged model's
        ``merged_from_id`` must name an adapter of its ``base_model_id``. When the model
        comes from a training job, the job's ``output_model_id`` is set to it in the same
        transaction. Raises InvalidArgument (bad lineage) or Conflict (name+version).
        """
        with self.session() as session:
            if request.base_model_id is not None:
                base = session.get(t.ModelRow, request.base_model_id)
                if base is None:
                    raise InvalidArgument(
                        f"base model {request.base_model_id!r} not found", field="base_model_id"
                    )
                if base.kind != s.ModelKind.base:
                    raise InvalidArgument(
                        f"{request.base_model_id!r} is an adapter, not a base model",
                        field="base_model_id",
                    )
            if request.merged_from_id is not None:
                merged = session.get(t.ModelRow, request.merged_from_id)
                if (merged is None or merged.kind != s.ModelKind.adapter
                        or merged.base_model_id != request.base_model_id):
                    raise InvalidArgument(
                        f"{request.merged_from_id!r} is not an adapter of "
                        f"{request.base_model_id!r}", field="merged_from_id",
                    )
            if request.dataset_id and session.get(t.DatasetRow, request.dataset_id) is None:
                raise InvalidArgument(
                    f"dataset {request.dataset_id!r} not found", field="dataset_id"
                )
            job = None
            if request.training_job_id:
                job = session.get(t.TrainingJobRow, request.training_job_id, with_for_update=True)
                if job is None:
                    raise InvalidArgument(
                        f"training job {request.training_job_id!r} not found",
                        field="training_job_id",
                    )
            row = self.models._insert(session, request)
            if job is not None:
                job.output_model_id = row.id
            return s.Model.model_validate(row)

    @idempotent
    def find_model(self, ref: str) -> s.Model:
        """A model by id, by ``name`` (latest version) or by ``name:version``.

        Raises NotFound.
        """
        with self.session() as session:
            row = session.get(t.ModelRow, ref)
            if row is None:
                name, _, version = ref.rpartition(":") if ref.rpartition(":")[2].isdigit() else (
                    ref, "", "")
                stmt = select(t.ModelRow).where(t.ModelRow.name == name)
                if version:
                    stmt = stmt.where(t.ModelRow.version == int(version))
                row = session.scalars(stmt.order_by(t.ModelRow.version.desc())).first()
            if row is None:
                raise NotFound(f"model {ref!r} not found", field="model")
            return s.Model.model_validate(row)

    @idempotent
    def next_version(self, table: Literal["models", "datasets"], name: str) -> int:
        """1 + the highest version of ``name`` in ``models`` or ``datasets``."""
        row_cls: type[t.ModelRow] | type[t.DatasetRow] = (
            t.ModelRow if table == "models" else t.DatasetRow)
        with self.session() as session:
            top = session.scalar(select(func.max(row_cls.version)).where(row_cls.name == name))
            return (top or 0) + 1
