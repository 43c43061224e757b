"""url order and dashboard sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 22:40:00

- ``webhooks.position``: the place of a URL in its type's list, as the client gave it (Mailgun v3
  answers a type's URLs in that order, and mailgun.js reads ``url`` as the first). Existing rows get 0,
  so they keep their creation order (ties are broken by id).
- ``ui_sessions``: one row per dashboard sign-in, deleted at sign-out, so that a copied cookie stops
  working once its session is signed out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
    op.create_table(
        'ui_sessions',
        sa.Column('id', PK, primary_key=True, autoincrement=True),
        sa.Column('token_hash', sa.String(64), nullable=False),
        sa.Column('account_id', PK, sa.ForeignKey('accounts.id', name='fk_ui_sessions_account_id_accounts',
                                                  ondelete='CASCADE'), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id', name='pk_ui_sessions'),
        sa.UniqueConstraint('token_hash', name='uq_ui_sessions_token_hash'),
    )
    op.create_index('ix_ui_sessions_expires_at', 'ui_sessions', ['expires_at'])


def downgrade() -> None:
    op.drop_index('ix_ui_sessions_expires_at', table_name='ui_sessions')
    op.drop_table('ui_sessions')
    with op.batch_alter_table('webhooks', schema=None) as batch_op:
        batch_op.drop_column('position')
