"""The shop's Alembic environment (queuekit on its own lineage).

The two queuekit lines are the whole integration: one import, and the two
filters passed to every ``context.configure()`` call.
"""

from __future__ import annotations

from alembic import context
from shopapp.models import metadata
from sqlalchemy import engine_from_config, pool

from queuekit.migrations import include_name, include_object

config = context.config


def run_migrations_offline() -> None:
    """Emit SQL for the shop's revisions without a database."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the shop's revisions on the configured database."""
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            include_name=include_name,
            include_object=include_object,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
