"""Tables (SQLAlchemy Core). Times are float epoch seconds: one representation on SQLite and PostgreSQL,
cheap to compare in the dispatcher's hot queries, and exactly what both dialects print.

Changing anything here needs an Alembic revision under ``mailhooks/migrations/versions``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from mailhooks.core.deliveries import IN_QUEUE

# "In the queue" (``core.deliveries.IN_QUEUE``) as SQL, for the partial index and every query that should
# use it: written out literally (not as bound parameters) so that both planners can match the index.
IN_QUEUE_SQL = "status IN ({})".format(", ".join(f"'{status}'" for status in IN_QUEUE))

# BigInteger primary keys that are still SQLite's INTEGER PRIMARY KEY (rowid) there.
PK = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("signing_key", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
    Column("revoked_at", Float),
)

domains = Table(
    "domains",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("name", String(253), nullable=False, unique=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("secret", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # NULL = account level (Mailgun /v1/webhooks): fires for every domain of the account.
    Column("domain_id", PK, ForeignKey("domains.id", ondelete="CASCADE")),
    Column("event_type", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("payload_format", String(16), nullable=False),  # "mailgun" | "kirim"
    Column("group_id", String(64)),  # Mailgun v1 webhook_id: one URL x many types
    Column("description", Text),
    Column("created_at", Float, nullable=False),
    Column("modified_at", Float, nullable=False),
    Column("deleted_at", Float),
    Column("disabled_at", Float),
    Column("disabled_reason", Text),
    # Start of the current run of failed attempts (NULL after any success): drives auto-disable.
    Column("failing_since", Float),
    # Place of the URL in its type's list as the client gave it (Mailgun v3 answers in that order).
    Column("position", Integer, nullable=False, server_default=text("0")),
    # The subscription's own settings (core.subscriptions); NULL = not set, the installation's default.
    Column("headers", Text),  # JSON object of static headers
    Column("filters", Text),  # JSON {"tags", "recipient_domains", "user_variables"}
    Column("rate_limit_per_second", Integer),
    Column("timeout_seconds", Integer),
    Column("retry_schedule", Text),  # JSON list of seconds
    Column("ordering", String(8), nullable=False, server_default=text("'none'")),
    Index("ix_webhooks_route", "account_id", "domain_id", "event_type"),
    Index("ix_webhooks_group", "group_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False),  # client-given or generated; unique per domain
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", PK, ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("occurred_at", Float, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("payload", Text, nullable=False),  # canonical event-data JSON
    UniqueConstraint("domain_id", "event_id", name="uq_events_domain_event"),
    Index("ix_events_account_id", "account_id", "id"),  # the native API lists newest first by id
    Index("ix_events_received", "received_at"),  # retention
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("event_pk", PK, ForeignKey("events.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("webhook_id", PK, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("account_id", PK, nullable=False),
    Column("domain_id", PK, nullable=False),
    Column("status", String(16), nullable=False),  # pending delivering succeeded failed rejected
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float),
    Column("lease_owner", String(64)),
    Column("lease_expires_at", Float),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # The queue: only unfinished rows, ordered by due time. A claimed row keeps its lease expiry in
    # next_attempt_at, so "due" is one range scan for both new work and expired leases.
    Index(
        "ix_deliveries_queue",
        "next_attempt_at",
        sqlite_where=text(IN_QUEUE_SQL),
        postgresql_where=text(IN_QUEUE_SQL),
    ),
    Index("ix_deliveries_domain_status", "domain_id", "status"),
    Index("ix_deliveries_created", "created_at"),  # retention
    Index("ix_deliveries_account_id", "account_id", "id"),  # the native API lists newest first by id
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("delivery_id", PK, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("response_excerpt", Text),
    Column("error", Text),
    Column("request_headers", Text),  # JSON; signatures, never secrets
)

# One row per dashboard sign-in (the cookie carries the token, this table its hash); sign-out deletes it.
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
)

# Keys of the installation itself, never shown to an account (the ``webhook-id`` key: core.message_ids).
instance_secrets = Table(
    "instance_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Intake sources (``core.sources``): a mail platform's own event feed into one domain of an account. ``config``
# is the provider's settings as JSON (a Mailgun signing key, a SendGrid public key, a Postmark password hash).
sources = Table(
    "sources",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("domain_id", PK, ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("provider", String(16), nullable=False),
    Column("config", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
