"""signing key overlap

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 01:30:00

- ``accounts``: the signing key before the last rotation and until when it still signs deliveries
  (``previous_signing_key``, ``previous_key_until``). NULL for existing rows: one key, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_signing_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('previous_key_until', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('previous_key_until')
        batch_op.drop_column('previous_signing_key')
