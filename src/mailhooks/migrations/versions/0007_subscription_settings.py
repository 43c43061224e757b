"""subscription settings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 01:20:00

- ``webhooks``: the settings of each subscription (``core.subscriptions``): static headers, filters,
  its own rate limit, timeout and retry schedule, and its ordering. All NULL (``ordering`` ``'none'``)
  for existing rows, which keeps them as they were.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headers', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('filters', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('rate_limit_per_second', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('timeout_seconds', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('retry_schedule', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('ordering', sa.String(length=8), nullable=False, server_default='none'))


def downgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        for name in ('ordering', 'retry_schedule', 'timeout_seconds', 'rate_limit_per_second', 'filters',
                     'headers'):
            batch_op.drop_column(name)
