"""Which database servers queuekit runs on, checked once a connection is open."""

from __future__ import annotations

from sqlalchemy import Connection

from queuekit.dialects import support_for
from queuekit.errors import UnsupportedDatabaseError


def check_server_version(connection: Connection) -> None:
    """Raise :class:`UnsupportedDatabaseError` unless the server is one queuekit supports.

    The dialect seam says which product the server is and its oldest supported
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
