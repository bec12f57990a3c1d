"""dataset files: the uploaded file's format, its schema and statistics

Adds ``datasets.file_format`` (csv|json|jsonl|parquet; rows written before this revision
read back as ``jsonl``, the only format uploads had), ``schema`` and ``statistics`` (JSON,
null for the rows already stored).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

from catalog.migrate import sqlite_foreign_keys_off

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')



def upgrade() -> None:
    with op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'file_format', sa.String(length=16), nullable=False, server_default='jsonl'))
        batch_op.add_column(sa.Column('schema', JSON, nullable=True))
        batch_op.add_column(sa.Column('statistics', JSON, nullable=True))


def downgrade() -> None:
    # on SQLite, dropping columns copies the table, which others reference
    with sqlite_foreign_keys_off(), op.batch_alter_table('datasets', schema=None) as batch_op:
        batch_op.drop_column('statistics')
        batch_op.drop_column('schema')
        batch_op.drop_column('file_format')
