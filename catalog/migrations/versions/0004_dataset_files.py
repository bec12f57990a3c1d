"""dataset files: the uploaded file's format, its schema and statistics

Adds ``datasets.file_format`` (csv|json|jsonl|parquet; rows written before this revision
read back as ``jsonl``, the only format uploads had), ``schema`` and ``statistics`` (JSON,
null for the rows already stored).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')


# the same as revision 0002's
@contextmanager
def _sqlite_foreign_keys_off() -> Iterator[None]:
    """Run the body with SQLite's foreign keys off, as SQLite's recipe for the table changes
    ALTER TABLE cannot make asks (https://www.sqlite.org/lang_altertable.html, "Making Other
    Kinds Of Table Schema Changes"): batch mode copies a table into a new one and drops the
    old, and with foreign keys on, that drop first deletes the old rows, which RESTRICT
    references refuse and CASCADE / SET NULL references follow (losing or orphaning rows).

    The pragma is ignored inside a transaction, so the work so far is committed and a new
    transaction begun; the body's work is checked with ``PRAGMA foreign_key_check`` and
    committed before foreign keys are turned back on. Elsewhere (PostgreSQL, offline SQL,
    a SQLite connection without foreign keys) the body just runs.

    Raises:
        RuntimeError: the body left rows whose references do not resolve (rolled back).
    """
    bind = None if context.is_offline_mode() else op.get_bind()
    if bind is None or bind.dialect.name != 'sqlite':
        yield
        return
    raw = bind.connection.dbapi_connection
    cur = raw.cursor()
    if not cur.execute('PRAGMA foreign_keys').fetchone()[0]:
        yield
        return
    raw.commit()
    cur.execute('PRAGMA foreign_keys=OFF')
    cur.execute('BEGIN IMMEDIATE')
    try:
        yield
        broken = cur.execute('PRAGMA foreign_key_check').fetchall()
        if broken:
            raise RuntimeError(f'foreign keys broken by the table copy: {broken[:5]}')
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cur.execute('PRAGMA foreign_keys=ON')
        cur.execute('BEGIN IMMEDIATE')
        cur.close()


def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'file_format', sa.String(length=16), nullable=False, server_default='jsonl'))
        batch_op.add_column(sa.Column('schema', JSON, nullable=True))
        batch_op.add_column(sa.Column('statistics', JSON, nullable=True))


def downgrade() -> None:
    # on SQLite, dropping columns copies the table, which others reference
    with _sqlite_foreign_keys_off(), op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('statistics')
        batch_op.drop_column('schema')
        batch_op.drop_column('file_format')
