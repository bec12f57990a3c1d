"""Alembic, driven from code: upgrade a database to head, or refuse an old schema.

The migrations live in ``catalog/migrations`` (``render_as_batch=True`` so SQLite
can alter tables). From a shell, ``alembic upgrade head`` in the repository root
does the same for ``GARDEN_DATABASE_URL`` (see ``alembic.ini``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from catalog.errors import SchemaOutOfDate

MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_COMMAND = "alembic upgrade head  (or: garden db upgrade)"


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
