"""training engine: job method, trackers and progress; metric extras; checkpoint sizes

Adds ``training_jobs.method`` (sft|dpo), ``report_to``, ``progress``, ``current_step``,
``total_steps``, ``current_epoch`` and ``total_epochs``; ``job_metrics.extra``;
``job_checkpoints.train_loss`` and ``size_bytes``; and widens ``datasets.format`` to 32
characters (``openai_preference`` is 17). The new non-null columns carry server defaults,
so rows written before this revision read back as an sft job with no progress.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')


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
    # first: on SQLite the copy of datasets commits the work before it
    with _sqlite_foreign_keys_off(), op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.alter_column(
            'format', existing_type=sa.String(length=16), type_=sa.String(length=32),
            existing_nullable=False)

    with op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'method', sa.String(length=16), nullable=False, server_default='sft'))
        batch_op.add_column(sa.Column('report_to', JSON, nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('progress', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column(
            'current_step', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column(
            'total_steps', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column(
            'current_epoch', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column(
            'total_epochs', sa.Float(), nullable=False, server_default='0'))

    with op.batch_alter_table('job_metrics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('extra', JSON, nullable=True))

    with op.batch_alter_table('job_checkpoints', schema=None) as batch_op:
        batch_op.add_column(sa.Column('train_loss', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('size_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    if not context.is_offline_mode():
        too_long = op.get_bind().execute(sa.text(
            'SELECT count(*) FROM datasets WHERE length(format) > 16')).scalar()
        if too_long:
            raise RuntimeError(
                f'{too_long} datasets have a format longer than 16 characters (the preference '
                'formats), which revision 0001 cannot hold: delete them before downgrading')

    with _sqlite_foreign_keys_off():
        with op.batch_alter_table('datasets', schema=None) as batch_op:
            batch_op.alter_column(
                'format', existing_type=sa.String(length=32), type_=sa.String(length=16),
                existing_nullable=False)

        with op.batch_alter_table('job_checkpoints', schema=None) as batch_op:
            batch_op.drop_column('size_bytes')
            batch_op.drop_column('train_loss')

        with op.batch_alter_table('job_metrics', schema=None) as batch_op:
            batch_op.drop_column('extra')

        with op.batch_alter_table('training_jobs', schema=None) as batch_op:
            batch_op.drop_column('total_epochs')
            batch_op.drop_column('current_epoch')
            batch_op.drop_column('total_steps')
            batch_op.drop_column('current_step')
            batch_op.drop_column('progress')
            batch_op.drop_column('report_to')
            batch_op.drop_column('method')
