"""The dialect seam: everything that differs between PostgreSQL, SQLite and MySQL/MariaDB.

Internal: nothing here is queuekit's public API, and any of it may change in
any release. Each dialect module provides one
:class:`~queuekit.dialects.base.DialectSupport` subclass; :func:`support_for`
picks it for an engine's dialect and :func:`check_server_version` refuses
servers older than it supports. Everything else is SQLAlchemy Core shared by
all dialects. The members of ``DialectSupport``, by what they are for:

- Server: ``name``, ``minimum_version``.
- Connections and transactions: ``isolation_level``, ``prepare_engine``,
  ``client_connect_args``, ``connection_label``, ``begin_transaction``,
  ``check_own_transaction``, ``limit_statement_time``, ``prefer_index_reads``,
  ``clear_statement_time``.
- Clock and time arithmetic: ``now``, ``lock_time``, ``server_now``, ``add_ms``,
  ``ms_between``, ``clock_offset_ms`` (set by tests only).
- Statements: ``has_any_flag``, ``upsert``, ``insert_skipping_conflicts``,
  ``skip_insert_returns_ids``, ``new_uuid``, ``writes_in_ctes``.
- Values sent as arrays where the database takes them (one statement text for
  any count): ``one_of``, ``pair_of``, ``pair_values``, ``rows_of``.
- Bulk loading: ``bulk_loads``, ``copy_rows``.
- Waking workers: ``notifies``, ``wake_up_values``, ``wake_up_condition``, ``open_listener`` (a
  :class:`~queuekit.dialects.base.Listener`).

Driver errors are classified in :mod:`queuekit.errors`, by the codes the
drivers attach to them.
"""

from __future__ import annotations

from sqlalchemy import Connection
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


def check_server_version(connection: Connection) -> None:
    """Raise :class:`UnsupportedDatabaseError` unless the server is one queuekit supports.

    The dialect says which product the server is and its oldest supported
    version (PostgreSQL 13, SQLite 3.35, MariaDB 10.6, MySQL 8.0).
    """
    product, minimum = support_for(connection.dialect).minimum_version(connection.dialect)
    info = connection.dialect.server_version_info or ()
    version = tuple(part for part in info if isinstance(part, int))
    if version < minimum:
        found = ".".join(map(str, version)) or "unknown"
        wanted = ".".join(map(str, minimum))
        raise UnsupportedDatabaseError(
            f"queuekit needs {product} >= {wanted}; this server is {product} {found}"
        )


__all__ = ["DialectSupport", "check_server_version", "support_for"]
