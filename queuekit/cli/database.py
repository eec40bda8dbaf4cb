"""The ``queuekit db`` commands: migrate, inspect and check the schema."""

from __future__ import annotations

import sys

import click

from queuekit.cli.app import (
    InputError,
    cli,
    console,
    current_state,
    database_access,
    json_option,
    print_json,
)
from queuekit.errors import (
    SchemaNotMigratedError,
)

# -- db ----------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create, upgrade and check queuekit's tables (works on an empty database)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@json_option
def db_upgrade(revision: str) -> None:
    """Migrate queuekit's tables up to REVISION (default: the newest)."""
    from queuekit import migrations

    state = current_state()
    engine = state.engine()
    with database_access(state):
        before = migrations.current(engine, schema=state.schema)
        migrations.upgrade(engine, revision, schema=state.schema)
        after = migrations.current(engine, schema=state.schema)
    if state.json:
        print_json({"from": before, "to": after, "head": migrations.head()})
    elif before == after:
        console().print(f"Already at revision {after}.")
    else:
        console().print(f"Upgraded queuekit's tables from {before or 'nothing'} to {after}.")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
def db_downgrade(revision: str, yes: bool) -> None:
    """Migrate queuekit's tables down to REVISION; 'base' drops them all, with their data."""
    from queuekit import migrations

    state = current_state()
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("downgrading can delete jobs and history; pass --yes to confirm")
        click.confirm(
            f"Downgrade queuekit's tables at {state.display_url} to {revision}?", abort=True
        )
    engine = state.engine()
    with database_access(state):
        before = migrations.current(engine, schema=state.schema)
        migrations.downgrade(engine, revision, schema=state.schema)
        after = migrations.current(engine, schema=state.schema)
    if state.json:
        print_json({"from": before, "to": after, "head": migrations.head()})
    else:
        console().print(f"Downgraded queuekit's tables from {before} to {after or 'nothing'}.")


@db.command("current")
@json_option
def db_current() -> None:
    """Print the revision the database is at ('none' before the first upgrade)."""
    from queuekit import migrations

    state = current_state()
    engine = state.engine()
    with database_access(state):
        revision = migrations.current(engine, schema=state.schema)
        merged = migrations.merged_revision(engine, schema=state.schema)
    head = migrations.head()
    shown = revision or merged
    if state.json:
        print_json(
            {"current": shown, "head": head, "up_to_date": shown == head, "merged": bool(merged)}
        )
        return
    note = "up to date" if shown == head else f"head is {head}"
    if merged:
        note = f"merged into your Alembic history; {note}"
    console().print(f"{shown or 'none'} ({note})")


@db.command("check")
@json_option
def db_check() -> None:
    """Exit 0 when the tables are at the newest revision, else 1 with what to run."""
    from queuekit import migrations

    state = current_state()
    engine = state.engine()
    head = migrations.head()
    with database_access(state):
        revision = migrations.current(engine, schema=state.schema)
        merged = migrations.merged_revision(engine, schema=state.schema)
        shown = revision or merged
        try:
            migrations.check(engine, schema=state.schema)
        except SchemaNotMigratedError:
            if state.json:
                print_json(
                    {"current": shown, "head": head, "up_to_date": False, "merged": bool(merged)}
                )
            raise
    if state.json:
        print_json({"current": shown, "head": head, "up_to_date": True, "merged": bool(merged)})
    elif merged:
        console().print(
            f"queuekit's tables are up to date ({head}, merged into your Alembic history)."
        )
    else:
        console().print(f"queuekit's tables are up to date ({head}).")
