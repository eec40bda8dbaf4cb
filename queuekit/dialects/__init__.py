"""The dialect seam: the few things that differ between PostgreSQL, SQLite and MySQL.

Each dialect module provides one :class:`~queuekit.dialects.base.DialectSupport`
subclass holding only the database clock and time arithmetic, the flag
filter of the claim, upserts, notification, per-connection set-up and the
oldest server version supported.
Everything else is SQLAlchemy Core shared by all dialects.
"""

from __future__ import annotations

from sqlalchemy.engine import Dialect

from queuekit.dialects.base import DialectSupport
from queuekit.errors import UnsupportedDatabaseError


def support_for(dialect: Dialect | type[Dialect]) -> DialectSupport:
    """Return the seam implementation for a SQLAlchemy dialect (or dialect class)."""
    name = dialect.name
    if name == "postgresql":
        from queuekit.dialects.postgresql import PostgreSQLSupport

        return PostgreSQLSupport()
    if name == "sqlite":
        from queuekit.dialects.sqlite import SQLiteSupport

        return SQLiteSupport()
    if name in ("mysql", "mariadb"):
        from queuekit.dialects.mysql import MySQLSupport

        return MySQLSupport()
    raise UnsupportedDatabaseError(
        f"queuekit does not support the {name!r} dialect; use PostgreSQL, SQLite or MySQL/MariaDB"
    )


__all__ = ["DialectSupport", "support_for"]
