"""webhook pace

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 01:30:00

- ``webhook_pace``: for a subscription with a rate limit or FIFO ordering, the earliest start of its next
  delivery and the end of the start times already given to its waiting deliveries. Empty for everything
  else.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'webhook_pace',
        sa.Column('webhook_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('next_start_at', sa.Float(), nullable=False),
        sa.Column('backlog_until', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_webhook_pace_webhook_id_webhooks'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('webhook_id', name=op.f('pk_webhook_pace')),
    )


def downgrade() -> None:
    op.drop_table('webhook_pace')
