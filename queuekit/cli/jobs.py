"""Enqueueing and reading commands: ``add``, ``jobs``, ``history``, ``stats``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from queuekit import defaults
from queuekit.cli.app import (
    DURATION,
    JOB_ID,
    JSON,
    TIME,
    InputError,
    age,
    cli,
    console,
    current_state,
    failure_details,
    history_table,
    job_detail_table,
    jobs_table,
    json_option,
    print_json,
    when,
    window_start,
)
from queuekit.errors import UnknownRateLimitError
from queuekit.types import (
    HISTORY_STATUSES,
    JOB_KEY_MODES,
    JOB_STATUSES,
)

if TYPE_CHECKING:
    from rich.table import Table

# -- enqueue ------------------------------------------------------------------------------


@cli.command("add")
@click.argument("task")
@click.argument("payload", type=JSON, default="{}", required=False)
@click.option("--queue", "queue_name", metavar="NAME", help="Named queue (runs one at a time).")
@click.option("--run-at", type=TIME, help="Earliest start, ISO 8601 with offset.")
@click.option("--delay", type=DURATION, help="Earliest start as a delay from now.")
@click.option("--priority", type=int, default=0, show_default=True, help="Lower runs first.")
@click.option(
    "--max-attempts", type=click.IntRange(min=1), default=defaults.MAX_ATTEMPTS, show_default=True
)
@click.option("--job-key", metavar="KEY", help="Deduplication key.")
@click.option("--job-key-mode", type=click.Choice(JOB_KEY_MODES), help="Default: replace.")
@click.option("--flag", "flags", multiple=True, metavar="FLAG", help="Repeatable.")
@click.option("--rate-limit-key", metavar="KEY", help="A bucket made with `rate-limit set`.")
@json_option
def add(
    task: str,
    payload: Any,
    queue_name: str | None,
    run_at: datetime | None,
    delay: timedelta | None,
    priority: int,
    max_attempts: int,
    job_key: str | None,
    job_key_mode: str | None,
    flags: tuple[str, ...],
    rate_limit_key: str | None,
) -> None:
    """Enqueue one job of TASK with PAYLOAD (a JSON object; '-' reads stdin, '@FILE' a file)."""
    if run_at is not None and delay is not None:
        raise InputError("give --run-at or --delay, not both")
    state = current_state()
    manager = state.manager()
    if delay is not None:
        run_at = manager.now() + delay
    holder = None
    if job_key is not None:
        holder = manager.job_with_key(job_key)
    try:
        job = manager.add_job(
            task,
            payload,
            queue_name=queue_name,
            run_at=run_at,
            priority=priority,
            max_attempts=max_attempts,
            job_key=job_key,
            job_key_mode=job_key_mode,
            flags=flags,
            rate_limit_key=rate_limit_key,
        )
    except UnknownRateLimitError:
        raise InputError(
            f"unknown rate-limit key {rate_limit_key!r}; create its bucket first with "
            f"`queuekit rate-limit set {rate_limit_key} CAPACITY INTERVAL`"
        ) from None
    if state.json:
        print_json(job)
        return
    detail = f"({job.task_identifier}, run at {when(job.run_at)} UTC)"
    if holder is None:
        click.echo(f"Added job {job.id} {detail}.")
    elif holder.id != job.id:
        click.echo(f"Replaced job {holder.id} (key {job_key!r}) with job {job.id} {detail}.")
    elif job == holder:
        click.echo(
            f"Kept job {job.id}, already queued with key {job_key!r} {detail}; nothing changed."
        )
    else:
        click.echo(f"Updated job {job.id} (key {job_key!r}) in place {detail}.")


# -- reading -------------------------------------------------------------------------------


@cli.group()
def jobs() -> None:
    """List and inspect jobs waiting, running or exhausted."""


@jobs.command("list")
@click.option("--status", type=click.Choice(JOB_STATUSES))
@click.option("--task", "task_identifier", metavar="TASK")
@click.option("--queue", "queue_name", metavar="NAME")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True)
@json_option
def jobs_list(
    status: str | None, task_identifier: str | None, queue_name: str | None, limit: int
) -> None:
    """Jobs in claim order (completed jobs live on in `history`)."""
    state = current_state()
    found = state.manager().list_jobs(
        status=status, task_identifier=task_identifier, queue_name=queue_name, limit=limit
    )
    if state.json:
        print_json(found)
    else:
        out = console()
        out.print(jobs_table(found))
        out.print(f"{len(found)} job(s)" + (f" (limit {limit})" if len(found) == limit else ""))


@jobs.command("show")
@click.argument("job_id", type=JOB_ID)
@json_option
def jobs_show(job_id: uuid.UUID) -> None:
    """One job with every attempt it made (also for completed jobs, from history)."""
    state = current_state()
    manager = state.manager()
    job = manager.get_job(job_id)
    attempts = manager.job_history(job_id)
    if job is None and not attempts:
        raise InputError(f"no job {job_id}: not queued and no history (check `queuekit jobs list`)")
    if state.json:
        print_json({"job": job, "history": attempts})
        return
    out = console()
    if job is None:
        out.print(f"Job {job_id} is no longer queued (completed, or replaced); its attempts:")
    else:
        out.print(job_detail_table(job))
    out.print(history_table(attempts, title="Attempts (newest first)"))
    failed = [record for record in attempts if record.error_message or record.error_stack]
    if failed:
        out.print("Latest error (`queuekit history --job ID --errors` shows every attempt's):")
        for line in failure_details(failed[:1]):
            out.print(line, markup=False, highlight=False, soft_wrap=True)


@cli.command("history")
@click.option("--job", "job_id", type=JOB_ID, help="Every attempt of one job.")
@click.option("--from", "from_time", type=TIME, help="Started at or after (ISO 8601).")
@click.option("--to", "to_time", type=TIME, help="Started at or before (ISO 8601).")
@click.option("--since", type=DURATION, help="Started within this duration, e.g. '1 hour'.")
@click.option("--task", "task_identifier", metavar="TASK")
@click.option("--status", type=click.Choice(HISTORY_STATUSES))
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--errors", is_flag=True, help="Also print each error in full, with its traceback.")
@json_option
def history(
    job_id: uuid.UUID | None,
    from_time: datetime | None,
    to_time: datetime | None,
    since: timedelta | None,
    task_identifier: str | None,
    status: str | None,
    limit: int,
    errors: bool,
) -> None:
    """Attempts, newest first: of one job, or by time window, task and status."""
    state = current_state()
    manager = state.manager()
    if job_id is not None:
        if any(v is not None for v in (from_time, to_time, since, task_identifier, status)):
            raise InputError("--job cannot be combined with other filters")
        records = manager.job_history(job_id)[:limit]
    else:
        from_time = window_start(manager, from_time, since)
        records = manager.query_history(
            from_time=from_time,
            to_time=to_time,
            task_identifier=task_identifier,
            status=status,
            limit=limit,
        )
    if state.json:
        print_json(records)
    else:
        out = console()
        out.print(history_table(records))
        out.print(f"{len(records)} attempt(s)")
        if errors:
            for line in failure_details(records):
                out.print(line, markup=False, highlight=False, soft_wrap=True)
        elif any(record.error_stack for record in records):
            out.print("Full errors and tracebacks: add --errors.")


@cli.command("stats")
@json_option
def stats() -> None:
    """Jobs by status, task and named queue, and how long the oldest has waited."""
    from rich.table import Table

    state = current_state()
    result = state.manager().stats()
    if state.json:
        print_json(result)
        return
    out = console()
    totals = Table(title="Jobs")
    for name in (*JOB_STATUSES, "oldest waiting"):
        totals.add_column(name, justify="right")
    totals.add_row(
        *(str(result.by_status.get(name, 0)) for name in JOB_STATUSES),
        age(result.oldest_available_age),
    )
    out.print(totals)
    if result.by_task:
        out.print(by_status_table("By task", "task", result.by_task))
    if result.by_queue:
        lock = ("queue lock", lambda counts: "held" if counts.get("is_locked") else "free")
        out.print(by_status_table("By named queue", "queue", result.by_queue, lock))


def by_status_table(
    title: str,
    label: str,
    groups: Mapping[str, Mapping[str, Any]],
    *extra: tuple[str, Callable[[Mapping[str, Any]], str]],
) -> Table:
    """One row of job counts by status per group (task, queue), plus ``extra`` columns."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column(label)
    for name in JOB_STATUSES:
        table.add_column(name, justify="right")
    for column, _ in extra:
        table.add_column(column)
    for key, counts in sorted(groups.items()):
        statuses = (str(counts.get(name, 0)) for name in JOB_STATUSES)
        table.add_row(key, *statuses, *(cell(counts) for _, cell in extra))
    return table
