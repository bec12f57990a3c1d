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

import sqlalchemy as sa
from alembic import op

from catalog.migrate import sqlite_foreign_keys_off

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # on SQLite, adding a foreign key copies the table, which others reference
    with sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_from_id', sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_models_merged_from_id'), ['merged_from_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_models_merged_from_id_models'), 'models', ['merged_from_id'],
            ['id'], ondelete='RESTRICT')


def downgrade() -> None:
    with sqlite_foreign_keys_off(), op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f('fk_models_merged_from_id_models'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_models_merged_from_id'))
        batch_op.drop_column('merged_from_id')
