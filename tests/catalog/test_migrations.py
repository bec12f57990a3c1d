"""Alembic migrations: empty -> head -> base on both backends, and the startup check."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from catalog import migrate
from catalog.errors import SchemaOutOfDate
from catalog.store import CatalogStore, make_engine
from catalog.tables import Base


def test_upgrade_to_head_then_downgrade(db_url):
    engine = make_engine(db_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    migrate.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_schema_matches_models_after_upgrade(db_url):
    """Autogenerate finds nothing to do: the migrations and tables.py agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    engine.dispose()
    assert diff == []


def test_open_without_migrate_refuses_old_schema(db_url):
    with pytest.raises(SchemaOutOfDate, match="alembic upgrade head"):
        CatalogStore.open(db_url, migrate=False)
    CatalogStore.open(db_url).close()
    CatalogStore.open(db_url, migrate=False).close()
