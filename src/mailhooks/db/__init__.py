"""Storage: SQLAlchemy 2 Core over SQLite (embedded default) or PostgreSQL.

``database`` owns engines, transactions, raw driver access and LISTEN/NOTIFY; on it, ``store`` keeps the
configuration, ``intake`` writes events with their deliveries, ``queue`` is the delivery queue (one
module per backend), ``deliveries`` serves the delivery and event reads and actions, and ``dashboard``
the dashboard's own reads.
"""

from mailhooks.db.database import Database
from mailhooks.db.engine import create_engine, is_postgres, to_async_url
from mailhooks.db.store import Store

__all__ = ["Database", "Store", "create_engine", "is_postgres", "to_async_url"]
