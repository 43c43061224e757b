"""config change notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:50:00

PostgreSQL only: any change to accounts, API keys, domains or webhooks, from any process or by hand,
notifies ``mailhooks_config`` so that API processes drop their read caches (src/mailhooks/db/cache.py).
SQLite's caches watched ``PRAGMA data_version`` then; since 0016, a counter its own triggers keep.
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ("accounts", "api_keys", "domains", "webhooks")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
        CREATE OR REPLACE FUNCTION mailhooks_config_changed() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('mailhooks_config', TG_TABLE_NAME);
            RETURN NULL;
        END
        $$ LANGUAGE plpgsql
    """)
    for table in TABLES:
        # Per row, so that a statement changing nothing (the dispatcher clears failing streaks that are
        # mostly already clear) notifies nobody; notifications with one payload fold into one per transaction.
        op.execute(f"CREATE TRIGGER {table}_config_changed AFTER INSERT OR UPDATE OR DELETE "
                   f"ON {table} FOR EACH ROW EXECUTE FUNCTION mailhooks_config_changed()")
        op.execute(f"CREATE TRIGGER {table}_config_truncated AFTER TRUNCATE "
                   f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION mailhooks_config_changed()")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_config_changed ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_config_truncated ON {table}")
    op.execute("DROP FUNCTION IF EXISTS mailhooks_config_changed()")
