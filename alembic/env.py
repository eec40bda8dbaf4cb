"""queuekit's Alembic environment.

:mod:`queuekit.migrations` runs it with a connection in
``config.attributes["connection"]`` whose transaction it owns, and an optional
named schema in ``config.attributes["schema"]``. The ``alembic`` command line
runs it with ``sqlalchemy.url`` from the ini file or ``QUEUEKIT_DATABASE_URL``
(and ``-x schema=NAME``).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

# What queuekit's environment needs of queuekit, and nothing more: the options of
# context.configure() and a checked connection in a transaction.
from queuekit.migrations import environment_options, migration_connection

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("QUEUEKIT_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url in alembic.ini or QUEUEKIT_DATABASE_URL")
    return url


def _schema() -> str | None:
    schema: str | None = config.attributes.get("schema")
    return schema or context.get_x_argument(as_dictionary=True).get("schema")


def run_migrations_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``); default schema only."""
    context.configure(url=_url(), literal_binds=True, **environment_options())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    schema = _schema()
    # Connection.execution_options() changes the connection in place: restore it afterwards.
    saved = connection.get_execution_options().get("schema_translate_map")
    if schema is not None:
        connection.execution_options(schema_translate_map={None: schema})
    try:
        context.configure(connection=connection, **environment_options(schema))
        # A no-op when the connection is already in a transaction (the caller's).
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execution_options(schema_translate_map=saved)


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new one to the configured URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with migration_connection(engine) as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
