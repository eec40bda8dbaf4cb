"""Which database servers queuekit runs on, checked once a connection is open."""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from queuekit.errors import UnsupportedDatabaseError

MINIMUM_VERSIONS: dict[str, tuple[int, ...]] = {
    "postgresql": (13,),
    "sqlite": (3, 35),
    "mariadb": (10, 6),
    "mysql": (8, 0),
}

_LABELS = {"postgresql": "PostgreSQL", "sqlite": "SQLite", "mariadb": "MariaDB", "mysql": "MySQL"}


def server_family(dialect: Dialect) -> str:
    """The dialect's name, telling MariaDB apart from MySQL whatever the URL said."""
    if dialect.name in ("mysql", "mariadb"):
        return "mariadb" if getattr(dialect, "is_mariadb", False) else "mysql"
    return dialect.name


def check_server_version(connection: Connection) -> None:
    """Raise :class:`UnsupportedDatabaseError` unless the server is one queuekit supports.

    Needs PostgreSQL >= 13, SQLite >= 3.35, MariaDB >= 10.6 or MySQL >= 8.0.
    """
    family = server_family(connection.dialect)
    minimum = MINIMUM_VERSIONS.get(family)
    if minimum is None:
        raise UnsupportedDatabaseError(
            f"queuekit does not support the {connection.dialect.name!r} dialect; "
            "it runs on PostgreSQL, SQLite, MariaDB and MySQL"
        )
    info = connection.dialect.server_version_info or ()
    version = tuple(part for part in info if isinstance(part, int))
    if version < minimum:
        label = _LABELS[family]
        found = ".".join(map(str, version)) or "unknown"
        wanted = ".".join(map(str, minimum))
        raise UnsupportedDatabaseError(
            f"queuekit needs {label} >= {wanted}; this server is {label} {found}"
        )
