"""suppressions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 01:40:00

- ``suppressions``: each domain's bounces, unsubscribes and complaints (``core.suppressions``), served
  in Mailgun's suppressions API shape and fed by events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'suppressions',
        sa.Column('id', PK, primary_key=True, autoincrement=True),
        sa.Column('account_id', PK, sa.ForeignKey('accounts.id', name='fk_suppressions_account_id_accounts',
                                                  ondelete='CASCADE'), nullable=False),
        sa.Column('domain_id', PK, sa.ForeignKey('domains.id', name='fk_suppressions_domain_id_domains',
                                                 ondelete='CASCADE'), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('address', sa.String(254), nullable=False),
        sa.Column('code', sa.String(16)),
        sa.Column('error', sa.Text()),
        sa.Column('tags', sa.Text()),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_suppressions'),
        sa.UniqueConstraint('domain_id', 'kind', 'address', name='uq_suppressions_entry'),
    )
    op.create_index('ix_suppressions_recipient', 'suppressions', ['domain_id', 'address'])


def downgrade() -> None:
    op.drop_index('ix_suppressions_recipient', table_name='suppressions')
    op.drop_table('suppressions')
