"""Run queuekit's Alembic migrations from Python, and keep its tables out of a host's.

queuekit records its revision in its own version table,
``queuekit_alembic_version``, so its history never mixes with the host
application's. ``bind`` is an :class:`~sqlalchemy.Engine` (the work runs in a
transaction of its own, committed at the end) or a
:class:`~sqlalchemy.Connection` (the work runs in the connection's
transaction, begun here if the caller has not begun it yet, and never
committed or rolled back here: the caller decides).

A host application's ``env.py`` passes :func:`include_name` and
:func:`include_object` to ``context.configure()`` so that its autogenerate
never proposes to drop queuekit's tables.

queuekit's own ``env.py`` uses :func:`environment_options` and
:func:`migration_connection`, and nothing else of queuekit; its revisions
import no queuekit code at all, so that a change to the models can never
change what an old revision builds.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.schema import CreateSchema

from queuekit.dialects import check_server_version
from queuekit.dialects.base import OWN_TRANSACTION
from queuekit.errors import InvalidArgumentError, SchemaNotMigratedError, translate_db_errors
from queuekit.lineage import check_new_revisions
from queuekit.models import metadata
from queuekit.table_filters import (
    TABLE_PREFIX,
    VERSION_TABLE,
    environment_options,
    include_name,
    include_object,
)

# Alembic is imported only to migrate: checking the schema, which every
# JobManager and command does at start, reads the version table and the
# revision files directly (importing Alembic would double a command's start-up).
if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

__all__ = [
    "TABLE_PREFIX",
    "VERSION_TABLE",
    "check",
    "check_new_revisions",
    "current",
    "downgrade",
    "head",
    "include_name",
    "include_object",
    "merged_revision",
    "script_location",
    "upgrade",
    "versions_location",
]

#: The version table of a host application whose history merged queuekit's revisions.
HOST_VERSION_TABLE = "alembic_version"
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


def versions_location() -> str:
    """The directory holding queuekit's revisions, for a host's ``version_locations``.

    A host that merges queuekit's revisions into its own history (through the
    ``queuekit`` branch label) lists this directory, or with an installed
    wheel the equivalent ``queuekit:_alembic/versions``, in its
    ``alembic.ini``.
    """
    return str(Path(script_location()) / "versions")


def _config(connection: Connection | None = None, schema: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


_REVISION_LINE = re.compile(r"^(down_revision|revision)\b[^=]*=\s*(.+?)\s*$", re.MULTILINE)


@functools.cache
def _revision_parents() -> dict[str, str | None]:
    """Each revision queuekit ships, with the one it follows (read from the files)."""
    parents: dict[str, str | None] = {}
    for path in sorted(Path(versions_location()).glob("*.py")):
        found: dict[str, str] = {
            match[1]: match[2] for match in _REVISION_LINE.finditer(path.read_text())
        }
        if "revision" in found:
            down = found.get("down_revision", "None").strip("\"'")
            parents[found["revision"].strip("\"'")] = None if down == "None" else down
    return parents


def head() -> str:
    """The revision id of the newest migration shipped with this version of queuekit."""
    parents = _revision_parents()
    (revision,) = set(parents) - set(parents.values())
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
def migration_connection(bind: Engine | Connection) -> Iterator[Connection]:
    """A connection to a supported server, inside a transaction: our own or the caller's.

    On an engine the transaction is queuekit's own, committed on success. On
    a connection it is the caller's (begun here if need be, as SQLAlchemy 2
    would on the first statement) and left open for the caller to commit or
    roll back. Raises :class:`~queuekit.errors.UnsupportedDatabaseError` on a
    server queuekit does not support, before anything is written.
    """
    with translate_db_errors(), ExitStack() as stack:
        if isinstance(bind, Engine):
            connection = stack.enter_context(bind.connect())
            connection.execution_options(**{OWN_TRANSACTION: True})
            stack.enter_context(connection.begin())
        else:
            connection = bind
            if not connection.in_transaction():
                connection.begin()
        _sqlite_transactional_ddl(connection)
        check_server_version(connection)
        yield connection


def upgrade(
    bind: Engine | Connection, revision: str = "head", *, schema: str | None = None
) -> None:
    """Migrate queuekit's tables up to ``revision`` (default: the newest).

    ``schema`` puts the tables and the version table in that named schema.
    Raises :class:`~queuekit.errors.UnsupportedDatabaseError` on a server
    queuekit does not support.
    """
    _refuse_unknown_revision(revision)
    from alembic import command

    with migration_connection(bind) as connection, _revision_errors():
        _create_schema(connection, schema)
        _refuse_unrecorded_tables(connection, schema)
        command.upgrade(_config(connection, schema), revision)


def _scripts() -> ScriptDirectory:
    """queuekit's revisions as Alembic reads them."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config())


