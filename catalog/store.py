"""The catalog's transactional operations over one SQLAlchemy engine.

:class:`CatalogStore` exposes one :class:`Repo` per entity (``store.models``,
``store.datasets``, ...: create, get, list, update, delete) and the operations
that span rows (status transitions, metrics, lineage, carbon, usage, prompt
styles, API keys). Each public call is one transaction (:meth:`CatalogStore.session`):
it commits on success, rolls back on any error, and maps database errors to
:mod:`catalog.errors` (unique violation -> Conflict, foreign key -> InvalidArgument
or Conflict on delete). ORM rows never leave this module: callers get
:mod:`catalog.schemas` models.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    event,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import SQLCoreOperations

from catalog import schemas as s
from catalog import tables as t
from catalog.config import database_url
from catalog.errors import (
    CatalogError,
    Conflict,
    InvalidArgument,
    InvalidTransition,
    NotFound,
    SchemaOutOfDate,
    Unavailable,
)
from catalog.lifecycle import (
    JOB_TRANSITIONS,
    PREDICTION_TRANSITIONS,
    check_transition,
    is_terminal,
)

R = TypeVar("R", bound=BaseModel)

MAX_PAGE_SIZE = 1000


# --------------------------------------------------------------------------- engine


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default :func:`catalog.config.database_url`).

    SQLite gets WAL journaling, enforced foreign keys, a 30 s busy timeout and
    ``BEGIN IMMEDIATE`` transactions, so concurrent writers queue instead of failing
    with "database is locked" mid-transaction (recipe from SQLAlchemy's pysqlite
    docs, "Serializable isolation / Savepoints / Transactional DDL").
    """
    url = url or database_url()
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


# --------------------------------------------------------------------------- pagination


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """Opaque cursor for keyset pagination on ``(created_at DESC, id DESC)``."""
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`. Raises InvalidArgument for a malformed cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, row_id = json.loads(raw)
        return datetime.fromisoformat(when), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidArgument("malformed pagination cursor", field="cursor") from exc


# --------------------------------------------------------------------------- retry marks

F = TypeVar("F", bound=Callable[..., Any])


def idempotent(fn: F) -> F:
    """Mark a store operation as safe to repeat: it only reads, or its write is keyed by
    the caller's ids (a repeat writes nothing twice).

    :class:`catalog.actor.Catalog` retries such operations while the catalog actor
    restarts (:func:`is_idempotent`); any other write raises, since it may or may not
    have committed.
    """
    fn.__catalog_idempotent__ = True  # type: ignore[attr-defined]
    return fn


def is_idempotent(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` was marked with :func:`idempotent`."""
    return getattr(fn, "__catalog_idempotent__", False)


# --------------------------------------------------------------------------- repositories


class Repo(Generic[R]):
    """Create/get/list/update/delete for one table, returning ``read`` models.

    Args:
        store: the owning store (for its sessions).
        row: the ORM class; its ``id_prefix`` names new ids.
        read: the schema returned to callers.
        filters: columns ``list`` may filter on by equality.
        updatable: columns ``update`` may change (status columns never are:
            they move through the state machines).
    """

    def __init__(
        self,
        store: CatalogStore,
        row: type[t.Row],
        read: type[R],
        *,
        filters: Sequence[str] = (),
        updatable: Sequence[str] = (),
    ):
        self.store = store
        self.row = row
        self.read = read
        self.filters = frozenset(filters) | {"user_id"}
        self.updatable = frozenset(updatable)
        self.name = row.__tablename__

    def _get_row(self, session: Session, row_id: str, *, lock: bool = False) -> Any:
        stmt = select(self.row).where(self.row.id == row_id)
        if lock:
            stmt = stmt.with_for_update()
        row = session.scalars(stmt).first()
        if row is None:
            raise NotFound(f"{self.name} {row_id!r} not found", field="id")
        return row

    def _insert(self, session: Session, request: BaseModel, **extra: Any) -> Any:
        values = request.model_dump(mode="json", exclude={"id"})
        values = {k: v for k, v in values.items() if hasattr(self.row, k)}
        values.update(extra)
        row_id = getattr(request, "id", None) or t.new_id(self.row.id_prefix)
        row = self.row(id=row_id, **values)
        session.add(row)
        session.flush()
        return row

    def create(self, request: BaseModel, **extra: Any) -> R:
        """Insert one row from a ``*Create`` model. Raises Conflict or InvalidArgument."""
        with self.store.session() as session:
            return self.read.model_validate(self._insert(session, request, **extra))

    @idempotent
    def get(self, row_id: str) -> R:
        """The row with ``row_id``. Raises NotFound."""
        with self.store.session() as session:
            return self.read.model_validate(self._get_row(session, row_id))

    @idempotent
    def list(
        self,
        *,
        page_size: int = 50,
        cursor: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        **filters: Any,
    ) -> s.Page[R]:
        """A page of rows, newest first, with the total matching the filters.

        Filters are equality on the columns named in ``filters`` (``None`` values
        are ignored). Raises InvalidArgument for an unknown filter or bad cursor.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1..{MAX_PAGE_SIZE}", field="page_size")
        conds = []
        for key, value in filters.items():
            if key not in self.filters:
                raise InvalidArgument(f"cannot filter {self.name} by {key!r}", field=key)
            if value is not None:
                conds.append(getattr(self.row, key) == _plain(value))
        if created_after is not None:
            conds.append(self.row.created_at >= created_after)
        if created_before is not None:
            conds.append(self.row.created_at < created_before)
        with self.store.session() as session:
            total = session.scalar(select(func.count()).select_from(self.row).where(*conds))
            stmt = select(self.row).where(*conds)
            if cursor:
                when, last_id = decode_cursor(cursor)
                stmt = stmt.where(
                    or_(
                        self.row.created_at < when,
                        and_(self.row.created_at == when, self.row.id < last_id),
                    )
                )
            stmt = stmt.order_by(self.row.created_at.desc(), self.row.id.desc())
            rows = list(session.scalars(stmt.limit(page_size + 1)))
            next_cursor = None
            if len(rows) > page_size:
                rows = rows[:page_size]
                next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
            # pydantic parametrizes the generic page at run time, by this repo's schema
            return s.Page[self.read](  # type: ignore[name-defined]
                items=[self.read.model_validate(r) for r in rows],
                total=total or 0,
                page_size=page_size,
                next_cursor=next_cursor,
            )

    @idempotent
    def update(self, row_id: str, **fields: Any) -> R:
        """Change updatable columns of one row (setting the same values again changes
        nothing). Raises NotFound, InvalidArgument."""
        for key in fields:
            if key not in self.updatable:
                raise InvalidArgument(f"{self.name}.{key} cannot be updated", field=key)
        with self.store.session() as session:
            row = self._get_row(session, row_id, lock=True)
            for key, value in fields.items():
                setattr(row, key, _plain(value))
            session.flush()
            return _validated(self.read, row)

    def delete(self, row_id: str) -> None:
        """Delete one row. Raises NotFound, or Conflict while other rows reference it."""
        with self.store.session() as session:
            session.delete(self._get_row(session, row_id))


