"""The ``queuekit db`` commands: migrate, inspect and check the schema."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from queuekit.cli.app import (
    InputError,
    State,
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
    before, after = migrate(state, migrations.upgrade, revision)
    if state.json:
        return
    if before == after:
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
    before, after = migrate(state, migrations.downgrade, revision)
    if not state.json:
        console().print(f"Downgraded queuekit's tables from {before} to {after or 'nothing'}.")


def migrate(
    state: State, move: Callable[..., None], revision: str
) -> tuple[str | None, str | None]:
    """Run ``move`` (an upgrade or a downgrade) to ``revision``: the revisions before and after.

    Under ``--json`` they are printed, with the head.
    """
    from queuekit import migrations

    engine = state.engine()
    with database_access(state):
        before = migrations.current(engine, schema=state.schema)
        move(engine, revision, schema=state.schema)
        after = migrations.current(engine, schema=state.schema)
    if state.json:
        print_json({"from": before, "to": after, "head": migrations.head()})
    return before, after


@db.command("current")
@json_option
def db_current() -> None:
    """Print the revision the database is at ('none' before the first upgrade)."""
    state = current_state()
    found = revisions(state)
    if state.json:
        print_json(found)
        return
    head = found["head"]
    note = "up to date" if found["up_to_date"] else f"head is {head}"
    if found["merged"]:
        note = f"merged into your Alembic history; {note}"
    console().print(f"{found['current'] or 'none'} ({note})")


def revisions(state: State) -> dict[str, Any]:
    """Where the tables are, for ``db current`` and ``db check``.

    Their revision (their own, or the one merged into the application's
    Alembic history), the head, and whether they are at it.
    """
    from queuekit import migrations

    engine = state.engine()
    with database_access(state):
        revision = migrations.current(engine, schema=state.schema)
        merged = migrations.merged_revision(engine, schema=state.schema)
    shown = revision or merged
    head = migrations.head()
    return {"current": shown, "head": head, "up_to_date": shown == head, "merged": bool(merged)}


@db.command("check")
@json_option
def db_check() -> None:
    """Exit 0 when the tables are at the newest revision, else 1 with what to run."""
    from queuekit import migrations

    state = current_state()
    found = revisions(state)
    with database_access(state):
        try:
            migrations.check(state.engine(), schema=state.schema)
        except SchemaNotMigratedError:
            if state.json:
                print_json({**found, "up_to_date": False})
            raise
    head = found["head"]
    if state.json:
        print_json({**found, "up_to_date": True})
    elif found["merged"]:
        console().print(
            f"queuekit's tables are up to date ({head}, merged into your Alembic history)."
        )
    else:
        console().print(f"queuekit's tables are up to date ({head}).")
