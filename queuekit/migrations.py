"""Run queuekit's Alembic migrations from Python, and keep its tables out of a host's.

queuekit records its revision in its own version table,
``queuekit_alembic_version``, so its history never mixes with the host
application's. ``bind`` is an :class:`~sqlalchemy.Engine` (the work runs in a
transaction of its own, committed at the end) or a
:class:`~sqlalchemy.Connection` (the work joins the connection's transaction,
which is left for the caller to commit; one is begun and committed here only
when none is active).

A host application's ``env.py`` passes :func:`include_name` and
:func:`include_object` to ``context.configure()`` so that its autogenerate
never proposes to drop queuekit's tables.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from queuekit.compat import check_server_version
from queuekit.errors import SchemaNotMigratedError, translate_db_errors
from queuekit.models import metadata

__all__ = [
    "TABLE_PREFIX",
    "VERSION_TABLE",
    "check",
    "current",
    "downgrade",
    "head",
    "include_name",
    "include_object",
    "script_location",
    "upgrade",
]

TABLE_PREFIX = "queuekit_"
VERSION_TABLE = "queuekit_alembic_version"
UPGRADE_HINT = "run `queuekit db upgrade` or call queuekit.migrations.upgrade(engine)"


def script_location() -> str:
    """The directory holding queuekit's ``env.py`` and ``versions/``.

    An installed wheel has them in ``queuekit/_alembic``; a source checkout in
    the repository's top-level ``alembic`` directory.
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "_alembic", package.parent / "alembic"):
        if (candidate / "env.py").is_file():
            return str(candidate)
    raise FileNotFoundError(f"queuekit's migration scripts are missing next to {package}")


def _config(connection: Connection | None = None, schema: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head() -> str:
    """The revision id of the newest migration shipped with this version of queuekit."""
    (revision,) = _scripts().get_heads()
    return revision


def _sqlite_transactional_ddl(connection: Connection) -> None:
    """Open the DBAPI transaction pysqlite would not open before DDL.

    In its default (legacy) transaction mode the ``sqlite3`` module begins a
    transaction only before INSERT/UPDATE/DELETE, so CREATE TABLE statements
    would each commit on their own and a rollback could not undo them.
    """
    if connection.dialect.name != "sqlite":
        return
    driver = connection.connection.driver_connection
    in_transaction = getattr(driver, "in_transaction", True)
    autocommit = getattr(driver, "isolation_level", "") is None
    if not in_transaction and not autocommit:
        connection.exec_driver_sql("BEGIN")


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection inside a transaction; committed here only if begun here."""
    with translate_db_errors(), ExitStack() as stack:
        connection = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        if not connection.in_transaction():
            stack.enter_context(connection.begin())
        _sqlite_transactional_ddl(connection)
        yield connection


def upgrade(
    bind: Engine | Connection, revision: str = "head", *, schema: str | None = None
) -> None:
    """Migrate queuekit's tables up to ``revision`` (default: the newest).

    ``schema`` puts the tables and the version table in that named schema.
    Raises :class:`~queuekit.errors.UnsupportedDatabaseError` on a server
    queuekit does not support.
    """
    with _transaction(bind) as connection:
        check_server_version(connection)
        command.upgrade(_config(connection, schema), revision)


def downgrade(bind: Engine | Connection, revision: str, *, schema: str | None = None) -> None:
    """Migrate queuekit's tables down to ``revision``; ``"base"`` drops them all."""
    with _transaction(bind) as connection:
        check_server_version(connection)
        command.downgrade(_config(connection, schema), revision)


def current(bind: Engine | Connection, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or None when queuekit's tables were never created."""
    with translate_db_errors(), ExitStack() as stack:
        connection = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return context.get_current_revision()


def check(bind: Engine | Connection, *, schema: str | None = None) -> None:
    """Raise :class:`~queuekit.errors.SchemaNotMigratedError` unless the database is at head."""
    revision = current(bind, schema=schema)
    expected = head()
    if revision == expected:
        return
    if revision is None:
        raise SchemaNotMigratedError(f"queuekit's tables do not exist; {UPGRADE_HINT}")
    if revision not in {script.revision for script in _scripts().walk_revisions()}:
        raise SchemaNotMigratedError(
            f"queuekit's tables are at revision {revision!r}, which this version of queuekit "
            "does not know; install the newer queuekit that migrated them"
        )
    raise SchemaNotMigratedError(
        f"queuekit's tables are at revision {revision!r}, not {expected!r}; {UPGRADE_HINT}"
    )


def is_queuekit_table(name: str | None) -> bool:
    """Whether a table name belongs to queuekit (its version table included)."""
    return name is not None and name.startswith(TABLE_PREFIX)


def _table_of_name(
    name: str | None, type_: str, parent_names: Mapping[str, str | None]
) -> str | None:
    return name if type_ == "table" else parent_names.get("table_name")


def _table_of_object(object: Any, name: str | None, type_: str) -> str | None:
    if type_ == "table":
        return name
    table = getattr(object, "table", None)
    return getattr(table, "name", None)


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """For a host's ``context.configure(include_name=...)``: leave queuekit's tables alone."""
    return not is_queuekit_table(_table_of_name(name, type_, parent_names))


def include_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """For a host's ``context.configure(include_object=...)``: leave queuekit's tables alone."""
    return not is_queuekit_table(_table_of_object(object, name, type_))


def _include_own_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """queuekit's own environment considers only queuekit's tables."""
    table = _table_of_name(name, type_, parent_names)
    return table is None or is_queuekit_table(table)


def _include_own_object(
    object: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """queuekit's own environment considers only queuekit's tables."""
    table = _table_of_object(object, name, type_)
    return table is None or is_queuekit_table(table)


def _context_options(schema: str | None = None) -> dict[str, Any]:
    """``context.configure()`` options of queuekit's own environment (autogenerate included)."""
    return {
        "target_metadata": metadata,
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        "include_name": _include_own_name,
        "include_object": _include_own_object,
        "compare_type": True,
        "compare_server_default": True,
    }
