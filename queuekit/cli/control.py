"""Commands that stop work and show who does it: ``cancel``, ``pause``, ``resume``, ``workers``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from queuekit.cli.app import (
    JOB_ID,
    age,
    cli,
    console,
    current_state,
    jobs_table,
    json_option,
    print_json,
    print_result,
    when,
)
from queuekit.types import TaskIdentifier

if TYPE_CHECKING:
    from rich.table import Table


@cli.command("cancel")
@click.argument("job_ids", nargs=-1, required=True, type=JOB_ID, metavar="JOB_ID...")
@json_option
def cancel(job_ids: tuple[uuid.UUID, ...]) -> None:
    """Cancel jobs: waiting ones are deleted, running ones lose their lock and are deleted.

    Each leaves a history row with status 'cancelled'. Ids of jobs that are
    no longer queued (finished, or never there) are skipped.
    """
    state = current_state()
    cancelled = state.manager().cancel_jobs(list(job_ids))
    if state.json:
        print_json(cancelled)
        return
    out = console()
    if cancelled:
        out.print(jobs_table(cancelled, title="Cancelled"))
    skipped = sorted(set(job_ids) - {job.id for job in cancelled}, key=str)
    if skipped:
        listed = ", ".join(map(str, skipped[:3])) + (" …" if len(skipped) > 3 else "")
        out.print(f"Not queued (skipped): {listed}")
    out.print(f"Cancelled {len(cancelled)} job(s).")


def tasks_table(tasks: Sequence[TaskIdentifier], title: str) -> Table:
    """Task identifiers with their pause state."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("task", "paused since (UTC)", "schema"):
        table.add_column(column)
    for task in tasks:
        table.add_row(
            task.identifier,
            when(task.paused_at) or "-",
            "yes" if task.payload_schema is not None else "no",
        )
    return table


@cli.command("pause")
@click.argument("tasks", nargs=-1, required=True, metavar="TASK...")
@json_option
def pause(tasks: tuple[str, ...]) -> None:
    """Stop claims of these tasks' jobs until resumed (enqueueing still works)."""
    paused = current_state().manager().pause_tasks(list(tasks))
    summary = f"Paused {len(paused)} task(s); running jobs finish as usual."
    print_result(paused, summary, lambda: tasks_table(paused, "Paused"))


@cli.command("resume")
@click.argument("tasks", nargs=-1, required=True, metavar="TASK...")
@json_option
def resume(tasks: tuple[str, ...]) -> None:
    """Let workers claim these tasks' jobs again."""
    resumed = current_state().manager().resume_tasks(list(tasks))
    print_result(
        resumed, f"Resumed {len(resumed)} task(s).", lambda: tasks_table(resumed, "Resumed")
    )


@cli.command("workers")
@json_option
def workers() -> None:
    """Registered workers: where they run, since when, and when they were last seen."""
    state = current_state()
    manager = state.manager()
    registered = manager.list_workers()
    if state.json:
        print_json(registered)
        return
    now = manager.now()
    from rich.table import Table

    table = Table(title="Workers")
    for column in ("worker id", "host", "pid", "started (UTC)", "last seen", "tasks", "slots"):
        table.add_column(column, no_wrap=column in {"worker id", "started (UTC)"})
    table.add_column("version")
    for info in registered:
        table.add_row(
            info.worker_id,
            info.hostname,
            str(info.pid),
            when(info.started_at),
            f"{age(now - info.last_seen)} ago",
            "all" if info.task_identifiers is None else ", ".join(info.task_identifiers),
            str(info.concurrency),
            info.version,
        )
    out = console()
    out.print(table)
    out.print(f"{len(registered)} worker(s) registered.")
