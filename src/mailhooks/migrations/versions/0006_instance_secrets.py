"""instance secrets

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 22:45:00

- ``instance_secrets``: keys of the installation itself, never shown to an account. The first is the
  key of ``webhook-id`` (``core.message_ids``); the first process that needs it creates it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'instance_secrets',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('instance_secrets')
