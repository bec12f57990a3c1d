"""batches: batch inference jobs (OpenAI's Batch object) and their event log

Adds ``batches`` (one row per batch: endpoint, input/output/error file ids, status and the
time of each status, request counts, token totals, energy and emissions, owner, API key,
Ray job) and ``batch_events`` (status changes and log lines of a batch, like
``job_events``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import catalog.tables

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.String(length=64), nullable=True),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('input_file_id', sa.String(length=64), nullable=False),
    sa.Column('completion_window', sa.String(length=16), nullable=False),
    sa.Column('metadata', _JSON, nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('output_file_id', sa.String(length=64), nullable=True),
    sa.Column('error_file_id', sa.String(length=64), nullable=True),
    sa.Column('errors', _JSON, nullable=True),
    sa.Column('request_total', sa.Integer(), nullable=False),
    sa.Column('request_completed', sa.Integer(), nullable=False),
    sa.Column('request_failed', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('energy_kwh', sa.Float(), nullable=True),
    sa.Column('emissions_kg', sa.Float(), nullable=True),
    sa.Column('ray_job_id', sa.String(length=128), nullable=True),
    sa.Column('in_progress_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('finalizing_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('completed_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('failed_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('cancelling_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('cancelled_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('expires_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('expired_at', catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.Column('updated_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['input_file_id'], ['datasets.id'],
                            name=op.f('fk_batches_input_file_id_datasets'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches'))
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_api_key_id'), ['api_key_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_created_at'), ['created_at'], unique=False)
        batch_op.create_index(
            batch_op.f('ix_batches_input_file_id'), ['input_file_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_ray_job_id'), ['ray_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_user_id'), ['user_id'], unique=False)

    op.create_table('batch_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_at', catalog.tables.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'],
                            name=op.f('fk_batch_events_batch_id_batches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_events'))
    )
    with op.batch_alter_table('batch_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_events_batch_id'), ['batch_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('batch_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_events_batch_id'))

    op.drop_table('batch_events')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_user_id'))
        batch_op.drop_index(batch_op.f('ix_batches_status'))
        batch_op.drop_index(batch_op.f('ix_batches_ray_job_id'))
        batch_op.drop_index(batch_op.f('ix_batches_input_file_id'))
        batch_op.drop_index(batch_op.f('ix_batches_created_at'))
        batch_op.drop_index(batch_op.f('ix_batches_api_key_id'))

    op.drop_table('batches')
