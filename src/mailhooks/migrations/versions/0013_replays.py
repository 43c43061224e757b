"""replays

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 01:30:00

- ``replays``: replays and back-fills of a time range (``core.replays``), with their progress (a cursor)
  so that a worker resumes one another worker left, and a lease so that two never run the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'replays',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('guid', sa.String(length=36), nullable=False),
        sa.Column('account_id', PK, nullable=False),
        sa.Column('domain_id', PK, nullable=False),
        sa.Column('webhook_id', PK, nullable=True),
        sa.Column('to_webhook_id', PK, nullable=True),
        sa.Column('scope', sa.String(length=8), nullable=False),
        sa.Column('since', sa.Float(), nullable=False),
        sa.Column('until', sa.Float(), nullable=True),
        sa.Column('state', sa.String(length=8), nullable=False),
        sa.Column('start_id', sa.BigInteger(), nullable=True),
        sa.Column('end_id', sa.BigInteger(), nullable=True),
        sa.Column('cursor', sa.BigInteger(), nullable=True),
        sa.Column('matched', sa.BigInteger(), nullable=True),
        sa.Column('queued', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('skipped', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('owner', sa.String(length=64), nullable=True),
        sa.Column('lease_expires_at', sa.Float(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=True),
        sa.Column('finished_at', sa.Float(), nullable=True),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_replays_account_id_accounts'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_replays_domain_id_domains'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name=op.f('fk_replays_webhook_id_webhooks'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['to_webhook_id'], ['webhooks.id'],
                                name=op.f('fk_replays_to_webhook_id_webhooks'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_replays')),
        sa.UniqueConstraint('guid', name=op.f('uq_replays_guid')),
    )
    op.create_index('ix_replays_account_id', 'replays', ['account_id', 'id'], unique=False)
    op.create_index('ix_replays_state', 'replays', ['state'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_replays_state', table_name='replays')
    op.drop_index('ix_replays_account_id', table_name='replays')
    op.drop_table('replays')
