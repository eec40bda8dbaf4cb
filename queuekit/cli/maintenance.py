"""Commands that keep the tables tidy: ``gc`` and ``maintain``."""

from __future__ import annotations

from datetime import timedelta

import click

from queuekit import defaults
from queuekit.cli.app import (
    DURATION,
    INTERVAL,
    RuntimeFailure,
    age,
    cli,
    console,
    current_state,
    json_option,
    print_json,
)
from queuekit.cli.logs import logging_to_stderr


@cli.command("gc")
@click.option(
    "--keep-task-identifiers",
    type=DURATION,
    default=defaults.TASK_IDENTIFIER_KEEP,
    show_default=True,
    help="Forget unused task identifiers (no schema, no job) after this long.",
)
@json_option
def gc(keep_task_identifiers: timedelta) -> None:
    """Delete expired history, empty named queues and unused task identifiers."""
    from rich.table import Table

    state = current_state()
    manager = state.manager()
    counts = {
        "job_history": manager.gc_job_history(),
        "job_queues": manager.gc_job_queues(),
        "task_identifiers": manager.gc_task_identifiers(keep=keep_task_identifiers),
    }
    if state.json:
        print_json(counts)
        return
    table = Table(title="Deleted")
    for name in counts:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(str(n) for n in counts.values()))
    console().print(table)


@cli.command("maintain")
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--interval", type=INTERVAL, default="1 minute", show_default=True)
@click.option("--lock-timeout", type=DURATION, default=defaults.LOCK_TIMEOUT, show_default=True)
@click.option("--gc-schedule", default="0 3 * * *", show_default=True, metavar="CRON")
@click.option("--gc-timezone", default="UTC", show_default=True, metavar="ZONE")
@click.option(
    "--keep-task-identifiers",
    type=DURATION,
    default=defaults.TASK_IDENTIFIER_KEEP,
    show_default=True,
)
@json_option
def maintain(
    once: bool,
    interval: timedelta,
    lock_timeout: timedelta,
    gc_schedule: str,
    gc_timezone: str,
    keep_task_identifiers: timedelta,
) -> None:
    """Reset expired locks and refill rate limits every interval; GC on a cron schedule."""
    from rich.table import Table

    from queuekit.maintenance import Maintenance

    state = current_state()
    upkeep = Maintenance(
        state.manager(),
        interval=interval,
        lock_timeout=lock_timeout,
        gc_schedule=gc_schedule,
        gc_timezone=gc_timezone,
        task_identifier_retention=keep_task_identifiers,
    )
    if not once:
        click.echo(
            f"Maintaining {state.display_url} every {age(interval)}; Ctrl-C stops.", err=True
        )
        with logging_to_stderr("info"):
            upkeep.run()
        if upkeep.errors and upkeep.runs == 0:
            raise RuntimeFailure("maintenance could not reach the database; see the log above")
        return
    with logging_to_stderr("warning"):
        report = upkeep.run_once()
    if upkeep.errors:
        raise RuntimeFailure(
            f"{upkeep.errors} maintenance step(s) failed; see the log above for the database error"
        )
    if state.json:
        print_json(report)
        return
    table = Table(title="Maintenance pass")
    for column in ("locks reset", "buckets refilled", "dead workers", "GC"):
        table.add_column(column, justify="right")
    gc_text = "not due"
    if report.gc is not None:
        gc_text = (
            f"{report.gc.history} history, {report.gc.queues} queues, "
            f"{report.gc.task_identifiers} task ids"
        )
    table.add_row(str(report.reset), str(report.refilled), str(report.dead_workers), gc_text)
    console().print(table)
