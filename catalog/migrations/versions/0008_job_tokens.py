"""job tokens: API keys scoped to one Ray job

Adds ``api_keys.scope`` (``full`` for every existing key, ``job`` for a job token),
``api_keys.job_id`` (nullable, indexed: the training job or batch a job token registered or
was minted for; no foreign key, as it names a row of either table) and
``api_keys.expires_at`` (nullable: when a job token stops authenticating). Rows written
before this revision read back as full keys that never expire.

Revision ID: 0008
Revises: 0007
Create Date: 2027-01-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import catalog.tables

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'scope', sa.String(length=16), server_default='full', nullable=False))
        batch_op.add_column(sa.Column('job_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column(
            'expires_at', catalog.tables.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_keys_job_id'), ['job_id'], unique=False)


def downgrade() -> None:
    # a job token is no key to a schema without scopes: remove them, not widen them
    op.execute("DELETE FROM api_keys WHERE scope = 'job'")
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_job_id'))
        batch_op.drop_column('expires_at')
        batch_op.drop_column('job_id')
        batch_op.drop_column('scope')