def _refuse_unknown_revision(revision: object) -> None:
    """Refuse a revision no migration of this version has, before touching the database.

    Relative steps (``-1``, ``+2``) resolve against the database's revision,
    so only :func:`_revision_errors` can catch those.
    """
    if not isinstance(revision, str) or not revision.strip():
        raise InvalidArgumentError("revision must be a revision id, 'head' or 'base'")
    if re.search(r"[+-]\d+$", revision):
        return
    from alembic.util import CommandError

    try:
        _scripts().get_revisions(revision)
    except CommandError:
        known = ", ".join(script.revision for script in _scripts().walk_revisions())
        raise InvalidArgumentError(
            f"unknown revision {revision!r}: use head, base or one of {known}"
        ) from None


@contextmanager
def _revision_errors() -> Iterator[None]:
    """Alembic's complaints about a revision argument, as the caller's mistake."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as error:
        raise InvalidArgumentError(f"cannot migrate: {error}") from None


def _create_schema(connection: Connection, schema: str | None) -> None:
    """Create the named schema queuekit's tables go to, when it does not exist yet."""
    if schema is not None and not inspect(connection).has_schema(schema):
        connection.execute(CreateSchema(schema))


def _refuse_unrecorded_tables(connection: Connection, schema: str | None) -> None:
    """Refuse to migrate tables that exist while queuekit's version table records nothing.

    They belong to a host whose own Alembic history runs queuekit's revisions
    (merged lineage), or were left by an interrupted migration; creating them
    again would only fail half-way with a driver error.
    """
    if current(connection, schema=schema) is not None:
        return
    existing = _existing_tables(connection, schema)
    if not existing:
        return
    names = ", ".join(sorted(existing))
    raise SchemaNotMigratedError(
        f"queuekit's tables ({names}) exist but {VERSION_TABLE} records no revision. "
        "If your application's Alembic history includes queuekit's revisions (the `queuekit` "
        "branch label), migrate them with `alembic upgrade heads` instead; otherwise an "
        "earlier migration was interrupted: drop those tables and run `queuekit db upgrade`"
    )


def downgrade(bind: Engine | Connection, revision: str, *, schema: str | None = None) -> None:
    """Migrate queuekit's tables down to ``revision``; ``"base"`` drops them all."""
    _refuse_unknown_revision(revision)
    from alembic import command

    with migration_connection(bind) as connection, _revision_errors():
        command.downgrade(_config(connection, schema), revision)


def current(bind: Engine | Connection, *, schema: str | None = None) -> str | None:
    """The revision the database is at, or None when queuekit's tables were never created."""
    with translate_db_errors(), ExitStack() as stack:
        connection = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        versions = _recorded_versions(connection, VERSION_TABLE, schema)
        if len(versions) > 1:
            raise SchemaNotMigratedError(
                f"{VERSION_TABLE} records several revisions ({', '.join(versions)}); "
                "queuekit's history has one head: keep the newest row only"
            )
        return versions[0] if versions else None


def _recorded_versions(connection: Connection, name: str, schema: str | None) -> list[str]:
    """The revisions an Alembic version table records (none when it does not exist)."""
    if not inspect(connection).has_table(name, schema=schema):
        return []
    version_table = sa.table(name, sa.column("version_num"), schema=schema)
    return sorted(connection.execute(sa.select(version_table.c.version_num)).scalars())


