"""merged models: a base model made by merging a LoRA adapter into its base

Adds ``models.merged_from_id`` (nullable, indexed, a foreign key to ``models.id`` like
``base_model_id``, ``ON DELETE RESTRICT``): the adapter whose weights were merged into
``base_model_id``'s to make the row's weights. Rows written before this revision read
back with ``merged_from_id`` null.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


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
    # on SQLite, adding a foreign key copies the table, which others reference
    with _sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_from_id', sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_models_merged_from_id'), ['merged_from_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_models_merged_from_id_models'), 'models', ['merged_from_id'],
            ['id'], ondelete='RESTRICT')


def downgrade() -> None:
    with _sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_models_merged_from_id_models'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_models_merged_from_id'))
        batch_op.drop_column('merged_from_id')
