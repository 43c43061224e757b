"""scoped API keys and the audit log

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 01:40:00

- ``api_keys``: ``scope`` (``'admin'`` for every existing key: they keep doing everything) and
  ``domain`` (NULL: every domain).
- ``audit_log``: who changed what in an account (``core.audit``).
- PostgreSQL: the config-change trigger of ``api_keys`` (0004) no longer fires when only
  ``last_used_at`` moves, so that recording a key's use does not empty every API process's read cache.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=False, server_default='admin'))
        batch_op.add_column(sa.Column('domain', sa.String(length=253), nullable=True))
    op.create_table(
        'audit_log',
        sa.Column('id', PK, autoincrement=True, nullable=False),
        sa.Column('account_id', PK, nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('actor', sa.String(length=300), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('target', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name='fk_audit_log_account_id_accounts',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_audit_log'),
    )
    op.create_index('ix_audit_log_account', 'audit_log', ['account_id', 'id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS api_keys_config_changed ON api_keys")
        op.execute("CREATE TRIGGER api_keys_config_changed AFTER INSERT OR DELETE OR UPDATE OF "
                   "account_id, key_hash, prefix, revoked_at, scope, domain "
                   "ON api_keys FOR EACH ROW EXECUTE FUNCTION mailhooks_config_changed()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS api_keys_config_changed ON api_keys")
        op.execute("CREATE TRIGGER api_keys_config_changed AFTER INSERT OR UPDATE OR DELETE "
                   "ON api_keys FOR EACH ROW EXECUTE FUNCTION mailhooks_config_changed()")
    op.drop_index('ix_audit_log_account', table_name='audit_log')
    op.drop_table('audit_log')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('domain')
        batch_op.drop_column('scope')
