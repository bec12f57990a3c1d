"""evaluations: adapters scored against their base models

Adds the ``evaluations`` table, ``models.evaluation`` and ``training_jobs.evaluation``
(the newest completed evaluation's summary, nullable) and ``training_jobs.evaluate``
(the job's evaluation settings, nullable: jobs written before this revision read back
with no evaluation to run, which is what they ran).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import catalog.tables
from catalog.migrate import sqlite_foreign_keys_off

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), 'postgresql')

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=64), nullable=False),
    sa.Column('base_model_id', sa.String(length=64), nullable=False),
    sa.Column('dataset_id', sa.String(length=64), nullable=False),
    sa.Column('job_id', sa.String(length=64), nullable=True),
    sa.Column('batch_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('max_tokens', sa.Integer(), nullable=False),
    sa.Column('scores', _JSON, nullable=False),
    sa.Column('examples', _JSON, nullable=False),
    sa.Column('ray_job_id', sa.String(length=128), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('completed_at', catalog.tables.base.UTCDateTime(), nullable=True),
    sa.Column('user_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', catalog.tables.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', catalog.tables.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['models.id'], 
                            name=op.f('fk_evaluations_base_model_id_models'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], 
                            name=op.f('fk_evaluations_dataset_id_datasets'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], 
                            name=op.f('fk_evaluations_model_id_models'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_ray_job_id'), ['ray_job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_user_id'), ['user_id'], unique=False)

    # on SQLite, dropping a column copies the table, which others reference
    with sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluation', _JSON, nullable=True))

    with sqlite_foreign_keys_off(), \
            op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('evaluate', _JSON, nullable=True))
        batch_op.add_column(sa.Column('evaluation', _JSON, nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_user_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_status'))
        batch_op.drop_index(batch_op.f('ix_evaluations_ray_job_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_model_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_job_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_created_at'))

    op.drop_table('evaluations')

    with sqlite_foreign_keys_off(), \
            op.batch_alter_table('training_jobs', schema=None) as batch_op:
        batch_op.drop_column('evaluation')
        batch_op.drop_column('evaluate')

    with sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('evaluation')