def _plain(value: Any) -> Any:
    """JSON-ready form of pydantic models (and lists of them) for JSON columns."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _validated(read: type[R], row: Any) -> R:
    try:
        return read.model_validate(row)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InvalidArgument(f"{field}: {err['msg']}", field=field) from exc


# --------------------------------------------------------------------------- the store


class CatalogStore:
    """All catalog operations over one engine.

    Build one with :meth:`open` (migrates or checks the schema) or pass an engine
    whose schema is already at head.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.models = Repo(
            self, t.ModelRow, s.Model,
            filters=("kind", "name", "version", "base_model_id", "training_job_id", "published"),
            updatable=("description", "published", "metrics", "config", "path", "size_bytes"),
        )
        self.datasets = Repo(
            self, t.DatasetRow, s.Dataset,
            filters=("name", "version", "format"), updatable=("description",),
        )
        self.training_jobs = Repo(
            self, t.TrainingJobRow, s.TrainingJob,
            filters=("status", "base_model_id", "dataset_id"),
            updatable=(
                "ray_job_id", "error_message", "energy_kwh", "emissions_kg",
                "eval_loss_before", "eval_loss_after", "output_model_id",
                "progress", "current_step", "total_steps", "current_epoch", "total_epochs",
            ),
        )
        self.predictions = Repo(
            self, t.PredictionRow, s.Prediction,
            filters=("status", "provider", "model", "modality", "provider_prediction_id"),
            updatable=("output", "files", "provider_prediction_id", "cost_usd"),
        )
        self.images = Repo(
            self, t.ImageRow, s.Image, filters=("model", "provider", "prediction_id"),
            updatable=("files", "width", "height"),
        )
        self.source_images = Repo(self, t.SourceImageRow, s.SourceImage)
        self.image_edits = Repo(
            self, t.ImageEditRow, s.ImageEdit, filters=("kind", "image_id", "prediction_id"),
            updatable=("files",),
        )
        self.videos = Repo(
            self, t.VideoRow, s.Video, filters=("model", "provider", "prediction_id"),
            updatable=("files",),
        )
        self.prompt_helpers = Repo(
            self, t.PromptHelperRow, s.PromptHelper, filters=("name",),
            updatable=("name", "description"),
        )
        self.theme_helpers = Repo(
            self, t.ThemeHelperRow, s.ThemeHelper, filters=("name",),
            updatable=("name", "description", "prompt_helper_ids"),
        )
        self.tags = Repo(self, t.TagRow, s.Tag, filters=("name",), updatable=("name",))
        self.project_images = Repo(
            self, t.ProjectImageRow, s.ProjectImage, filters=("project", "image_id"),
            updatable=("position",),
        )
        self.usage = Repo(self, t.UsageRow, s.UsageRecord, filters=("model", "adapter", "kind"))
        self.carbon = Repo(
            self, t.CarbonRow, s.CarbonRecord, filters=("source", "training_job_id", "model_id")
        )
        self.api_keys = Repo(self, t.ApiKeyRow, s.ApiKey, filters=("role",))
        self._repos: dict[type[BaseModel], Repo[Any]] = {
            repo.read: repo for repo in vars(self).values() if isinstance(repo, Repo)
        }

    def repo(self, read: type[R]) -> Repo[R]:
        """The repository whose rows are returned as ``read`` (``s.Model`` -> ``models``).

        Raises KeyError for a schema that is no table's read model.
        """
        return self._repos[read]

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> CatalogStore:
        """Open the catalog at ``url`` (default from the environment).

        With ``migrate`` the schema is upgraded to head by Alembic; without, a
        schema behind head raises SchemaOutOfDate naming the upgrade command.
        """
        from catalog import migrate as mig

        engine = make_engine(url)
        if migrate:
            mig.upgrade(engine)
        else:
            mig.check_current(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error, map DB errors."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise _integrity_error(exc) from exc
        except OperationalError as exc:
            session.rollback()
            if "no such table" in str(exc) or "does not exist" in str(exc):
                raise SchemaOutOfDate(
                    "catalog schema missing; run `alembic upgrade head`"
                ) from exc
            raise Unavailable(f"database error: {exc.orig}") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @idempotent
    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT 1").scalar() == 1

    @idempotent
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``: the database behind this store."""
        return self.engine.dialect.name

    # ----------------------------------------------------------------- models and datasets

    def register_model(self, request: s.ModelCreate) -> s.Model:
        """Register a base model or an adapter with its lineage, in one transaction.

        An adapter's ``base_model_id`` must name a model of kind ``base``; a given
        ``dataset_id`` and ``training_job_id`` must exist. When the model comes from a
        training job, the job's ``output_model_id`` is set to it in the same
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

    # ----------------------------------------------------------------- training jobs

    def create_training_job(self, request: s.TrainingJobCreate) -> s.TrainingJob:
        """Insert a pending job after checking its base model and datasets exist and that
        the datasets' format suits its method: dpo trains on preference pairs
        (:data:`catalog.schemas.PREFERENCE_FORMATS`), sft on chats (the other formats).

        Raises:
            InvalidArgument: a missing reference (``field`` names it), or a dataset or eval
                dataset whose format the method cannot train on (``field="method"``, the
                message names the formats the method needs). Nothing is written.
        """
        with self.session() as session:
            base = session.get(t.ModelRow, request.base_model_id)
            if base is None or base.kind != s.ModelKind.base:
                raise InvalidArgument(
                    f"base model {request.base_model_id!r} not found", field="base_model_id"
                )
            for field in ("dataset_id", "eval_dataset_id"):
                ref = getattr(request, field)
                if not ref:
                    continue
                data = session.get(t.DatasetRow, ref)
                if data is None:
                    raise InvalidArgument(f"dataset {ref!r} not found", field=field)
                _check_method_format(request.method, field, data)
            row = self.training_jobs._insert(session, request, status=s.JobStatus.pending)
            session.add(t.JobEventRow(job_id=row.id, message="job created"))
            return s.TrainingJob.model_validate(row)

    def transition_job(
        self, job_id: str, status: s.JobStatus | str, *, error_message: str | None = None,
        **fields: Any,
    ) -> s.TrainingJob:
        """Move a job to ``status`` (see :mod:`catalog.lifecycle`) and log an event.

        Sets ``started_at`` on entering running and ``completed_at`` on a terminal
        status. ``fields`` may set the job's updatable columns in the same
        transaction. Raises NotFound, InvalidTransition (nothing written).
        """
        status = s.JobStatus(status)
        with self.session() as session:
            row = self.training_jobs._get_row(session, job_id, lock=True)
            self._move_job(session, row, status, error_message=error_message, fields=fields)
            return s.TrainingJob.model_validate(row)

    def _move_job(
        self, session: Session, row: t.TrainingJobRow, status: s.JobStatus, *,
        error_message: str | None, fields: dict[str, Any],
    ) -> None:
        """:meth:`transition_job` on a row locked in ``session``: check the transition, set
        the status, its timestamps and ``fields``, log the event. A move to the current
        status writes nothing. Raises InvalidTransition, InvalidArgument (a field that is
        not updatable), both before anything is written."""
        if not check_transition(JOB_TRANSITIONS, row.status, status):
            return
        for key in fields:
            if key not in self.training_jobs.updatable:
                raise InvalidArgument(f"training_jobs.{key} cannot be updated", field=key)
        now = t.utcnow()
        row.status = status
        if status == s.JobStatus.running and row.started_at is None:
            row.started_at = now
        if is_terminal(JOB_TRANSITIONS, status):
            row.completed_at = now
        if error_message is not None:
            row.error_message = error_message
        for key, value in fields.items():
            setattr(row, key, value)
        level = "error" if status == s.JobStatus.failed else "info"
        message = f"status -> {status}" + (f": {error_message}" if error_message else "")
        session.add(t.JobEventRow(job_id=row.id, level=level, message=message))
        session.flush()

    def claim_job(self, job_id: str, ray_job_id: str | None) -> s.TrainingJob:
        """Take a ``pending`` or ``queued`` job to ``running`` for the caller, atomically
        (the row is locked, as in :meth:`transition_job`, whose move and event this is).

        A catalog job runs at most once: of two processes claiming it, one wins. When the
        job records no Ray job yet, ``ray_job_id`` (the caller's Ray job submission id,
        None outside a Ray job) is recorded; when it records one, the caller must present
        the same id.

        Returns:
            The job, now running, with ``started_at`` set.

        Raises:
            NotFound: no such job.
            InvalidTransition: the job is already running or has ended
                (``field="status"``), or another Ray job owns it (``field="ray_job_id"``).
                Nothing is written.
        """
        with self.session() as session:
            row = self.training_jobs._get_row(session, job_id, lock=True)
            if row.status not in (s.JobStatus.pending, s.JobStatus.queued):
                raise InvalidTransition(
                    f"job {job_id} is already {row.status}: a catalog job runs at most once",
                    field="status",
                )
            if row.ray_job_id is not None and row.ray_job_id != ray_job_id:
                raise InvalidTransition(
                    f"job {job_id} belongs to Ray job {row.ray_job_id}, not {ray_job_id}",
                    field="ray_job_id",
                )
            fields = {"ray_job_id": ray_job_id} if ray_job_id is not None else {}
            self._move_job(session, row, s.JobStatus.running, error_message=None, fields=fields)
            return s.TrainingJob.model_validate(row)

    @idempotent
    def append_metrics(self, job_id: str, points: Sequence[s.MetricPoint]) -> int:
        """Record metric points of a job; one row per step. Returns how many points.

        A point at a step already recorded merges into that row (its non-null fields
        overwrite; ``extra`` merges key by key, new keys overwriting): the eval loss of
        step N joins step N's train loss, and a run resumed from a checkpoint replaces the
        steps it trains again instead of repeating them.

        Raises:
            NotFound: no such job.
        """
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            for p in points:
                values = p.model_dump(exclude_none=True)
                row = session.scalars(
                    select(t.JobMetricRow)
                    .where(t.JobMetricRow.job_id == job_id, t.JobMetricRow.step == p.step)
                    .order_by(t.JobMetricRow.id).limit(1)
                ).first()
                if row is None:
                    session.add(t.JobMetricRow(job_id=job_id, **values))
                    session.flush()  # a later point of this batch at the same step merges
                else:
                    if "extra" in values:  # a new dict: JSON columns track assignment only
                        values["extra"] = {**(row.extra or {}), **values["extra"]}
                    for key, value in values.items():
                        setattr(row, key, value)
            return len(points)

    @idempotent
    def list_metrics(self, job_id: str) -> list[s.MetricPoint]:
        """A job's metric points in step order. Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            rows = session.scalars(
                select(t.JobMetricRow)
                .where(t.JobMetricRow.job_id == job_id)
                .order_by(t.JobMetricRow.step, t.JobMetricRow.id)
            )
            return [s.MetricPoint.model_validate(r) for r in rows]

    @idempotent
    def add_checkpoint(
        self, job_id: str, checkpoint: s.Checkpoint, *, keep: int | None = None
    ) -> list[s.Checkpoint]:
        """Record a checkpoint (its eval and train loss, in nats, and size in bytes when
        given); with ``keep``, forget the others as Ray Train's ``CheckpointConfig(
        num_to_keep=keep, checkpoint_score_attribute="eval_loss",
        checkpoint_score_order="min")`` deletes them: kept are the ``keep`` best by eval loss
        (lowest first; equal losses: newest first; checkpoints without one rank below all
        with one, newest first among them) plus always the newest (highest step), which Ray
        never deletes, so up to ``keep + 1``.

        A checkpoint at an already recorded step replaces it (a resumed run saves the same
        step again).

        Returns:
            The job's recorded checkpoints, oldest (lowest step) first.

        Raises:
            NotFound: no such job.
            InvalidArgument: ``keep`` below 1.
        """
        if keep is not None and keep < 1:
            raise InvalidArgument("keep must be at least 1", field="keep")
        with self.session() as session:
            self.training_jobs._get_row(session, job_id, lock=True)
            existing = session.scalars(
                select(t.JobCheckpointRow).where(
                    t.JobCheckpointRow.job_id == job_id, t.JobCheckpointRow.step == checkpoint.step
                )
            ).first()
            if existing is not None:
                session.delete(existing)
                session.flush()
            values = checkpoint.model_dump(exclude_none=True)
            session.add(t.JobCheckpointRow(job_id=job_id, **values))
            session.flush()
            rows = list(session.scalars(
                select(t.JobCheckpointRow)
                .where(t.JobCheckpointRow.job_id == job_id)
                .order_by(t.JobCheckpointRow.step)
            ))
            if keep is not None:
                kept = _best_checkpoints(rows, keep)
                for old in rows:
                    if old not in kept:
                        session.delete(old)
                rows = [r for r in rows if r in kept]
            return [s.Checkpoint.model_validate(r) for r in rows]

    @idempotent
    def list_checkpoints(self, job_id: str) -> list[s.Checkpoint]:
        """A job's recorded checkpoints, oldest first. Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            rows = session.scalars(
                select(t.JobCheckpointRow)
                .where(t.JobCheckpointRow.job_id == job_id)
                .order_by(t.JobCheckpointRow.step)
            )
            return [s.Checkpoint.model_validate(r) for r in rows]

    @idempotent
    def add_event(self, job_id: str, event: s.JobEvent) -> None:
        """Append a log event to a job. The event's ``created_at`` is set where the event
        is made, so a repeated call (after the catalog actor restarted) finds the same
        job, time and message already recorded and writes nothing. Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            values = event.model_dump(exclude_none=True)
            if event.created_at is not None and session.scalar(
                select(t.JobEventRow.id).where(
                    t.JobEventRow.job_id == job_id,
                    t.JobEventRow.created_at == event.created_at,
                    t.JobEventRow.message == event.message).limit(1)) is not None:
                return
            session.add(t.JobEventRow(job_id=job_id, **values))

    @idempotent
    def list_events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> list[dict]:
        """Events with sequence number > ``after``.

        Returns ``[{"seq", "level", "message", "created_at"}]``, oldest first.
        """
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            rows = session.scalars(
                select(t.JobEventRow)
                .where(t.JobEventRow.job_id == job_id, t.JobEventRow.id > after)
                .order_by(t.JobEventRow.id)
                .limit(limit)
            )
            return [
                {"seq": r.id, "level": r.level, "message": r.message, "created_at": r.created_at}
                for r in rows
            ]

    # ----------------------------------------------------------------- predictions

    def transition_prediction(
        self, prediction_id: str, status: s.PredictionStatus | str, *,
        error_message: str | None = None, **fields: Any,
    ) -> s.Prediction:
        """Move a prediction along Replicate's lifecycle (see :mod:`catalog.lifecycle`).

        Sets ``started_at`` on processing, ``completed_at`` and ``duration_s`` on a
        terminal status. Raises NotFound, InvalidTransition (nothing written).
        """
        status = s.PredictionStatus(status)
        with self.session() as session:
            row = self.predictions._get_row(session, prediction_id, lock=True)
            changed = check_transition(PREDICTION_TRANSITIONS, row.status, status)
            for key, value in fields.items():
                if key not in self.predictions.updatable:
                    raise InvalidArgument(f"predictions.{key} cannot be updated", field=key)
                setattr(row, key, _plain(value))
            if changed:
                now = t.utcnow()
                row.status = status
                if status == s.PredictionStatus.processing and row.started_at is None:
                    row.started_at = now
                if is_terminal(PREDICTION_TRANSITIONS, status):
                    row.completed_at = now
                    row.duration_s = (now - (row.started_at or row.created_at)).total_seconds()
                if error_message is not None:
                    row.error_message = error_message
            session.flush()
            return s.Prediction.model_validate(row)

    # ----------------------------------------------------------------- usage and carbon

    @idempotent
    def record_usage(self, records: Sequence[s.UsageCreate]) -> list[str]:
        """Insert a batch of usage records in one transaction; returns their ids.

        Records whose caller-given ``id`` is already stored are skipped, so a
        retried batch is written once.
        """
        with self.session() as session:
            given = [r.id for r in records if r.id]
            seen = set(given and session.scalars(
                select(t.UsageRow.id).where(t.UsageRow.id.in_(given))
            ))
            ids = []
            for r in records:
                row_id = r.id or t.new_id(t.UsageRow.id_prefix)
                ids.append(row_id)
                if row_id in seen:
                    continue
                seen.add(row_id)
                values = r.model_dump(exclude={"id"})
                session.add(t.UsageRow(
                    id=row_id, total_tokens=r.prompt_tokens + r.completion_tokens, **values
                ))
            return ids

    @idempotent
    def record_carbon(self, request: s.CarbonCreate) -> s.CarbonRecord:
        """Store a measurement; a training one also adds to its job's energy and emissions.

        A request whose ``id`` is already stored replaces that row's figures (a node's
        running total written again), and its job's totals change by the difference, so
        writing the same measurement twice counts it once.

        Raises:
            NotFound: ``training_job_id`` names no job.
        """
        with self.session() as session:
            job = None
            if request.training_job_id:
                job = self.training_jobs._get_row(session, request.training_job_id, lock=True)
            row = session.get(t.CarbonRow, request.id) if request.id else None
            old_kwh, old_kg = (row.energy_kwh, row.emissions_kg) if row is not None else (0, 0)
            if row is None:
                row = self.carbon._insert(session, request)
            else:
                values = request.model_dump(mode="json", exclude={"id"}, exclude_unset=True)
                for key, value in values.items():
                    setattr(row, key, value)
            if job is not None:
                job.energy_kwh = (job.energy_kwh or 0.0) + request.energy_kwh - old_kwh
                job.emissions_kg = (job.emissions_kg or 0.0) + request.emissions_kg - old_kg
            session.flush()
            return s.CarbonRecord.model_validate(row)

    @idempotent
    def carbon_summary(
        self, group_by: str = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
    ) -> s.CarbonSummary:
        """Energy (kWh) and emissions (kg CO2eq) grouped by model, job, day, month or source.

        Sums carbon records (training, media) and per-request usage (inference).
        Usage rows group under their ``model`` name; carbon rows under ``model_id``.
        """
        if group_by not in ("model", "job", "day", "month", "source"):
            raise InvalidArgument("group_by must be model, job, day, month or source",
                                  field="group_by")
        sources: list[tuple[type[t.CarbonRow] | type[t.UsageRow],
                            dict[str, SQLCoreOperations[Any]]]] = [(t.CarbonRow, {
            "model": t.CarbonRow.model_id, "job": t.CarbonRow.training_job_id,
            "source": t.CarbonRow.source,
        })]
        if group_by != "job":
            sources.append((t.UsageRow, {
                "model": t.UsageRow.model, "source": literal("inference"),
            }))
        totals: dict[str | None, list[float]] = {}
        with self.session() as session:
            for row_cls, keys in sources:
                key = keys[group_by] if group_by in keys else self._period(
                    row_cls.created_at, group_by)
                conds = []
                if since is not None:
                    conds.append(row_cls.created_at >= since)
                if until is not None:
                    conds.append(row_cls.created_at < until)
                if user_id is not None:
                    conds.append(row_cls.user_id == user_id)
                stmt = select(
                    key, func.sum(row_cls.energy_kwh), func.sum(row_cls.emissions_kg), func.count()
                ).where(*conds).group_by(key)
                for k, kwh, kg, n in session.execute(stmt):
                    acc = totals.setdefault(k, [0.0, 0.0, 0])
                    acc[0] += kwh or 0.0
                    acc[1] += kg or 0.0
                    acc[2] += n
        rows = [
            s.CarbonSummaryRow(key=k, energy_kwh=v[0], emissions_kg=v[1], records=int(v[2]))
            for k, v in sorted(totals.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
        ]
        return s.CarbonSummary(
            group_by=group_by, rows=rows,
            total_energy_kwh=sum(r.energy_kwh for r in rows),
            total_emissions_kg=sum(r.emissions_kg for r in rows),
        )

    def _period(self, column: Any, group_by: str) -> Any:
        fmt = {"day": ("%Y-%m-%d", "YYYY-MM-DD"), "month": ("%Y-%m", "YYYY-MM")}[group_by]
        if self.engine.dialect.name == "sqlite":
            return func.strftime(fmt[0], column)
        return func.to_char(column, fmt[1])

    # ----------------------------------------------------------------- prompt styles

    def create_prompt_helper(self, request: s.PromptHelperCreate) -> s.PromptHelper:
        """Create a helper and its version 1 in one transaction. Raises Conflict on name."""
        with self.session() as session:
            row = self.prompt_helpers._insert(session, request, current_version=1)
            session.add(t.PromptHelperVersionRow(
                id=t.new_id("phv"), helper_id=row.id, version=1,
                text=request.text, placement=request.placement,
            ))
            return _validated(s.PromptHelper, row)

    def add_prompt_helper_version(
        self, helper_id: str, text: str, placement: s.PromptPlacement | str | None = None
    ) -> s.PromptHelperVersion:
        """Add the next version of a helper; the counter increments atomically in SQL.

        ``placement`` defaults to the current version's. Raises NotFound.
        """
        with self.session() as session:
            version = session.scalar(
                update(t.PromptHelperRow)
                .where(t.PromptHelperRow.id == helper_id)
                .values(current_version=t.PromptHelperRow.current_version + 1,
                        updated_at=t.utcnow())
                .returning(t.PromptHelperRow.current_version)
            )
            if version is None:
                raise NotFound(f"prompt_helpers {helper_id!r} not found", field="id")
            if placement is None:
                placement = session.scalar(
                    select(t.PromptHelperVersionRow.placement).where(
                        t.PromptHelperVersionRow.helper_id == helper_id,
                        t.PromptHelperVersionRow.version == version - 1,
                    )
                )
            row = t.PromptHelperVersionRow(
                id=t.new_id("phv"), helper_id=helper_id, version=version, text=text,
                placement=s.PromptPlacement(placement or s.PromptPlacement.append),
            )
            session.add(row)
            session.flush()
            return s.PromptHelperVersion.model_validate(row)

    @idempotent
    def get_prompt_helper_version(
        self, helper_id: str, version: int | None = None
    ) -> s.PromptHelperVersion:
        """A helper's ``version`` (default: current). Raises NotFound."""
        with self.session() as session:
            helper = self.prompt_helpers._get_row(session, helper_id)
            row = session.scalars(select(t.PromptHelperVersionRow).where(
                t.PromptHelperVersionRow.helper_id == helper_id,
                t.PromptHelperVersionRow.version == (version or helper.current_version),
            )).first()
            if row is None:
                raise NotFound(f"prompt helper {helper_id!r} has no version {version}",
                               field="version")
            return s.PromptHelperVersion.model_validate(row)

    @idempotent
    def list_prompt_helper_versions(self, helper_id: str) -> list[s.PromptHelperVersion]:
        """Every version of a helper, oldest first. Raises NotFound."""
        with self.session() as session:
            self.prompt_helpers._get_row(session, helper_id)
            rows = session.scalars(select(t.PromptHelperVersionRow).where(
                t.PromptHelperVersionRow.helper_id == helper_id
            ).order_by(t.PromptHelperVersionRow.version))
            return [s.PromptHelperVersion.model_validate(r) for r in rows]

    def fork_prompt_helper(
        self, helper_id: str, *, name: str, user_id: str | None = None
    ) -> s.PromptHelper:
        """Copy a helper's current version into a new helper (version 1) that remembers
        its origin in ``forked_from_id``. Raises NotFound, Conflict (name taken)."""
        with self.session() as session:
            src = self.prompt_helpers._get_row(session, helper_id)
            current = session.scalars(select(t.PromptHelperVersionRow).where(
                t.PromptHelperVersionRow.helper_id == helper_id,
                t.PromptHelperVersionRow.version == src.current_version,
            )).one()
            row = t.PromptHelperRow(
                id=t.new_id("ph"), name=name, description=src.description, current_version=1,
                forked_from_id=src.id, user_id=user_id,
            )
            session.add(row)
            session.flush()
            session.add(t.PromptHelperVersionRow(
                id=t.new_id("phv"), helper_id=row.id, version=1, text=current.text,
                placement=current.placement,
            ))
            return _validated(s.PromptHelper, row)

    def fork_theme_helper(
        self, theme_id: str, *, name: str, user_id: str | None = None
    ) -> s.ThemeHelper:
        """Copy a theme (its helper list) under a new name. Raises NotFound, Conflict."""
        with self.session() as session:
            src = self.theme_helpers._get_row(session, theme_id)
            row = t.ThemeHelperRow(
                id=t.new_id("th"), name=name, description=src.description,
                prompt_helper_ids=list(src.prompt_helper_ids), forked_from_id=src.id,
                user_id=user_id,
            )
            session.add(row)
            session.flush()
            return _validated(s.ThemeHelper, row)

    # ----------------------------------------------------------------- API keys

    def create_api_key(
        self, user_id: str, name: str, role: s.Role | str = s.Role.user, *,
        secret: str | None = None,
    ) -> tuple[s.ApiKey, str]:
        """Create a key; returns ``(record, secret)``. Only the SHA-256 of the secret is
        stored (keys are 256-bit random, so a fast hash is enough: no dictionary to
        attack). Pass ``secret`` to register a known key (the bootstrap admin key)."""
        secret = secret or "gk_" + secrets.token_urlsafe(32)
        with self.session() as session:
            row = t.ApiKeyRow(
                id=t.new_id("key"), user_id=user_id, name=name, prefix=secret[:8],
                key_hash=hash_key(secret), role=s.Role(role),
            )
            session.add(row)
            session.flush()
            return s.ApiKey.model_validate(row), secret

    @idempotent
    def authenticate(self, secret: str) -> s.ApiKey | None:
        """The live key whose hash matches ``secret``, or None."""
        with self.session() as session:
            row = session.scalars(
                select(t.ApiKeyRow).where(t.ApiKeyRow.key_hash == hash_key(secret))
            ).first()
            if row is None or row.revoked:
                return None
            return s.ApiKey.model_validate(row)