def check(bind: Engine | Connection, *, schema: str | None = None) -> None:
    """Raise :class:`~queuekit.errors.SchemaNotMigratedError` unless the database is at head.

    The revision is read from ``queuekit_alembic_version``. When that table
    records nothing, the host application's ``alembic_version`` is consulted:
    a host that merged queuekit's revisions into its own history keeps them
    there (see :func:`_check_merged_lineage`). Every table of the head schema
    must also exist: a version table that claims more than the database holds
    (a half-migrated or hand-edited database) is refused too.
    """
    with translate_db_errors(), ExitStack() as stack:
        connection = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        revision = current(connection, schema=schema)
        if revision is None:
            _check_merged_lineage(connection, schema)
            return
        _check_revision(revision, UPGRADE_HINT)
        missing = set(metadata.tables) - _existing_tables(connection, schema)
        if missing:
            raise SchemaNotMigratedError(
                f"{VERSION_TABLE} says queuekit's tables are at revision {revision!r}, but "
                f"{', '.join(sorted(missing))} are missing (the database is half-migrated); "
                f"drop queuekit's remaining tables and {VERSION_TABLE}, then run "
                "`queuekit db upgrade`"
            )


def merged_revision(bind: Engine | Connection, *, schema: str | None = None) -> str | None:
    """The revision of queuekit's tables kept in a host's history (merged lineage), else None.

    That is queuekit's revision recorded in the host's ``alembic_version``,
    or, once Alembic dropped that row (a host revision depends on it), the
    head when every table and column matches it. None when queuekit keeps its
    own version table, when nothing is migrated, or when the merged schema is
    out of date in a way no recorded revision names.
    """
    with translate_db_errors(), ExitStack() as stack:
        connection = stack.enter_context(bind.connect()) if isinstance(bind, Engine) else bind
        if current(connection, schema=schema) is not None:
            return None
        host_versions = _recorded_versions(connection, HOST_VERSION_TABLE, schema)
        if not host_versions or not _existing_tables(connection, schema):
            return None
        for revision in host_versions:
            if revision.startswith(TABLE_PREFIX) or revision in _known_revisions():
                return revision
        try:
            _check_merged_lineage(connection, schema)
        except SchemaNotMigratedError:
            return None
        return head()


def _known_revisions() -> set[str]:
    return set(_revision_parents())


def _check_revision(revision: str, hint: str) -> None:
    """Raise unless ``revision`` is queuekit's head."""
    expected = head()
    if revision == expected:
        return
    if revision not in _known_revisions():
        raise SchemaNotMigratedError(
            f"queuekit's tables are at revision {revision!r}, which this version of queuekit "
            "does not know; install the newer queuekit that migrated them"
        )
    raise SchemaNotMigratedError(
        f"queuekit's tables are at revision {revision!r}, not {expected!r}; {hint}"
    )


def _existing_tables(connection: Connection, schema: str | None) -> set[str]:
    """Names of queuekit's tables (not its version table) that exist."""
    return set(metadata.tables) & set(inspect(connection).get_table_names(schema=schema))


def _check_merged_lineage(connection: Connection, schema: str | None) -> None:
    """Check a database whose queuekit revisions live in the host's ``alembic_version``.

    Alembic keeps one row per head there, and drops queuekit's row once a host
    revision that ``depends_on`` it is applied, so the row may be gone. Then
    the tables themselves are compared with the head models: every table and
    column must exist.
    """
    hint = "run `alembic upgrade heads` (your Alembic history includes queuekit's revisions)"
    host_versions = _recorded_versions(connection, HOST_VERSION_TABLE, schema)
    existing = _existing_tables(connection, schema)
    if not existing:
        raise SchemaNotMigratedError(f"queuekit's tables do not exist; {UPGRADE_HINT}")
    if not host_versions:
        names = ", ".join(sorted(existing))
        raise SchemaNotMigratedError(
            f"queuekit's tables ({names}) exist but no version table records their revision; "
            "if an earlier migration was interrupted, drop them and run `queuekit db upgrade`"
        )
    for revision in host_versions:
        if revision.startswith(TABLE_PREFIX) or revision in _known_revisions():
            _check_revision(revision, hint)
    missing = sorted(set(metadata.tables) - existing)
    columns = inspect(connection).get_multi_columns(schema=schema, filter_names=sorted(existing))
    for (_, table), reflected in sorted(columns.items()):
        present = {column["name"] for column in reflected}
        expected = set(metadata.tables[table].columns.keys())
        missing.extend(f"{table}.{column}" for column in sorted(expected - present))
    if missing:
        raise SchemaNotMigratedError(
            f"queuekit's schema is out of date ({', '.join(sorted(missing))} missing); {hint}"
        )


_context_options = environment_options  # the name older code (and its tests) use
