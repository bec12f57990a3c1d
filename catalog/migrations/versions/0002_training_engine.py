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

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from catalog.migrate import sqlite_foreign_keys_off

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')



def upgrade() -> None:
    # first: on SQLite the copy of datasets commits the work before it
    with sqlite_foreign_keys_off(), op.batch_alter_table('datasets', schema=None) as batch_op:
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

    with sqlite_foreign_keys_off():
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