def _check_method_format(
    method: s.TrainingMethod, field: str, data: t.DatasetRow
) -> None:
    """Raise InvalidArgument (``field="method"``) when ``method`` cannot train on the
    format of dataset ``data`` (given as the job's ``field``)."""
    preference = data.format in s.PREFERENCE_FORMATS
    if method == s.TrainingMethod.dpo and not preference:
        needs = sorted(s.PREFERENCE_FORMATS)
        what = "preference pairs"
    elif method == s.TrainingMethod.sft and preference:
        needs = sorted(set(s.DatasetFormat) - s.PREFERENCE_FORMATS)
        what = "chats (dpo trains on preference pairs)"
    else:
        return
    raise InvalidArgument(
        f"method {method} trains on {what}: {field} {data.id!r} has format {data.format}, "
        f"{method} needs one of {', '.join(needs)}",
        field="method",
    )


def _best_checkpoints(
    rows: Sequence[t.JobCheckpointRow], keep: int
) -> list[t.JobCheckpointRow]:
    """The ``keep`` best of ``rows`` by eval loss (lowest first; ties and rows without a
    loss, which rank last, newest first) plus the newest row (highest step)."""
    ranked = sorted(rows, key=lambda r: (r.eval_loss is None, r.eval_loss or 0.0, -r.step))
    kept = ranked[:keep]
    newest = max(rows, key=lambda r: r.step, default=None)
    if newest is not None and newest not in kept:
        kept.append(newest)
    return kept


def hash_key(secret: str) -> str:
    """Hex SHA-256 of an API key."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _integrity_error(exc: IntegrityError) -> CatalogError:
    text = str(exc.orig)
    code = getattr(exc.orig, "sqlstate", None)
    if code == "23503" or "FOREIGN KEY" in text.upper():
        if "DELETE" in str(exc.statement).upper() or "is still referenced" in text:
            return Conflict("row is still referenced by other rows", details=text)
        return InvalidArgument("references a row that does not exist", details=text)
    return Conflict("already exists (unique constraint)", details=text)

