"""operational events and email alerts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 01:30:00

- ``operational_events``: webhook.disabled / failing / recovered and delivery.exhausted, written with the
  state change, fanned out to operational webhooks and mailed (``core.operational``).
- ``account_alerts``: the address an account's alerts are mailed to.
Operational webhooks themselves are ``webhooks`` rows of payload format ``operational``: no new columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'operational_events',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('account_id', PK, nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('webhook_id', PK, nullable=False),
        sa.Column('delivery_id', PK, nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('occurred_at', sa.Float(), nullable=False),
        sa.Column('fanned_out_at', sa.Float(), nullable=True),
        sa.Column('email_status', sa.String(length=8), nullable=True),
        sa.Column('email_due_at', sa.Float(), nullable=True),
        sa.Column('emailed_at', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_operational_events_account_id_accounts',
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.id'], name='fk_operational_events_webhook_id_webhooks',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_operational_events'),
    )
    op.create_index('ix_operational_events_fanned_out_at', 'operational_events', ['fanned_out_at'])
    op.create_index('ix_operational_events_email', 'operational_events', ['email_status', 'email_due_at'])
    op.create_index('ix_operational_events_webhook', 'operational_events', ['webhook_id', 'emailed_at'])
    op.create_table(
        'account_alerts',
        sa.Column('account_id', PK, nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('updated_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_account_alerts_account_id_accounts',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', name='pk_account_alerts'),
    )


def downgrade() -> None:
    op.drop_table('account_alerts')
    op.drop_index('ix_operational_events_webhook', table_name='operational_events')
    op.drop_index('ix_operational_events_email', table_name='operational_events')
    op.drop_index('ix_operational_events_fanned_out_at', table_name='operational_events')
    op.drop_table('operational_events')
