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
    # The key before the last rotation, still signing (beside the new one) until ``previous_key_until``.
    Column("previous_signing_key", String(64)),
    Column("previous_key_until", Float),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),  # written at most once a minute per key (db/key_usage.py)
    Column("revoked_at", Float),
    Column("scope", String(16), nullable=False, server_default=text("'admin'")),  # core.scopes.Scope
    Column("domain", String(253)),  # NULL = every domain of the account; else this domain's name only
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
    Column("traceparent", String(55)),  # W3C context of the ingest request (traces on), parent of its attempts
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
    # No (domain_id, status) index: every update of a row (two per delivery) would write it, and every
    # query by domain is also by account (ix_deliveries_account_id) or by time (migration 0017).
    Index("ix_deliveries_created", "created_at"),  # retention
    Index("ix_deliveries_account_id", "account_id", "id"),  # the native API lists newest first by id
    # Room on each page for a row's two updates (claim, result): written beside the old version, the WAL
    # record is smaller and no second page is dirtied. Vacuumed after 1 % of the rows changed, unthrottled:
    # claims walk the queue index past the dead versions that each claim and result leaves until vacuum
    # removes them, which made a large backlog drain slower than a small one (migration 0017).
    postgresql_with={"fillfactor": 80, "autovacuum_vacuum_scale_factor": 0.01, "autovacuum_vacuum_cost_delay": 0},
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

# A domain's suppression lists (core.suppressions): one row per (domain, kind, address), fed by events
# and by Mailgun's suppressions API. Listed by address, as Mailgun pages them.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", PK, ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # core.suppressions.SuppressionKind
    Column("address", String(254), nullable=False),  # lower-case
    Column("code", String(16)),  # bounces
    Column("error", Text),  # bounces
    Column("tags", Text),  # unsubscribes: JSON list
    Column("created_at", Float, nullable=False),
    UniqueConstraint("domain_id", "kind", "address", name="uq_suppressions_entry"),
    Index("ix_suppressions_recipient", "domain_id", "address"),  # "is this recipient suppressed" at intake
)

# Who changed what in an account (core.audit): written in the same transaction as the change.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(300), nullable=False),  # a key prefix, "dashboard:<username>" or "cli"
    Column("action", String(32), nullable=False),  # core.audit.AuditAction
    Column("target", Text, nullable=False),
    Index("ix_audit_log_account", "account_id", "id"),  # pages newest first by id
)

# The pace of a subscription with a rate limit or FIFO ordering (worker.pace, db.queue.pace); rows exist
# only for such subscriptions, so the claim of every other delivery never reads this table.
# ``next_start_at``: the earliest time the next delivery may start (advanced by 1/rate per start, under
# this row's lock, so several workers share one rate). ``backlog_until``: the end of the times already
# given to the subscription's waiting rows, so that newly due rows queue up behind them.
webhook_pace = Table(
    "webhook_pace",
    metadata,
    Column("webhook_id", PK, ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True),
    Column("next_start_at", Float, nullable=False),
    Column("backlog_until", Float, nullable=False),
)

# Operational events (core.operational): written by the delivery queue in the transaction of the state
# change, then fanned out by the worker to the account's operational webhooks (``fanned_out_at``) and,
# throttled per subscription, mailed to its alert address (``email_status``, ``email_due_at``, ``emailed_at``).
operational_events = Table(
    "operational_events",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),  # core.operational.OperationalKind
    Column("webhook_id", PK, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),  # the subject
    Column("delivery_id", PK),  # delivery.exhausted (and the delivery that caused it, when known); no FK: purged
    Column("detail", Text),  # the disable reason, or the delivery's last error
    Column("occurred_at", Float, nullable=False),
    Column("fanned_out_at", Float),  # NULL: not yet turned into deliveries / email
    Column("email_status", String(8)),  # core.operational.EmailStatus; NULL until fanned out
    Column("email_due_at", Float),  # a pending email is not looked at before then (throttle, retry after SMTP failed)
    Column("emailed_at", Float),  # when its email went out (while still pending: when it was last tried)
    Index("ix_operational_events_fanned_out_at", "fanned_out_at"),
    Index("ix_operational_events_email", "email_status", "email_due_at"),
    Index("ix_operational_events_webhook", "webhook_id", "emailed_at"),
)

# The address an account's operational events are mailed to (``PUT /v1/alerts``, ``mailhooks accounts alerts``).
account_alerts = Table(
    "account_alerts",
    metadata,
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("email", String(254), nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Replays and back-fills of a time range (core.replays), run in the background in batches by the workers
# (worker.replays). ``cursor`` is the last delivery id (a back-fill: event id) done, written in the same
# transaction as that batch's rows: a replay resumes exactly where a crashed worker left it.
replays = Table(
    "replays",
    metadata,
    Column("id", PK, primary_key=True, autoincrement=True),
    Column("guid", String(36), nullable=False, unique=True),
    Column("account_id", PK, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", PK, ForeignKey("domains.id", ondelete="CASCADE"), nullable=False),
    Column("webhook_id", PK, ForeignKey("webhooks.id", ondelete="CASCADE")),  # narrows a replay
    Column("to_webhook_id", PK, ForeignKey("webhooks.id", ondelete="CASCADE")),  # a back-fill's target
    Column("scope", String(8), nullable=False),  # failed | all
    Column("since", Float, nullable=False),
    Column("until", Float),
    Column("state", String(8), nullable=False),  # queued running done failed
    Column("start_id", BigInteger),  # the range's row ids, bounded when a worker starts it
    Column("end_id", BigInteger),
    Column("cursor", BigInteger),
    Column("matched", BigInteger),  # counted when a worker starts it
    Column("queued", BigInteger, nullable=False, server_default=text("0")),
    Column("skipped", BigInteger, nullable=False, server_default=text("0")),
    Column("error", Text),
    Column("owner", String(64)),
    Column("lease_expires_at", Float),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    Index("ix_replays_account_id", "account_id", "id"),
    Index("ix_replays_state", "state"),
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
