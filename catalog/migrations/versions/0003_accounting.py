"""accounting: who used what, per-key limits, hourly usage rollups

Adds ``usage_records.model_id`` (the model that answered: the adapter's id for an adapter
request) and ``api_key_id``, with indexes for the summaries' filters ((user_id,
created_at), (api_key_id, created_at), (model_id, created_at); the first replaces the
index on user_id alone); ``api_keys.rpm_limit``, ``tpm_limit`` and ``token_budget``; and
the ``usage_rollups`` table (usage summed per hour, user, key, model, model id, adapter
and kind; ``''`` for null in its key columns), filled here from the usage records already
stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

import catalog.tables

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

#: The hour a record was created in, in each dialect's SQL, matching how the store writes
#: ``usage_rollups.bucket`` (naive UTC; on SQLite, SQLAlchemy's DATETIME text format).
_BUCKET = {
    'postgresql': "date_trunc('hour', created_at)",
    'sqlite': "strftime('%Y-%m-%d %H:00:00.000000', created_at)",
}

_BACKFILL = """
INSERT INTO usage_rollups (bucket, user_id, api_key_id, model, model_id, adapter, kind,
    requests, prompt_tokens, completion_tokens, cost_usd, costed_requests, energy_kwh,
    emissions_kg)
SELECT {bucket} AS hour_bucket, coalesce(user_id, ''), coalesce(api_key_id, ''), model,
    coalesce(model_id, ''), coalesce(adapter, ''), kind, count(*), coalesce(sum(prompt_tokens),
    0), coalesce(sum(completion_tokens), 0), coalesce(sum(cost_usd), 0), count(cost_usd),
    coalesce(sum(energy_kwh), 0), coalesce(sum(emissions_kg), 0)
FROM usage_records
GROUP BY hour_bucket, coalesce(user_id, ''), coalesce(api_key_id, ''), model,
    coalesce(model_id, ''), coalesce(adapter, ''), kind
"""


def upgrade() -> None:
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('model_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('api_key_id', sa.String(length=64), nullable=True))
        batch_op.drop_index(batch_op.f('ix_usage_records_user_id'))
        batch_op.create_index(
            'ix_usage_records_user_created', ['user_id', 'created_at'], unique=False)
        batch_op.create_index(
            'ix_usage_records_api_key_created', ['api_key_id', 'created_at'], unique=False)
        batch_op.create_index(
            'ix_usage_records_model_id_created', ['model_id', 'created_at'], unique=False)

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rpm_limit', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('tpm_limit', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('token_budget', sa.BigInteger(), nullable=True))

    op.create_table('usage_rollups',
    sa.Column('bucket', catalog.tables.UTCDateTime(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('api_key_id', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('adapter', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Float(), nullable=False),
    sa.Column('costed_requests', sa.BigInteger(), nullable=False),
    sa.Column('energy_kwh', sa.Float(), nullable=False),
    sa.Column('emissions_kg', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint(
        'bucket', 'user_id', 'api_key_id', 'model', 'model_id', 'adapter', 'kind',
        name=op.f('pk_usage_rollups'))
    )
    with op.batch_alter_table('usage_rollups', schema=None) as batch_op:
        batch_op.create_index(
            'ix_usage_rollups_api_key_bucket', ['api_key_id', 'bucket'], unique=False)
        batch_op.create_index('ix_usage_rollups_user_bucket', ['user_id', 'bucket'], unique=False)

    if context.is_offline_mode():
        dialect = context.get_context().dialect.name
    else:
        dialect = op.get_bind().dialect.name
    op.execute(_BACKFILL.format(bucket=_BUCKET[dialect]))


def downgrade() -> None:
    with op.batch_alter_table('usage_rollups', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_rollups_user_bucket')
        batch_op.drop_index('ix_usage_rollups_api_key_bucket')

    op.drop_table('usage_rollups')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('token_budget')
        batch_op.drop_column('tpm_limit')
        batch_op.drop_column('rpm_limit')

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_model_id_created')
        batch_op.drop_index('ix_usage_records_api_key_created')
        batch_op.drop_index('ix_usage_records_user_created')
        batch_op.create_index(batch_op.f('ix_usage_records_user_id'), ['user_id'], unique=False)
        batch_op.drop_column('api_key_id')
        batch_op.drop_column('model_id')
