"""State through SQLAlchemy: SQLite by default, PostgreSQL by URL; schema by Alembic."""

from intercloud.store.db import Store

__all__ = ["Store"]
