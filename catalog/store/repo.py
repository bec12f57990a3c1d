"""The generic repository: :class:`Repo` (create/get/list/update/delete of one table,
returning its read schema) and :class:`RepoField`, which declares a store's repository
next to the operations of its aggregate; plus the value helpers every aggregate uses
(:func:`plain`, :func:`validated`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from catalog import schemas as s
from catalog import tables as t
from catalog.errors import InvalidArgument, NotFound
from catalog.store.marks import idempotent
from catalog.store.paging import MAX_PAGE_SIZE, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from catalog.store.base import StoreBase

R = TypeVar("R", bound=BaseModel)

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
        store: StoreBase,
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
                conds.append(getattr(self.row, key) == plain(value))
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
        self.check_updatable(fields)

        def assign(_session: Session, row: Any) -> None:
            for key, value in fields.items():
                setattr(row, key, plain(value))

        return self.change(row_id, assign)

    def change(self, row_id: str, change: Callable[[Session, Any], None]) -> R:
        """Run ``change(session, row)`` on row ``row_id``, locked, in one transaction, and
        return the row as changed. Raises NotFound, and whatever ``change`` raises
        (nothing is written then)."""
        with self.store.session() as session:
            row = self._get_row(session, row_id, lock=True)
            change(session, row)
            session.flush()
            return validated(self.read, row)

    def check_updatable(self, fields: Iterable[str]) -> None:
        """Raise InvalidArgument naming the first of ``fields`` that is no updatable
        column."""
        for key in fields:
            if key not in self.updatable:
                raise InvalidArgument(f"{self.name}.{key} cannot be updated", field=key)

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


class RepoField(Generic[R]):
    """A repository declared on a store class, next to its aggregate's operations::

        models = RepoField(t.ModelRow, s.Model, filters=("name",), updatable=("path",))

    On a store, the attribute is the :class:`Repo` built for that store
    (:class:`catalog.store.base.StoreBase` builds every declared one when it opens).

    Args:
        row, read: as :class:`Repo`'s.
        kind: the :class:`Repo` class to build (a subclass for a table with its own rules).
        options: :class:`Repo`'s keyword arguments.
    """

    def __init__(self, row: type[t.Row], read: type[R], *, kind: type[Repo[Any]] = Repo,
                 **options: Any):
        self.row = row
        self.read = read
        self.kind = kind
        self.options = options
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, store: None, owner: type) -> RepoField[R]: ...
    @overload
    def __get__(self, store: StoreBase, owner: type) -> Repo[R]: ...

    def __get__(self, store: StoreBase | None, owner: type) -> Any:
        if store is None:
            return self
        repo = self.kind(store, self.row, self.read, **self.options)
        store.__dict__[self.name] = repo  # built once: later reads find the instance's
        return repo


def plain(value: Any) -> Any:
    """JSON-ready form of pydantic models (and lists of them) for JSON columns."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def validated(read: type[R], row: Any) -> R:
    """``read`` validated from ``row``; raises InvalidArgument naming the first field a
    value breaks (instead of pydantic's ValidationError)."""
    try:
        return read.model_validate(row)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        raise InvalidArgument(f"{field}: {err['msg']}", field=field) from exc
