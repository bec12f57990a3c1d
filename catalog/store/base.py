"""The store's base: the engine, one transaction per call (:meth:`StoreBase.session`) with
its mapping of database errors to :mod:`catalog.errors`, and the construction of the
repositories that the aggregates' mixins declare (:class:`catalog.store.repo.RepoField`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from catalog.config import database_url
from catalog.errors import CatalogError, Conflict, InvalidArgument, SchemaOutOfDate, Unavailable
from catalog.lengths import check_lengths
from catalog.store.marks import idempotent
from catalog.store.repo import Repo, RepoField

R = TypeVar("R", bound=BaseModel)


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


class StoreBase:
    """The engine, sessions and repositories of a store; the aggregates' mixins add the
    operations (:class:`catalog.store.CatalogStore` composes them).

    Build one with :meth:`open` (migrates or checks the schema) or pass an engine
    whose schema is already at head.
    """

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # text too long for its column: InvalidArgument naming it, on every dialect
        event.listen(self._sessions, "before_flush", check_lengths)
        #: every declared repository, by its read schema
        self._repos: dict[type[BaseModel], Repo[Any]] = {}
        for cls in reversed(type(self).__mro__):
            for name, field in vars(cls).items():
                if isinstance(field, RepoField):
                    self._repos[field.read] = getattr(self, name)

    def repo(self, read: type[R]) -> Repo[R]:
        """The repository whose rows are returned as ``read`` (``s.Model`` -> ``models``).

        Raises KeyError for a schema that is no table's read model.
        """
        return self._repos[read]

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True) -> Self:
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


def _integrity_error(exc: IntegrityError) -> CatalogError:
    text = str(exc.orig)
    code = getattr(exc.orig, "sqlstate", None)
    if code == "23503" or "FOREIGN KEY" in text.upper():
        if "DELETE" in str(exc.statement).upper() or "is still referenced" in text:
            return Conflict("row is still referenced by other rows", details=text)
        return InvalidArgument("references a row that does not exist", details=text)
    return Conflict("already exists (unique constraint)", details=text)
