"""The shop's Alembic environment (queuekit's revisions merged into the shop's history).

queuekit's revisions run here like the shop's own; the include filters still
keep queuekit's tables out of the shop's autogenerate, whose models describe
only the shop's tables.
"""

from __future__ import annotations

from alembic import context
from shopapp.models import job_link_metadata, metadata
from sqlalchemy import engine_from_config, pool

from queuekit.migrations import check_new_revisions, include_name, include_object

config = context.config
target_metadata = [metadata, job_link_metadata]


def run_migrations_offline() -> None:
    """Emit SQL for every revision without a database."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=include_name,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the shop's and queuekit's revisions on the configured database."""
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            include_object=include_object,
            # Also refuses revisions made without --autogenerate (revision_environment = true).
            process_revision_directives=check_new_revisions,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
