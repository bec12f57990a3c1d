"""Alembic, driven from code: upgrade a database to head, or refuse an old schema.

The migrations live in ``catalog/migrations`` (``render_as_batch=True`` so SQLite
can alter tables). From a shell, ``alembic upgrade head`` in the repository root
does the same for ``GARDEN_DATABASE_URL`` (see ``alembic.ini``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command, context, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from catalog.errors import SchemaOutOfDate

MIGRATIONS = Path(__file__).parent / "migrations"
#: How to bring a database to head: Alembic from the repository root (``alembic.ini``), or
#: the catalog actor, which upgrades the schema when it starts.
UPGRADE_COMMAND = (
    "`alembic upgrade head` in the repository root (the catalog actor upgrades when it starts)"
)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config for our scripts; with ``engine``, migrations run on its connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration's revision id. Raises RuntimeError when none is packaged."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations under {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision, or None for an empty database."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the database behind ``engine`` down to ``revision``."""
    command.downgrade(alembic_config(engine), revision)


def check_current(engine: Engine) -> None:
    """Raise SchemaOutOfDate unless the database is at head, naming the upgrade command."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaOutOfDate(
            f"catalog schema is at {current or 'nothing'}, code needs {head}: run {UPGRADE_COMMAND}"
        )


@contextmanager
def sqlite_foreign_keys_off() -> Iterator[None]:
    """For a migration: run its body with SQLite's foreign keys off, SQLite's recipe for
    the table changes ALTER TABLE cannot make (https://www.sqlite.org/lang_altertable.html,
    "Making Other Kinds Of Table Schema Changes"). Batch mode copies a table into a new one
    and drops the old; with foreign keys on, that drop first deletes the old rows, which
    RESTRICT references refuse and CASCADE / SET NULL references follow (losing or
    orphaning rows).

    The pragma is ignored inside a transaction, so the work so far is committed and a new
    transaction begun; the body's work is checked with ``PRAGMA foreign_key_check`` and
    committed before foreign keys are turned back on. Elsewhere (PostgreSQL, offline SQL,
    a SQLite connection without foreign keys) the body just runs. Used by revisions 0002,
    0004 and 0006.

    Raises:
        RuntimeError: the body left rows whose references do not resolve (rolled back).
    """
    bind = None if context.is_offline_mode() else op.get_bind()
    if bind is None or bind.dialect.name != "sqlite":
        yield
        return
    raw = bind.connection.dbapi_connection
    if raw is None:  # a detached connection: nothing to switch
        yield
        return
    cur = raw.cursor()
    if not cur.execute("PRAGMA foreign_keys").fetchone()[0]:
        yield
        return
    raw.commit()
    cur.execute("PRAGMA foreign_keys=OFF")
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield
        broken = cur.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"foreign keys broken by the table copy: {broken[:5]}")
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("BEGIN IMMEDIATE")
        cur.close()
