"""Storage: SQLAlchemy 2 Core over SQLite (embedded default) or PostgreSQL, behind ``Store``."""

from mailhooks.db.engine import create_engine, is_postgres, to_async_url
from mailhooks.db.store import Store

__all__ = ["Store", "create_engine", "is_postgres", "to_async_url"]
