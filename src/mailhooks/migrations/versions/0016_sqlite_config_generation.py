"""sqlite config generation

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 04:40:00

SQLite only: ``config_generation``, one row whose ``value`` triggers on accounts, API keys, domains and
webhooks raise on every row changed, by any connection of any process (the CLI's and the sqlite3 shell's
included). The API's read cache (src/mailhooks/db/cache.py) compares it instead of ``PRAGMA
data_version``, which moves on every commit: under ingest or delivery load that emptied the cache on
nearly every request. PostgreSQL has its notifications (0004).
"""

from __future__ import annotations

from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

TABLES = ("accounts", "api_keys", "domains", "webhooks")
OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE TABLE config_generation (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)")
    op.execute("INSERT INTO config_generation (id, value) VALUES (1, 0)")
    for table in TABLES:
        for operation in OPERATIONS:
            op.execute(f"CREATE TRIGGER {table}_config_{operation.lower()} AFTER {operation} ON {table} "
                       "BEGIN UPDATE config_generation SET value = value + 1 WHERE id = 1; END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        for operation in OPERATIONS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_config_{operation.lower()}")
    op.execute("DROP TABLE IF EXISTS config_generation")
