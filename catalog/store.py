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
import re
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, ValidationError
from sqlalchemy import (
    Engine,
    String,
    and_,
    bindparam,
    case,
    create_engine,
    delete,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog import schemas as s
from catalog import tables as t
from catalog.config import ADMIN_USER, database_url
from catalog.errors import (
    CatalogError,
    Conflict,
    InvalidArgument,
    InvalidTransition,
    NotFound,
    SchemaOutOfDate,
    Unavailable,
)
from catalog.lengths import check_lengths
from catalog.lifecycle import (
    BATCH_TRANSITIONS,
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


#: SQL conditions (a name, since ``list`` is a method of :class:`Repo`).
Conditions = list[Any]


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
        tag_kind: s.RowKind | None = None,
        item_column: str | None = None,
        public_column: str | None = None,
    ):
        self.store = store
        self.row = row
        self.read = read
        self.filters = frozenset(filters) | {"user_id"}
        self.updatable = frozenset(updatable)
        self.name = row.__tablename__
        self.tag_kind = tag_kind
        self.item_column = item_column
        self.public_column = public_column
        self.soft_deleted = hasattr(row, "deleted_at")

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
        row_id = values.pop("id", None) or getattr(request, "id", None) or t.new_id(
            self.row.id_prefix)
        row = self.row(id=row_id, **values)
        session.add(row)
        session.flush()
        return row

    def create(self, request: BaseModel, **extra: Any) -> R:
        """Insert one row from a ``*Create`` model; ``extra`` sets other columns (``id``
        chooses the row's id). Raises Conflict or InvalidArgument."""
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
        tag: str | None = None,
        project_id: str | None = None,
        visible_to: str | None = None,
        favorite_of: str | None = None,
        prediction_status: str | None = None,
        include_deleted: bool = False,
        **filters: Any,
    ) -> s.Page[R]:
        """A page of rows, newest first, with the total matching the filters.

        Filters are equality on the columns named in ``filters`` (``None`` values
        are ignored), and, where the table has them:

        - ``tag``: rows carrying a tag of that name (tagged tables);
        - ``project_id``: rows placed in that project (images, videos);
        - ``visible_to``: rows of that user or public ones (tables with a public flag),
          instead of an owner filter;
        - ``favorite_of``: that user's favourites (styles and themes);
        - ``prediction_status``: rows whose linked prediction has that status;
        - soft-deleted rows are left out unless ``include_deleted``.

        Raises InvalidArgument for an unknown filter or bad cursor.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be 1..{MAX_PAGE_SIZE}", field="page_size")
        conds = []
        for key, value in filters.items():
            if key not in self.filters:
                raise InvalidArgument(f"cannot filter {self.name} by {key!r}", field=key)
            if value is not None:
                conds.append(getattr(self.row, key) == _plain(value))
        conds += self._related(tag=tag, project_id=project_id, visible_to=visible_to,
                               favorite_of=favorite_of, prediction_status=prediction_status)
        if self.soft_deleted and not include_deleted:
            conds.append(self.row.deleted_at.is_(None))  # type: ignore[attr-defined]
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
        """Delete one row (and the tags and favourites on it). Raises NotFound, or
        Conflict while other rows reference it."""
        with self.store.session() as session:
            session.delete(self._get_row(session, row_id))
            if self.tag_kind is not None:
                for table in (t.TaggingRow, t.FavoriteRow):
                    session.execute(delete(table).where(
                        table.target_kind == self.tag_kind, table.target_id == row_id))

    def _related(self, *, tag: str | None, project_id: str | None, visible_to: str | None,
                 favorite_of: str | None, prediction_status: str | None) -> Conditions:
        """Conditions of :meth:`list`'s filters on other tables. Raises InvalidArgument
        for a filter this table cannot take."""
        conds: Conditions = []

        def refuse(field: str) -> InvalidArgument:
            return InvalidArgument(f"cannot filter {self.name} by {field}", field=field)

        if tag is not None:
            if self.tag_kind is None:
                raise refuse("tag")
            tg, tag_row = t.TaggingRow, t.TagRow
            conds.append(self.row.id.in_(
                select(tg.target_id).join(tag_row, tag_row.id == tg.tag_id)
                .where(tg.target_kind == self.tag_kind, tag_row.name == tag)))
        if project_id is not None:
            if self.item_column is None:
                raise refuse("project")
            item = t.ProjectItemRow
            conds.append(self.row.id.in_(select(getattr(item, self.item_column)).where(
                item.project_id == project_id)))
        if visible_to is not None:
            if self.public_column is None:
                raise refuse("visible_to")
            conds.append(or_(getattr(self.row, "user_id") == visible_to,  # noqa: B009
                             getattr(self.row, self.public_column).is_(True)))
        if favorite_of is not None:
            if self.tag_kind is None or not self.tag_kind.takes_favorites:
                raise refuse("favorite")
            fav = t.FavoriteRow
            conds.append(self.row.id.in_(select(fav.target_id).where(
                fav.target_kind == self.tag_kind, fav.user_id == favorite_of)))
        if prediction_status is not None:
            if not hasattr(self.row, "prediction_id"):
                raise refuse("status")
            pred = t.PredictionRow
            conds.append(self.row.prediction_id.in_(
                select(pred.id).where(pred.status == prediction_status)))
        return conds


class UsageRepo(Repo[s.UsageRecord]):
    """:class:`Repo` of usage records whose ``delete`` also takes the record out of its
    hourly rollup (:class:`catalog.tables.UsageRollupRow`), so the summaries keep
    agreeing with the records."""

    def delete(self, row_id: str) -> None:
        """Delete one usage record and subtract it from its rollup row (removed when it
        counts no request any more). Raises NotFound."""
        r = t.UsageRollupRow
        with self.store.session() as session:
            row = self._get_row(session, row_id, lock=True)
            key = _rollup_key({c: getattr(row, c) for c in _ROLLUP_SOURCE})
            where = tuple(getattr(r, c) == v for c, v in zip(t.ROLLUP_KEYS, key, strict=True))
            costed = row.cost_usd is not None
            session.execute(update(r).where(*where).values(
                requests=r.requests - 1, prompt_tokens=r.prompt_tokens - row.prompt_tokens,
                completion_tokens=r.completion_tokens - row.completion_tokens,
                cost_usd=r.cost_usd - (row.cost_usd or 0.0),
                costed_requests=r.costed_requests - int(costed),
                energy_kwh=r.energy_kwh - row.energy_kwh,
                emissions_kg=r.emissions_kg - row.emissions_kg,
            ))
            session.execute(delete(r).where(*where, r.requests <= 0))
            session.delete(row)


#: Columns of a batch that :meth:`Repo.update` and :meth:`CatalogStore.transition_batch`
#: may set (its status and status times move by transitions only).
BATCH_UPDATABLE = (
    "ray_job_id", "output_file_id", "error_file_id", "errors", "request_total",
    "request_completed", "request_failed", "prompt_tokens", "completion_tokens",
    "energy_kwh", "emissions_kg",
)


class BatchRepo(Repo[s.Batch]):
    """:class:`Repo` of batches: a ``BatchCreate``'s ``metadata`` goes to the
    ``batch_metadata`` column (``metadata`` is SQLAlchemy's own attribute)."""

    def _insert(self, session: Session, request: BaseModel, **extra: Any) -> Any:
        values = request.model_dump(mode="json", exclude={"id", "metadata"})
        values = {k: v for k, v in values.items() if hasattr(self.row, k)}
        values["batch_metadata"] = getattr(request, "metadata", None)
        values.update(extra)
        row = self.row(id=t.new_id(self.row.id_prefix), **values)
        session.add(row)
        session.flush()
        return row


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
        # text too long for its column: InvalidArgument naming it, on every dialect
        event.listen(self._sessions, "before_flush", check_lengths)
        self.models = Repo(
            self, t.ModelRow, s.Model,
            filters=("kind", "name", "version", "base_model_id", "training_job_id",
                     "merged_from_id", "published"),
            updatable=("description", "published", "metrics", "config", "path", "size_bytes"),
            public_column="published",
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
            updatable=("output", "files", "provider_prediction_id", "cost_usd", "retry_count"),
        )
        media_meta = ("title", "caption", "alt_text", "is_public", "is_favorite",
                      "deleted_at", "purged_at")
        self.images = Repo(
            self, t.ImageRow, s.Image,
            filters=("model", "provider", "prediction_id", "is_favorite", "is_public"),
            updatable=("files", "width", "height", *media_meta),
            tag_kind=s.RowKind.image, item_column="image_id", public_column="is_public",
        )
        self.source_images = Repo(
            self, t.SourceImageRow, s.SourceImage, filters=("purpose", "format"),
            updatable=("title", "description", "purpose", "is_public", "deleted_at",
                       "purged_at"),
            tag_kind=s.RowKind.source_image, public_column="is_public",
        )
        self.image_edits = Repo(
            self, t.ImageEditRow, s.ImageEdit,
            filters=("kind", "image_id", "source_image_id", "prediction_id"),
            updatable=("files", "deleted_at", "purged_at"),
        )
        self.videos = Repo(
            self, t.VideoRow, s.Video,
            filters=("model", "provider", "prediction_id", "is_favorite", "is_public"),
            updatable=("files", "thumbnail", *media_meta),
            tag_kind=s.RowKind.video, item_column="video_id", public_column="is_public",
        )
        self.prompt_helpers = Repo(
            self, t.PromptHelperRow, s.PromptHelper,
            filters=("name", "category", "is_builtin", "is_public", "forked_from_id"),
            updatable=("name", "description", "category", "is_public"),
            tag_kind=s.RowKind.prompt_helper, public_column="is_public",
        )
        self.theme_helpers = Repo(
            self, t.ThemeHelperRow, s.ThemeHelper,
            filters=("name", "category", "is_builtin", "is_public", "is_featured",
                     "is_active", "forked_from_id"),
            updatable=("name", "description", "category", "is_public", "is_featured",
                       "is_active"),
            tag_kind=s.RowKind.theme_helper, public_column="is_public",
        )
        self.tags = Repo(self, t.TagRow, s.Tag, filters=("name",), updatable=("name",))
        self.projects = Repo(
            self, t.ProjectRow, s.Project, filters=("slug", "is_featured", "is_published"),
            updatable=("name", "description", "is_published", "is_featured"),
            public_column="is_published",
        )
        self.project_items = Repo(
            self, t.ProjectItemRow, s.ProjectItem,
            filters=("project_id", "image_id", "video_id"), updatable=("position",),
        )
        self.usage = UsageRepo(self, t.UsageRow, s.UsageRecord,
                               filters=("model", "adapter", "kind", "model_id", "api_key_id"))
        self.carbon = Repo(
            self, t.CarbonRow, s.CarbonRecord, filters=("source", "training_job_id", "model_id")
        )
        self.api_keys = Repo(self, t.ApiKeyRow, s.ApiKey, filters=("role", "scope", "job_id"),
                             updatable=("rpm_limit", "tpm_limit", "token_budget"))
        self.batches = BatchRepo(
            self, t.BatchRow, s.Batch,
            filters=("status", "endpoint", "input_file_id", "api_key_id", "ray_job_id"),
            updatable=BATCH_UPDATABLE,
        )
        #: the tables whose rows hold stored files the retention purge removes, by name
        self._purgeable: dict[str, Repo[Any]] = {
            r.name: r for r in (self.images, self.image_edits, self.videos, self.source_images)}
        self._repos: dict[type[BaseModel], Repo[Any]] = {
            repo.read: repo for repo in vars(self).values() if isinstance(repo, Repo)
        }
        # the statements of record_usage, built once
        usage, rollups = t.UsageRow.__table__, t.UsageRollupRow.__table__
        self._usage_columns = [c.name for c in usage.columns]
        self._usage_insert = (
            self._insert_many(usage, self._usage_columns)
            .on_conflict_do_nothing(index_elements=["id"]).returning(usage.c.id))
        self._rollup_columns = [*t.ROLLUP_KEYS, *t.ROLLUP_SUMS]
        upsert = self._insert_many(rollups, self._rollup_columns)
        self._rollup_upsert = upsert.on_conflict_do_update(
            index_elements=list(t.ROLLUP_KEYS),
            set_={c: rollups.c[c] + upsert.excluded[c] for c in t.ROLLUP_SUMS})

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
        except DataError as exc:
            # a value the database cannot hold (too long for its column, a NUL byte in
            # PostgreSQL text): the caller's input, so 422, and nothing written
            session.rollback()
            raise InvalidArgument(f"a value the database cannot store: {exc.orig}") from exc
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

    # ----------------------------------------------------------------- training jobs

    def create_training_job(
        self, request: s.TrainingJobCreate, *, job_token_id: str | None = None,
    ) -> s.TrainingJob:
        """Insert a pending job after checking its base model and datasets exist and that
        the datasets' format suits its method: dpo trains on preference pairs
        (:data:`catalog.schemas.PREFERENCE_FORMATS`), sft on chats
        (:data:`~catalog.schemas.CHAT_FORMATS`); batch files
        (:data:`~catalog.schemas.BATCH_FORMATS`) train nothing.

        ``job_token_id``: a live, unbound job token (:meth:`create_job_token`); the job
        is filed for the token's user and the token is bound to it, in this transaction.

        Raises:
            InvalidArgument: a missing reference (``field`` names it), a dataset or eval
                dataset whose format the method cannot train on (``field="method"``, the
                message names the formats the method needs), or a ``job_token_id`` that
                is no live job token or already registered a job (``field="job_token_id"``).
                Nothing is written.
        """
        with self.session() as session:
            token = _lock_job_token(session, job_token_id) if job_token_id else None
            if token is not None:
                request = request.model_copy(update={"user_id": token.user_id})
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
            if token is not None:
                token.job_id = row.id
            return s.TrainingJob.model_validate(row)

    @idempotent
    def transition_job(
        self, job_id: str, status: s.JobStatus | str, *, error_message: str | None = None,
        **fields: Any,
    ) -> s.TrainingJob:
        """Move a job to ``status`` (see :mod:`catalog.lifecycle`) and log an event.

        Sets ``started_at`` on entering running and ``completed_at`` on a terminal
        status. ``fields`` may set the job's updatable columns in the same
        transaction. A move to the current status writes nothing, so a retried call
        (its first answer lost while the actor restarted) is harmless. Raises NotFound,
        InvalidTransition (nothing written).
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
            _revoke_job_tokens(session, row.id)
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
    def list_metrics(self, job_id: str, *, after_step: int | None = None) -> list[s.MetricPoint]:
        """A job's metric points in step order; with ``after_step``, only those at a
        step above it (a live stream's next read). Raises NotFound."""
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            where = [t.JobMetricRow.job_id == job_id]
            if after_step is not None:
                where.append(t.JobMetricRow.step > after_step)
            rows = session.scalars(
                select(t.JobMetricRow).where(*where)
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
            _append_event(session, t.JobEventRow.job_id, job_id, event)

    @idempotent
    def list_events(self, job_id: str, *, after: int = 0, limit: int = 1000) -> list[dict]:
        """Events with sequence number > ``after``.

        Returns ``[{"seq", "level", "message", "created_at"}]``, oldest first.
        """
        with self.session() as session:
            self.training_jobs._get_row(session, job_id)
            return _events_after(session, t.JobEventRow.job_id, job_id, after, limit)

    # ----------------------------------------------------------------- predictions

    @idempotent
    def transition_prediction(
        self, prediction_id: str, status: s.PredictionStatus | str, *,
        error_message: str | None = None, **fields: Any,
    ) -> s.Prediction:
        """Move a prediction along Replicate's lifecycle (see :mod:`catalog.lifecycle`).

        Sets ``started_at`` on processing, ``completed_at`` and ``duration_s`` on a
        terminal status. A move to the current status changes only ``fields`` (to the
        same values when retried), so a repeated call is harmless. Raises NotFound,
        InvalidTransition (nothing written).
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
        """Insert a batch of usage records in one transaction; returns every record's id
        (the caller's, or a new one), in order.

        Records whose ``id`` is already stored (a retried batch) or repeated in the batch
        are skipped, so a batch written twice is stored once. The records go in as one
        multi-row ``INSERT ... ON CONFLICT (id) DO NOTHING RETURNING id`` per
        :data:`USAGE_CHUNK` records (sorted by id, so concurrent batches that share ids
        wait on each other in one order and never deadlock); only the rows it inserted
        are added to the hourly rollups (:class:`catalog.tables.UsageRollupRow`), upserted
        in the same transaction in sorted key order. A record without ``created_at`` is
        stamped with the time of the write.
        """
        now = t.utcnow()
        ids = [r.id or t.new_id(t.UsageRow.id_prefix) for r in records]
        rows: dict[str, dict[str, Any]] = {}
        for row_id, r in zip(ids, records, strict=True):
            if row_id not in rows:
                values = r.model_dump(exclude={"id", "created_at"})
                values.update(id=row_id, created_at=r.created_at or now,
                              total_tokens=r.prompt_tokens + r.completion_tokens)
                rows[row_id] = values
        ordered = [rows[row_id] for row_id in sorted(rows)]
        with self.session() as session:
            inserted: list[dict[str, Any]] = []
            for start in range(0, len(ordered), USAGE_CHUNK):
                chunk = ordered[start:start + USAGE_CHUNK]
                new = set(session.execute(
                    self._usage_insert, self._many_params(chunk, self._usage_columns)
                ).scalars())
                inserted.extend(v for v in chunk if v["id"] in new)
            if inserted:
                self._add_to_rollups(session, inserted)
        return ids

    def _insert_many(self, table: Any, columns: Sequence[str]) -> Any:
        """The dialect's INSERT (with ``on_conflict_do_*``) of many rows of ``columns``
        in one statement, run with :meth:`_many_params` of the rows.

        PostgreSQL: ``INSERT ... SELECT * FROM unnest(:col1, :col2, ...)``, one array
        per column. The statement stays short, so psycopg converts its placeholders once
        and caches them (it re-parses a multi-row VALUES statement, whose length grows
        with the rows, on every execution: ~40% of the time of a 500-row batch), and the
        arrays travel in binary. Values too long for a column are refused, as by a plain
        INSERT. SQLite: a plain INSERT run with a list of rows, which SQLAlchemy sends as
        multi-row VALUES ("insertmanyvalues", up to 1000 rows a statement).
        """
        if self.engine.dialect.name == "postgresql":
            # arrays of unbounded strings: an explicit cast to VARCHAR(n)[] would truncate
            # a longer value silently, where the INSERT's own cast refuses it
            arrays = [bindparam(c, type_=ARRAY(
                String() if isinstance(table.c[c].type, String) else table.c[c].type))
                for c in columns]
            rows = select(func.unnest(*arrays).table_valued(*columns).render_derived())
            return pg_insert(table).from_select(list(columns), rows)
        return sqlite_insert(table)

    def _many_params(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
        """The parameters of an :meth:`_insert_many` statement for ``rows``."""
        if self.engine.dialect.name == "postgresql":
            return {c: [r[c] for r in rows] for c in columns}
        return rows

    def _add_to_rollups(self, session: Session, rows: Sequence[dict[str, Any]]) -> None:
        """Add newly inserted usage rows (column dicts) to their hourly rollup rows: one
        ``INSERT ... ON CONFLICT DO UPDATE SET col = col + excluded.col`` over the
        groups, in sorted key order (so concurrent batches lock rollup rows in one order
        and never deadlock)."""
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for v in rows:
            acc = sums.setdefault(_rollup_key(v), [0, 0, 0, 0.0, 0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += v["prompt_tokens"]
            acc[2] += v["completion_tokens"]
            if v["cost_usd"] is not None:
                acc[3] += v["cost_usd"]
                acc[4] += 1
            acc[5] += v["energy_kwh"]
            acc[6] += v["emissions_kg"]
        groups = [dict(zip(t.ROLLUP_KEYS, key, strict=True))
                  | dict(zip(t.ROLLUP_SUMS, sums[key], strict=True)) for key in sorted(sums)]
        session.execute(self._rollup_upsert, self._many_params(groups, self._rollup_columns))

    @idempotent
    def usage_summary(
        self, group_by: s.UsageGroupBy = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
        api_key_id: str | None = None,
    ) -> s.UsageSummary:
        """Requests, tokens, cost, energy (kWh) and emissions (kg CO2eq) of the usage
        records created in ``[since, until)``, grouped by ``group_by``, optionally of one
        user and/or one API key.

        Group keys: ``user`` the user id; ``key`` the API key id; ``model`` the ``model``
        name (the base model, or the media provider's model); ``adapter`` the ``model_id``
        of records with an adapter (their adapter name when they have no model id),
        records without an adapter under null; ``day`` YYYY-MM-DD; ``month`` YYYY-MM
        (UTC). ``cost_usd`` sums the records with a cost (null when none has one).

        Whole hours are read from the hourly rollups, so the time taken does not grow with
        the number of records; only the partial hours at the ends of a period that does
        not start or end on the hour are read from the records themselves.

        Raises:
            InvalidArgument: an unknown ``group_by``, or a naive ``since``/``until``.
        """
        if group_by not in get_args(s.UsageGroupBy):
            raise InvalidArgument(
                f"group_by must be one of {', '.join(get_args(s.UsageGroupBy))}",
                field="group_by")
        _check_aware(since=since, until=until)

        def key(c: _UsageColumns) -> tuple[Any, ...]:
            if group_by in ("day", "month"):
                return (self._period(c.time, group_by),)
            if group_by == "adapter":
                return (case((c.adapter.is_not(None), func.coalesce(c.model_id, c.adapter)),
                             else_=None),)
            return ({"user": c.user_id, "key": c.api_key_id, "model": c.model}[group_by],)

        with self.session() as session:
            groups = self._usage_sums(session, key, since=since, until=until,
                                      user_id=user_id, api_key_id=api_key_id)
        rows = [_summary_row(k[0], v) for k, v in sorted(groups.items(), key=_key_order)]
        total = _summary_row(None, _UsageSums.total(groups.values()))
        return s.UsageSummary(group_by=group_by, since=since, until=until, rows=rows,
                              total=total)

    def _usage_sums(
        self, session: Session, key: Callable[[_UsageColumns], tuple[Any, ...]], *,
        since: datetime | None, until: datetime | None, user_id: str | None = None,
        api_key_id: str | None = None,
    ) -> dict[tuple[Any, ...], _UsageSums]:
        """Usage in ``[since, until)`` summed per ``key`` (SQL expressions over
        :class:`_UsageColumns`): whole hours from the rollups, partial hours at the ends
        from the records (:func:`_usage_segments`)."""
        out: dict[tuple[Any, ...], _UsageSums] = {}
        for cols, lo, hi in _usage_segments(since, until):
            keys = key(cols)
            conds = _within(cols.time, lo, hi)
            if user_id is not None:
                conds.append(cols.user_filter == user_id)
            if api_key_id is not None:
                conds.append(cols.api_key_filter == api_key_id)
            stmt = select(*keys, *cols.measures).where(*conds).group_by(*keys)
            for row in session.execute(stmt):
                k, measures = tuple(row[:len(keys)]), row[len(keys):]
                out.setdefault(k, _UsageSums()).add(*measures)
        return out

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
        self, group_by: s.CarbonGroupBy = "model", *, since: datetime | None = None,
        until: datetime | None = None, user_id: str | None = None,
    ) -> s.CarbonSummary:
        """Energy (kWh) and emissions (kg CO2eq) created in ``[since, until)``, optionally
        of one user: seed 002's summary (training vs inference, ``by_model``) plus
        ``rows`` grouped by model, job, day, month or source.

        Training is carbon records of source ``training``; inference is the usage
        records (read from the hourly rollups for whole hours, see
        :meth:`usage_summary`) and carbon records of other sources.
        ``num_training_jobs`` counts the distinct jobs of the training records;
        ``num_inference_requests`` the usage records. ``by_model`` puts usage under its
        ``model_id`` (a record without one under its ``model`` name, e.g. a provider's
        model) and carbon records under theirs, with names from the models table, largest
        emissions first; ``percentage`` is each one's share of the total. In ``rows``,
        usage groups under its ``model_id`` (else its ``model`` name), its day or month,
        or source ``inference``; grouped by job, rows hold carbon records only.

        Raises:
            InvalidArgument: an unknown ``group_by``, or a naive ``since``/``until``.
        """
        if group_by not in get_args(s.CarbonGroupBy):
            raise InvalidArgument("group_by must be model, job, day, month or source",
                                  field="group_by")
        _check_aware(since=since, until=until)
        c = t.CarbonRow
        conds = _within(c.created_at, since, until)
        if user_id is not None:
            conds.append(c.user_id == user_id)
        group_key = {"model": c.model_id, "job": c.training_job_id, "source": c.source}.get(
            group_by)
        if group_key is None:
            group_key = self._period(c.created_at, group_by)
        periodic = group_by in ("day", "month")

        def usage_key(u: _UsageColumns) -> tuple[Any, ...]:
            keys = (u.model_id, case((u.model_id.is_(None), u.model), else_=None))
            return (*keys, self._period(u.time, group_by)) if periodic else keys

        grouped: dict[str | None, list[float]] = {}
        by_model: dict[tuple[str | None, str | None], list[float]] = {}
        training = [0.0, 0.0]  # kWh, kg
        inference = [0.0, 0.0]
        with self.session() as session:
            stmt = select(
                group_key, c.source, c.model_id, func.sum(c.energy_kwh),
                func.sum(c.emissions_kg), func.count(),
            ).where(*conds).group_by(group_key, c.source, c.model_id)
            for k, source, model_id, kwh, kg, n in session.execute(stmt):
                kwh, kg = float(kwh or 0.0), float(kg or 0.0)
                _add(grouped, k, kwh, kg, n)
                _add(by_model, (model_id, None), kwh, kg)
                split = training if source == s.CarbonSource.training else inference
                split[0] += kwh
                split[1] += kg
            num_jobs = session.scalar(select(func.count(func.distinct(c.training_job_id))).where(
                *conds, c.source == s.CarbonSource.training))
            usage = self._usage_sums(session, usage_key, since=since, until=until,
                                     user_id=user_id)
            requests = 0
            for (model_id, name, *period), sums in usage.items():
                requests += sums.requests
                inference[0] += sums.energy_kwh
                inference[1] += sums.emissions_kg
                _add(by_model, (model_id, name), sums.energy_kwh, sums.emissions_kg)
                if group_by != "job":
                    k = period[0] if periodic else (
                        "inference" if group_by == "source" else model_id or name)
                    _add(grouped, k, sums.energy_kwh, sums.emissions_kg, sums.requests)
            ids = [m for m, _ in by_model if m is not None]
            names: dict[str, str] = {
                model_id: name for model_id, name in session.execute(
                    select(t.ModelRow.id, t.ModelRow.name).where(t.ModelRow.id.in_(ids)))
            } if ids else {}
        total_kg = sum(v[1] for v in by_model.values())
        models = [
            s.CarbonByModel(
                model_id=model_id, model_name=names.get(model_id) if model_id else name,
                energy_kwh=v[0], emissions_kg=v[1],
                percentage=min(100.0, 100.0 * v[1] / total_kg) if total_kg > 0 else 0.0,
            )
            for (model_id, name), v in sorted(
                by_model.items(), key=lambda kv: (-kv[1][1], str(kv[0][0]), str(kv[0][1])))
        ]
        rows = [
            s.CarbonSummaryRow(key=k, energy_kwh=v[0], emissions_kg=v[1], records=int(v[2]))
            for k, v in sorted(grouped.items(), key=_key_order)
        ]
        return s.CarbonSummary(
            total_emissions_kg=training[1] + inference[1],
            training_emissions_kg=training[1],
            inference_emissions_kg=inference[1],
            total_energy_kwh=training[0] + inference[0],
            num_training_jobs=num_jobs or 0,
            num_inference_requests=requests,
            period={"since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None},
            by_model=models,
            group_by=group_by,
            rows=rows,
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
            session.add(_helper_version(row.id, 1, request))
            session.flush()
            return _validated(s.PromptHelper, row)

    def add_prompt_helper_version(
        self, helper_id: str, text: str, placement: s.PromptPlacement | str | None = None, *,
        negative_text: str | None = None, placements: dict[str, str] | None = None,
        style_presets: dict[str, str] | None = None, notes: str | None = None,
    ) -> s.PromptHelperVersion:
        """Add the next version of a helper and make it current; the counter increments
        atomically in SQL (seed 001: "enforce atomic version increments"), so two
        concurrent updates get two numbers.

        ``placement`` defaults to the current version's; ``placements`` and
        ``style_presets`` default to empty. Raises NotFound, InvalidArgument.
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
            spec = _validated(s.HelperText, {
                "text": text, "negative_text": negative_text,
                "placement": placement or s.PromptPlacement.append,
                "placements": placements or {}, "style_presets": style_presets or {},
                "notes": notes})
            row = _helper_version(helper_id, version, spec)
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
        """Copy a helper's current version into a new private helper (version 1) that
        remembers its origin in ``forked_from_id`` (seed 001 ``PromptHelper.fork``); later
        versions of either do not change the other. Raises NotFound, Conflict (name
        taken)."""
        with self.session() as session:
            src = self.prompt_helpers._get_row(session, helper_id)
            current = session.scalars(select(t.PromptHelperVersionRow).where(
                t.PromptHelperVersionRow.helper_id == helper_id,
                t.PromptHelperVersionRow.version == src.current_version,
            )).one()
            row = t.PromptHelperRow(
                id=t.new_id("ph"), name=name, description=src.description,
                category=src.category, is_builtin=False, is_public=False, current_version=1,
                forked_from_id=src.id, user_id=user_id,
            )
            session.add(row)
            session.flush()
            session.add(_helper_version(row.id, 1, s.PromptHelperVersion.model_validate(current)))
            session.flush()
            return _validated(s.PromptHelper, row)

    def create_theme_helper(self, request: s.ThemeHelperCreate) -> s.ThemeHelper:
        """Create a theme and its version 1 in one transaction. Raises Conflict on name."""
        with self.session() as session:
            row = self.theme_helpers._insert(session, request, current_version=1)
            session.add(_theme_version(row.id, 1, request))
            session.flush()
            return _validated(s.ThemeHelper, row)

    def add_theme_helper_version(
        self, theme_id: str, *, text: str | None = None, negative_text: str | None = None,
        prompt_helper_ids: Sequence[str] = (), notes: str | None = None,
    ) -> s.ThemeHelperVersion:
        """Add the next version of a theme (its text and ordered recommended styles) and
        make it the theme's current content; numbered atomically like helper versions.
        Raises NotFound, InvalidArgument."""
        spec = _validated(s.ThemeText, {
            "text": text, "negative_text": negative_text,
            "prompt_helper_ids": list(prompt_helper_ids), "notes": notes})
        with self.session() as session:
            theme = t.ThemeHelperRow
            version = session.scalar(
                update(theme).where(theme.id == theme_id)
                .values(current_version=theme.current_version + 1, updated_at=t.utcnow(),
                        **spec.model_dump())
                .returning(theme.current_version))
            if version is None:
                raise NotFound(f"theme_helpers {theme_id!r} not found", field="id")
            row = _theme_version(theme_id, version, spec)
            session.add(row)
            session.flush()
            return s.ThemeHelperVersion.model_validate(row)

    @idempotent
    def get_theme_helper_version(
        self, theme_id: str, version: int | None = None
    ) -> s.ThemeHelperVersion:
        """A theme's ``version`` (default: current). Raises NotFound."""
        with self.session() as session:
            theme = self.theme_helpers._get_row(session, theme_id)
            row = session.scalars(select(t.ThemeHelperVersionRow).where(
                t.ThemeHelperVersionRow.theme_id == theme_id,
                t.ThemeHelperVersionRow.version == (version or theme.current_version),
            )).first()
            if row is None:
                raise NotFound(f"theme {theme_id!r} has no version {version}", field="version")
            return s.ThemeHelperVersion.model_validate(row)

    @idempotent
    def list_theme_helper_versions(self, theme_id: str) -> list[s.ThemeHelperVersion]:
        """Every version of a theme, oldest first. Raises NotFound."""
        with self.session() as session:
            self.theme_helpers._get_row(session, theme_id)
            rows = session.scalars(select(t.ThemeHelperVersionRow).where(
                t.ThemeHelperVersionRow.theme_id == theme_id
            ).order_by(t.ThemeHelperVersionRow.version))
            return [s.ThemeHelperVersion.model_validate(r) for r in rows]

    def fork_theme_helper(
        self, theme_id: str, *, name: str, user_id: str | None = None
    ) -> s.ThemeHelper:
        """Copy a theme's current content into a new private theme (version 1) that
        remembers its origin. Raises NotFound, Conflict (name taken)."""
        with self.session() as session:
            src = self.theme_helpers._get_row(session, theme_id)
            content = s.ThemeText(text=src.text, negative_text=src.negative_text,
                                  prompt_helper_ids=list(src.prompt_helper_ids),
                                  notes=src.notes)
            row = t.ThemeHelperRow(
                id=t.new_id("th"), name=name, description=src.description,
                category=src.category, is_builtin=False, is_public=False, is_featured=False,
                is_active=True, current_version=1, forked_from_id=src.id, user_id=user_id,
                **content.model_dump(),
            )
            session.add(row)
            session.flush()
            session.add(_theme_version(row.id, 1, content))
            session.flush()
            return _validated(s.ThemeHelper, row)

    # ----------------------------------------------------------------- favourites, tags

    @idempotent
    def set_favorite(self, user_id: str, target_kind: s.RowKind, target_id: str,
                     favorite: bool = True) -> bool:
        """Mark (or unmark) a style or theme as ``user_id``'s favourite; doing it twice
        changes nothing. Returns whether it is a favourite now. Raises NotFound for an
        unknown target; ValueError for a kind that takes no favourites."""
        if not s.RowKind(target_kind).takes_favorites:
            raise ValueError(f"{target_kind} rows take no favourites")
        repo = self._tag_repos()[target_kind]
        fav = t.FavoriteRow
        with self.session() as session:
            repo._get_row(session, target_id)
            where = (fav.user_id == user_id, fav.target_kind == target_kind,
                     fav.target_id == target_id)
            exists = session.scalar(select(fav.id).where(*where))
            if favorite and exists is None:
                session.add(fav(id=t.new_id("fav"), user_id=user_id, target_kind=target_kind,
                                target_id=target_id))
            elif not favorite and exists is not None:
                session.execute(delete(fav).where(*where))
            return favorite

    @idempotent
    def set_tags(self, target_kind: s.RowKind, target_id: str, names: Sequence[str],
                 user_id: str | None) -> list[str]:
        """Make ``names`` exactly the tags on one row: tags of ``user_id`` that do not
        exist yet are created (seed 001's TagImage, one model for every entity), tags not
        named are taken off (the tags themselves stay). Returns the sorted names.

        Raises:
            InvalidArgument: a name breaks :class:`catalog.schemas.TagCreate`'s rule
                (field ``tags``).
            NotFound: no such row.
        """
        try:
            wanted = sorted({s.TagCreate(name=n.strip()).name for n in names})
        except ValidationError as exc:
            raise InvalidArgument(f"tags: {exc.errors()[0]['msg']}", field="tags") from exc
        repo = self._tag_repos()[target_kind]
        tag, tg = t.TagRow, t.TaggingRow
        with self.session() as session:
            repo._get_row(session, target_id)
            owner = tag.user_id.is_(None) if user_id is None else tag.user_id == user_id
            known = dict(session.execute(
                select(tag.name, tag.id).where(owner, tag.name.in_(wanted))).tuples().all())
            for name in wanted:
                if name not in known:
                    known[name] = t.new_id("tag")
                    session.add(tag(id=known[name], name=name, user_id=user_id))
            session.flush()
            wanted_ids = {known[n] for n in wanted}
            where = (tg.target_kind == target_kind, tg.target_id == target_id)
            have = set(session.scalars(select(tg.tag_id).where(*where)))
            session.execute(delete(tg).where(*where, tg.tag_id.notin_(wanted_ids)))
            for tag_id in wanted_ids - have:
                session.add(tg(id=t.new_id("tgg"), tag_id=tag_id, target_kind=target_kind,
                               target_id=target_id))
            return wanted

    def _tag_repos(self) -> dict[s.RowKind, Repo[Any]]:
        return {repo.tag_kind: repo for repo in self._repos.values() if repo.tag_kind}

    # ----------------------------------------------------------------- projects

    def create_project(self, request: s.ProjectCreate) -> s.Project:
        """Create a project; without ``slug`` the name's slug is used, made unique with
        ``-2``, ``-3``... Raises Conflict when a given ``slug`` is taken."""
        with self.session() as session:
            slug = request.slug
            if slug is None:
                base = re.sub(r"[^a-z0-9]+", "-", request.name.lower()).strip("-")[:190]
                base = base or "project"
                taken = set(session.scalars(select(t.ProjectRow.slug).where(
                    or_(t.ProjectRow.slug == base, t.ProjectRow.slug.like(f"{base}-%")))))
                slug, n = base, 1
                while slug in taken:
                    n += 1
                    slug = f"{base}-{n}"
            return _validated(s.Project, self.projects._insert(session, request, slug=slug))

    @idempotent
    def find_project(self, ref: str) -> s.Project:
        """A project by id or by slug. Raises NotFound."""
        with self.session() as session:
            row = session.scalars(select(t.ProjectRow).where(
                or_(t.ProjectRow.id == ref, t.ProjectRow.slug == ref))).first()
            if row is None:
                raise NotFound(f"project {ref!r} not found", field="project")
            return s.Project.model_validate(row)

    def add_project_item(self, project_id: str, request: s.ProjectItemCreate) -> s.ProjectItem:
        """Place an image or a video in a project, at ``position`` (default: after the
        last). Raises NotFound, Conflict (already there)."""
        item = t.ProjectItemRow
        with self.session() as session:
            self.projects._get_row(session, project_id)
            position = request.position
            if position is None:
                last = session.scalar(select(func.max(item.position)).where(
                    item.project_id == project_id))
                position = 0 if last is None else last + 1
            row = item(id=t.new_id("pit"), project_id=project_id, image_id=request.image_id,
                       video_id=request.video_id, position=position)
            session.add(row)
            session.flush()
            return s.ProjectItem.model_validate(row)

    @idempotent
    def list_project_items(self, project_id: str) -> list[s.ProjectItem]:
        """A project's live items in order (position, then when added). Raises NotFound."""
        item = t.ProjectItemRow
        with self.session() as session:
            self.projects._get_row(session, project_id)
            rows = session.scalars(
                select(item).outerjoin(t.ImageRow, t.ImageRow.id == item.image_id)
                .outerjoin(t.VideoRow, t.VideoRow.id == item.video_id)
                .where(item.project_id == project_id, t.ImageRow.deleted_at.is_(None),
                       t.VideoRow.deleted_at.is_(None))
                .order_by(item.position, item.created_at, item.id))
            return [s.ProjectItem.model_validate(r) for r in rows]

    # ----------------------------------------------------------------- retention

    @idempotent
    def media_to_purge(self, *, deleted_before: datetime | None,
                       created_before: datetime | None, limit: int = 500) -> list[PurgeItem]:
        """Rows whose files the retention purge removes: not purged yet, holding files,
        and deleted before ``deleted_before`` or created before ``created_before`` (None
        skips that rule). At most ``limit`` per table, oldest first."""
        if deleted_before is None and created_before is None:
            return []
        out: list[PurgeItem] = []
        with self.session() as session:
            for repo in self._purgeable.values():
                row = repo.row
                rules = []
                if deleted_before is not None:
                    rules.append(row.deleted_at < deleted_before)  # type: ignore[attr-defined]
                if created_before is not None:
                    rules.append(row.created_at < created_before)
                rows = session.scalars(select(row).where(
                    row.purged_at.is_(None), or_(*rules),  # type: ignore[attr-defined]
                ).order_by(row.created_at).limit(limit))
                for r in rows:
                    paths = _stored_paths(r)
                    if paths or repo is self.source_images:
                        out.append(PurgeItem(kind=repo.name, id=r.id, paths=paths))
            return out

    @idempotent
    def mark_purged(self, kind: str, row_id: str) -> None:
        """Record that a row's files are gone: ``purged_at`` now and its file list empty,
        and its prediction's too (source images keep their paths, which name nothing any
        more). Raises NotFound."""
        repo = self._purgeable[kind]
        with self.session() as session:
            row = repo._get_row(session, row_id, lock=True)
            row.purged_at = t.utcnow()
            if hasattr(row, "files"):
                row.files = []
            if getattr(row, "prediction_id", None):  # the prediction listed the same files
                session.execute(update(t.PredictionRow).where(
                    t.PredictionRow.id == row.prediction_id).values(files=[]))
            if hasattr(row, "thumbnail"):
                row.thumbnail = None

    # ----------------------------------------------------------------- API keys

    def create_api_key(
        self, user_id: str, name: str, role: s.Role | str = s.Role.user, *,
        secret: str | None = None, rpm_limit: int | None = None, tpm_limit: int | None = None,
        token_budget: int | None = None,
    ) -> tuple[s.ApiKey, str]:
        """Create a key; returns ``(record, secret)``. Only the SHA-256 of the secret is
        stored (keys are 256-bit random, so a fast hash is enough: no dictionary to
        attack). Pass ``secret`` to register a known key (the bootstrap admin key).

        ``rpm_limit`` (requests per minute), ``tpm_limit`` (tokens per minute) and
        ``token_budget`` (lifetime tokens) are the key's limits, null for none; the
        gateway enforces them. Change them with ``api_keys.update(key_id, rpm_limit=...)``.

        Raises:
            InvalidArgument: a limit below 1.
        """
        secret = secret or "gk_" + secrets.token_urlsafe(32)
        with self.session() as session:
            row = t.ApiKeyRow(
                id=t.new_id("key"), user_id=user_id, name=name, prefix=secret[:8],
                key_hash=hash_key(secret), role=s.Role(role), rpm_limit=rpm_limit,
                tpm_limit=tpm_limit, token_budget=token_budget,
            )
            session.add(row)
            session.flush()
            return _validated(s.ApiKey, row), secret

    def create_job_token(
        self, user_id: str | None = None, *, job_id: str | None = None,
        ttl_s: int = s.JOB_TOKEN_TTL_S,
    ) -> tuple[s.ApiKey, str]:
        """Mint a job token (scope ``job``, secret ``gjt_`` + 256 random bits, stored as
        its SHA-256 like every key); returns ``(record, secret)``.

        A job token registers one training job or batch (``create_training_job`` /
        ``create_batch`` with ``job_token_id``, which binds it to that job); minted with
        ``job_id`` it is bound from the start (the gateway's own submissions). It stops
        authenticating ``ttl_s`` seconds from now, and is revoked when its job reaches a
        terminal status (:meth:`transition_job`, :meth:`transition_batch`).

        Args:
            user_id: whose jobs it files; with ``job_id``, default and must be the job's
                owner (:data:`catalog.config.ADMIN_USER` for a job of no one).
            job_id: a training job or batch that has not ended, to bind it to.
            ttl_s: lifetime, s, within :data:`catalog.schemas.MIN_JOB_TOKEN_TTL_S` ..
                :data:`~catalog.schemas.MAX_JOB_TOKEN_TTL_S`.

        Raises:
            InvalidArgument: ``ttl_s`` out of bounds (``field="ttl_s"``), no ``user_id``
                or not the job's owner (``field="user_id"``). NotFound: no such job.
            InvalidTransition: the job has ended. Nothing is written.
        """
        if not s.MIN_JOB_TOKEN_TTL_S <= ttl_s <= s.MAX_JOB_TOKEN_TTL_S:
            raise InvalidArgument(
                f"ttl_s: a job token lives {s.MIN_JOB_TOKEN_TTL_S} to "
                f"{s.MAX_JOB_TOKEN_TTL_S} s, not {ttl_s}", field="ttl_s")
        secret = "gjt_" + secrets.token_urlsafe(32)
        with self.session() as session:
            if job_id is not None:
                # locked: a job ending meanwhile revokes the token after it is written
                job = (session.get(t.TrainingJobRow, job_id, with_for_update=True)
                       or session.get(t.BatchRow, job_id, with_for_update=True))
                if job is None:
                    raise NotFound(f"no training job or batch {job_id!r}", field="job_id")
                owner = job.user_id or ADMIN_USER
                if user_id is not None and user_id != owner:
                    raise InvalidArgument(f"user_id: {job_id} belongs to {owner}, not "
                                          f"{user_id}", field="user_id")
                user_id = owner
                lifecycle = (JOB_TRANSITIONS if isinstance(job, t.TrainingJobRow)
                             else BATCH_TRANSITIONS)
                if is_terminal(lifecycle, job.status):
                    raise InvalidTransition(f"{job_id} has ended ({job.status})",
                                            field="status")
            if not user_id:
                raise InvalidArgument("user_id: a job token files jobs for a user",
                                      field="user_id")
            row = t.ApiKeyRow(
                id=t.new_id("key"), user_id=user_id, name="job token", prefix=secret[:8],
                key_hash=hash_key(secret), role=s.Role.user, scope=s.KeyScope.job,
                job_id=job_id, expires_at=t.utcnow() + timedelta(seconds=ttl_s))
            session.add(row)
            session.flush()
            return _validated(s.ApiKey, row), secret

    @idempotent
    def authenticate(self, secret: str) -> s.ApiKey | None:
        """The live key whose hash matches ``secret``, or None (unknown, revoked, or a job
        token past its ``expires_at``). Its ``tokens_used`` is summed from the key's usage
        rollups in the same query (indexed by key)."""
        with self.session() as session:
            row = session.scalars(
                select(t.ApiKeyRow).where(t.ApiKeyRow.key_hash == hash_key(secret))
            ).first()
            if row is None or row.revoked or _expired(row):
                return None
            return s.ApiKey.model_validate(row)

    # ----------------------------------------------------------------- batches

    def create_batch(
        self, request: s.BatchCreate, *, user_id: str | None = None,
        api_key_id: str | None = None, ray_job_id: str | None = None,
        job_token_id: str | None = None,
    ) -> s.Batch:
        """Insert a ``validating`` batch of the input file's lines (``request_counts.total``
        = the dataset's rows), expiring ``completion_window`` (24 h) after creation, and log
        its first event.

        ``job_token_id``: a live, unbound job token (:meth:`create_job_token`); the batch
        is filed for the token's user, under that key, and the token is bound to it, in
        this transaction (``user_id`` and ``api_key_id`` are then ignored).

        Raises:
            InvalidArgument: no dataset ``input_file_id``, or one whose format is not
                ``openai_batch`` (``field="input_file_id"``); a ``job_token_id`` that is
                no live job token or already registered a job (``field="job_token_id"``).
                Nothing is written.
        """
        with self.session() as session:
            token = _lock_job_token(session, job_token_id) if job_token_id else None
            if token is not None:
                user_id, api_key_id = token.user_id, token.id
            data = session.get(t.DatasetRow, request.input_file_id)
            if data is None:
                raise InvalidArgument(f"input file {request.input_file_id!r} not found",
                                      field="input_file_id")
            if data.format != s.DatasetFormat.openai_batch:
                raise InvalidArgument(
                    f"input file {request.input_file_id!r} is a {data.format} dataset; a batch "
                    "reads request lines {custom_id, method, url, body} (format openai_batch)",
                    field="input_file_id")
            now = t.utcnow()
            row = self.batches._insert(
                session, request, status=s.BatchStatus.validating, user_id=user_id,
                api_key_id=api_key_id, ray_job_id=ray_job_id, request_total=data.num_rows,
                created_at=now, updated_at=now, expires_at=now + timedelta(hours=24))
            session.add(t.BatchEventRow(
                batch_id=row.id, message=f"batch created: {data.num_rows} lines of "
                f"{request.input_file_id} to {request.endpoint}"))
            if token is not None:
                token.job_id = row.id
            return s.Batch.model_validate(row)

    @idempotent
    def transition_batch(
        self, batch_id: str, status: s.BatchStatus | str, *, message: str | None = None,
        **fields: Any,
    ) -> s.Batch:
        """Move a batch to ``status`` (:data:`catalog.lifecycle.BATCH_TRANSITIONS`), stamp
        its ``<status>_at`` time, set ``fields`` (columns of :data:`BATCH_UPDATABLE`) and
        log a ``batch_events`` row (``message`` appended). A move to the current status
        changes only ``fields``, so a repeated call is harmless.

        Raises:
            NotFound, InvalidTransition, InvalidArgument (a field not updatable); nothing
            is written.
        """
        status = s.BatchStatus(status)
        with self.session() as session:
            row = self.batches._get_row(session, batch_id, lock=True)
            self._move_batch(session, row, status, message=message, fields=fields)
            return s.Batch.model_validate(row)

    def _move_batch(
        self, session: Session, row: t.BatchRow, status: s.BatchStatus, *,
        message: str | None, fields: dict[str, Any],
    ) -> None:
        for key in fields:
            if key not in self.batches.updatable:
                raise InvalidArgument(f"batches.{key} cannot be updated", field=key)
        changed = check_transition(BATCH_TRANSITIONS, row.status, status)
        for key, value in fields.items():
            setattr(row, key, _plain(value))
        if changed:
            row.status = status
            stamp = f"{status.value}_at"
            if hasattr(t.BatchRow, stamp) and getattr(row, stamp) is None:
                setattr(row, stamp, t.utcnow())
            if is_terminal(BATCH_TRANSITIONS, status):
                _revoke_job_tokens(session, row.id)
            level = "error" if status == s.BatchStatus.failed else "info"
            text = f"status -> {status}" + (f": {message}" if message else "")
            session.add(t.BatchEventRow(batch_id=row.id, level=level, message=text))
        row.updated_at = t.utcnow()
        session.flush()

    def claim_batch(self, batch_id: str, ray_job_id: str | None) -> s.Batch:
        """Take a ``validating`` batch to ``in_progress`` for the caller, atomically: a
        batch runs at most once. Records ``ray_job_id`` (the caller's Ray job submission
        id) when the batch has none; when it has one, the caller must present it.

        Raises:
            NotFound. InvalidTransition: the batch is not validating (``field="status"``)
                or belongs to another Ray job (``field="ray_job_id"``); nothing is written.
        """
        with self.session() as session:
            row = self.batches._get_row(session, batch_id, lock=True)
            if row.status != s.BatchStatus.validating:
                raise InvalidTransition(
                    f"batch {batch_id} is already {row.status}: a batch runs at most once",
                    field="status")
            if row.ray_job_id is not None and row.ray_job_id != ray_job_id:
                raise InvalidTransition(
                    f"batch {batch_id} belongs to Ray job {row.ray_job_id}, not {ray_job_id}",
                    field="ray_job_id")
            fields = {"ray_job_id": ray_job_id} if ray_job_id is not None else {}
            self._move_batch(session, row, s.BatchStatus.in_progress, message=None,
                             fields=fields)
            return s.Batch.model_validate(row)

    @idempotent
    def add_batch_event(self, batch_id: str, event: s.JobEvent) -> None:
        """Append a log line to a batch (same rules as :meth:`add_event`: a repeated call
        with the same time and message writes nothing). Raises NotFound."""
        with self.session() as session:
            self.batches._get_row(session, batch_id)
            _append_event(session, t.BatchEventRow.batch_id, batch_id, event)

    @idempotent
    def list_batch_events(
        self, batch_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[dict]:
        """A batch's events with sequence number > ``after``, oldest first:
        ``[{"seq", "level", "message", "created_at"}]`` (as :meth:`list_events`).
        Raises NotFound."""
        with self.session() as session:
            self.batches._get_row(session, batch_id)
            return _events_after(session, t.BatchEventRow.batch_id, batch_id, after, limit)


# --------------------------------------------------------------------------- usage sums

#: Most usage records one INSERT statement carries (:meth:`CatalogStore.record_usage`).
USAGE_CHUNK = 500


@dataclass(frozen=True)
class _UsageColumns:
    """Usage records or their hourly rollups seen through the same names: key columns
    (null where a record has none; rollups keep ``''``), the time column, the columns
    filters compare (indexed), and the summed measures in :class:`_UsageSums`' order."""

    time: Any
    user_id: Any
    api_key_id: Any
    model: Any
    model_id: Any
    adapter: Any
    user_filter: Any
    api_key_filter: Any
    measures: tuple[Any, ...]


_u, _r = t.UsageRow, t.UsageRollupRow
_RAW = _UsageColumns(
    time=_u.created_at, user_id=_u.user_id, api_key_id=_u.api_key_id, model=_u.model,
    model_id=_u.model_id, adapter=_u.adapter, user_filter=_u.user_id,
    api_key_filter=_u.api_key_id,
    measures=(func.count(), func.sum(_u.prompt_tokens), func.sum(_u.completion_tokens),
              func.sum(_u.cost_usd), func.count(_u.cost_usd), func.sum(_u.energy_kwh),
              func.sum(_u.emissions_kg)),
)
_ROLLED = _UsageColumns(
    time=_r.bucket, user_id=func.nullif(_r.user_id, ""),
    api_key_id=func.nullif(_r.api_key_id, ""), model=_r.model,
    model_id=func.nullif(_r.model_id, ""), adapter=func.nullif(_r.adapter, ""),
    user_filter=_r.user_id, api_key_filter=_r.api_key_id,
    measures=(func.sum(_r.requests), func.sum(_r.prompt_tokens),
              func.sum(_r.completion_tokens), func.sum(_r.cost_usd),
              func.sum(_r.costed_requests), func.sum(_r.energy_kwh), func.sum(_r.emissions_kg)),
)


@dataclass
class _UsageSums:
    """Running totals of one group of usage."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    costed_requests: int = 0
    energy_kwh: float = 0.0
    emissions_kg: float = 0.0

    def add(self, requests: Any, prompt: Any, completion: Any, cost: Any, costed: Any,
            kwh: Any, kg: Any) -> None:
        """Add one query row's measures (SQL sums: None for no rows, Decimal for sums of
        BIGINT on PostgreSQL). Float sums are floored at 0: rollup rows that records were
        subtracted from (:meth:`UsageRepo.delete`) may sit a rounding error below it."""
        self.requests += int(requests or 0)
        self.prompt_tokens += int(prompt or 0)
        self.completion_tokens += int(completion or 0)
        self.cost_usd += max(0.0, float(cost or 0.0))
        self.costed_requests += int(costed or 0)
        self.energy_kwh += max(0.0, float(kwh or 0.0))
        self.emissions_kg += max(0.0, float(kg or 0.0))

    @classmethod
    def total(cls, parts: Iterable[_UsageSums]) -> _UsageSums:
        """The sum of ``parts``."""
        out = cls()
        for p in parts:
            out.add(p.requests, p.prompt_tokens, p.completion_tokens, p.cost_usd,
                    p.costed_requests, p.energy_kwh, p.emissions_kg)
        return out


def _summary_row(key: Any, v: _UsageSums) -> s.UsageSummaryRow:
    return s.UsageSummaryRow(
        key=None if key is None else str(key), requests=v.requests,
        prompt_tokens=v.prompt_tokens, completion_tokens=v.completion_tokens,
        total_tokens=v.prompt_tokens + v.completion_tokens,
        cost_usd=v.cost_usd if v.costed_requests else None, energy_kwh=v.energy_kwh,
        emissions_kg=v.emissions_kg,
    )


def _floor_hour(when: datetime) -> datetime:
    """The UTC hour ``when`` (timezone-aware) falls in."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


#: The usage columns a rollup row is keyed by, in :data:`catalog.tables.ROLLUP_KEYS`' order
#: (the record's ``created_at`` gives the rollup's ``bucket``).
_ROLLUP_SOURCE = ("created_at", *t.ROLLUP_KEYS[1:])


def _rollup_key(values: dict[str, Any]) -> tuple[Any, ...]:
    """The rollup key (:data:`catalog.tables.ROLLUP_KEYS`) of one usage record's column
    values: its hour, and ``''`` for a key column that is null (rollups keep no nulls)."""
    hour, *rest = (values[c] for c in _ROLLUP_SOURCE)
    return (_floor_hour(hour), *("" if v is None else v for v in rest))


def _within(column: Any, since: datetime | None, until: datetime | None) -> list[Any]:
    """SQL conditions ``since <= column < until`` (a None bound: none on that side)."""
    conds = []
    if since is not None:
        conds.append(column >= since)
    if until is not None:
        conds.append(column < until)
    return conds


def _usage_segments(
    since: datetime | None, until: datetime | None
) -> list[tuple[_UsageColumns, datetime | None, datetime | None]]:
    """Split ``[since, until)`` into the whole hours read from the rollups and the partial
    hours at either end read from the records (None: unbounded on that side)."""
    def aligned(when: datetime | None) -> bool:
        return when is None or when == _floor_hour(when)

    if aligned(since) and aligned(until):
        return [(_ROLLED, since, until)]
    try:
        lo = since if aligned(since) else _floor_hour(since) + timedelta(hours=1)  # type: ignore[arg-type]
    except OverflowError:  # since is in datetime's last hour: nothing whole after it
        return [(_RAW, since, until)]
    hi = until if aligned(until) else _floor_hour(until)  # type: ignore[arg-type]
    if lo is not None and hi is not None and lo >= hi:
        return [(_RAW, since, until)]
    segments = [(_ROLLED, lo, hi)]
    if lo != since:
        segments.append((_RAW, since, lo))
    if hi != until:
        segments.append((_RAW, hi, until))
    return segments


def _check_aware(**times: datetime | None) -> None:
    """Raise InvalidArgument naming the first naive datetime (its zone is ambiguous)."""
    for field, when in times.items():
        if when is not None and when.utcoffset() is None:
            raise InvalidArgument(f"{field} must be timezone-aware (e.g. ending in Z)",
                                  field=field)


def _key_order(item: tuple[Any, Any]) -> tuple[bool, str]:
    """Sort groups by key, null last."""
    key = item[0][0] if isinstance(item[0], tuple) else item[0]
    return (key is None, str(key))


def _add(acc: dict[Any, list[float]], key: Any, kwh: float, kg: float, n: int = 0) -> None:
    """Add energy, emissions and a record count to ``acc[key]``."""
    v = acc.setdefault(key, [0.0, 0.0, 0])
    v[0] += kwh
    v[1] += kg
    v[2] += n


def _check_method_format(
    method: s.TrainingMethod, field: str, data: t.DatasetRow
) -> None:
    """Raise InvalidArgument (``field="method"``) when ``method`` cannot train on the
    format of dataset ``data`` (given as the job's ``field``)."""
    if method == s.TrainingMethod.dpo and data.format not in s.PREFERENCE_FORMATS:
        needs = sorted(s.PREFERENCE_FORMATS)
        what = "preference pairs"
    elif method == s.TrainingMethod.sft and data.format not in s.CHAT_FORMATS:
        needs = sorted(s.CHAT_FORMATS)
        what = "chats (dpo trains on preference pairs, nothing on batch files)"
    else:
        return
    raise InvalidArgument(
        f"method {method} trains on {what}: {field} {data.id!r} has format {data.format}, "
        f"{method} needs one of {', '.join(needs)}",
        field="method",
    )


def _append_event(session: Session, owner: Any, owner_id: str, event: s.JobEvent) -> None:
    """Add ``event`` to the event table of column ``owner`` (``JobEventRow.job_id`` or
    ``BatchEventRow.batch_id``) for row ``owner_id``, unless an event with the same time
    and message is already there (a call repeated after the catalog actor restarted)."""
    table = owner.class_
    if event.created_at is not None and session.scalar(
        select(table.id).where(owner == owner_id, table.created_at == event.created_at,
                               table.message == event.message).limit(1)) is not None:
        return
    session.add(table(**{owner.key: owner_id}, **event.model_dump(exclude_none=True)))


def _events_after(
    session: Session, owner: Any, owner_id: str, after: int, limit: int
) -> list[dict]:
    """Up to ``limit`` events of ``owner_id`` (in the table of column ``owner``) with
    sequence number above ``after``, oldest first: ``[{"seq", "level", "message",
    "created_at"}]``."""
    table = owner.class_
    rows = session.scalars(select(table).where(owner == owner_id, table.id > after)
                           .order_by(table.id).limit(limit))
    return [{"seq": r.id, "level": r.level, "message": r.message, "created_at": r.created_at}
            for r in rows]


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


def _expired(key: t.ApiKeyRow) -> bool:
    return key.expires_at is not None and key.expires_at <= t.utcnow()


def _lock_job_token(session: Session, token_id: str) -> t.ApiKeyRow:
    """The job token ``token_id``, locked, if it may register a job: a live job token that
    registered none yet. Raises InvalidArgument (``field="job_token_id"``) otherwise."""
    token = session.scalars(
        select(t.ApiKeyRow).where(t.ApiKeyRow.id == token_id).with_for_update()).first()
    if token is None or token.scope != s.KeyScope.job:
        problem = "is not a job token"
    elif token.revoked or _expired(token):
        problem = "has expired or was revoked"
    elif token.job_id is not None:
        problem = (f"already registered {token.job_id}: a job token registers one job; "
                   "mint another (`garden jobs token`)")
    else:
        return token
    raise InvalidArgument(f"job token {token_id} {problem}", field="job_token_id")


def _revoke_job_tokens(session: Session, job_id: str) -> None:
    """Revoke the job tokens bound to the training job or batch ``job_id`` (it ended)."""
    session.execute(update(t.ApiKeyRow).where(
        t.ApiKeyRow.job_id == job_id, t.ApiKeyRow.scope == s.KeyScope.job,
        t.ApiKeyRow.revoked.is_(False)).values(revoked=True))


def _integrity_error(exc: IntegrityError) -> CatalogError:
    text = str(exc.orig)
    code = getattr(exc.orig, "sqlstate", None)
    if code == "23503" or "FOREIGN KEY" in text.upper():
        if "DELETE" in str(exc.statement).upper() or "is still referenced" in text:
            return Conflict("row is still referenced by other rows", details=text)
        return InvalidArgument("references a row that does not exist", details=text)
    return Conflict("already exists (unique constraint)", details=text)


@dataclass(frozen=True)
class PurgeItem:
    """A row whose stored files the retention purge removes: its table (``images``,
    ``image_edits``, ``videos``, ``source_images``), id and file locations."""

    kind: str
    id: str
    paths: list[str]


def _stored_paths(row: Any) -> list[str]:
    """Every storage location a media row holds (files, thumbnail, upload and its
    thumbnail)."""
    paths = [f["path"] for f in getattr(row, "files", None) or [] if f.get("path")]
    thumb = getattr(row, "thumbnail", None)
    if isinstance(thumb, dict) and thumb.get("path"):
        paths.append(thumb["path"])
    for column in ("path", "thumbnail_path"):
        value = getattr(row, column, None)
        if isinstance(value, str) and value:
            paths.append(value)
    return paths


def _helper_version(helper_id: str, version: int,
                    spec: s.HelperText | s.PromptHelperVersion) -> t.PromptHelperVersionRow:
    """A prompt helper version row from the versioned fields of ``spec``."""
    return t.PromptHelperVersionRow(
        id=t.new_id("phv"), helper_id=helper_id, version=version,
        **spec.model_dump(mode="json", include=set(s.HelperText.model_fields)))


def _theme_version(theme_id: str, version: int, spec: s.ThemeText) -> t.ThemeHelperVersionRow:
    """A theme version row from the versioned fields of ``spec``."""
    return t.ThemeHelperVersionRow(
        id=t.new_id("thv"), theme_id=theme_id, version=version,
        **spec.model_dump(mode="json", include=set(s.ThemeText.model_fields)))
