"""intake sources

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 01:40:00

- ``sources``: a mail platform's own event feed (Mailgun, SendGrid, Postmark webhooks) into one domain of an
  account, with the provider's settings as JSON (``core.sources``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'sources',
        sa.Column('id', PK, primary_key=True, autoincrement=True),
        sa.Column('guid', sa.String(36), nullable=False),
        sa.Column('account_id', PK, sa.ForeignKey('accounts.id', name='fk_sources_account_id_accounts',
                                                  ondelete='CASCADE'), nullable=False),
        sa.Column('domain_id', PK, sa.ForeignKey('domains.id', name='fk_sources_domain_id_domains',
                                                 ondelete='CASCADE'), nullable=False),
        sa.Column('provider', sa.String(16), nullable=False),
        sa.Column('config', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_sources'),
        sa.UniqueConstraint('guid', name='uq_sources_guid'),
    )
    op.create_index('ix_sources_account_id', 'sources', ['account_id'])


def downgrade() -> None:
    op.drop_index('ix_sources_account_id', table_name='sources')
    op.drop_table('sources')
