"""Administration commands: replay, unlock, fail, reschedule, rate limits, schemas."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from queuekit import defaults
from queuekit.cli.app import (
    DURATION,
    INTERVAL,
    JOB_ID,
    JSON,
    TIME,
    InputError,
    cli,
    console,
    current_state,
    jobs_table,
    json_option,
    print_json,
    print_result,
    progress_bar,
    queues_table,
    rate_limit_table,
    window_start,
)
from queuekit.types import (
    Job,
    TaskIdentifier,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from queuekit.manager import JobManager

# -- admin ----------------------------------------------------------------------------------


#: Rows a command prints at most for jobs it changed in bulk; --json has them all.
SHOWN_ROWS = 20


@cli.command("replay")
@click.option("--from", "from_time", type=TIME, help="Failed attempts started at or after.")
@click.option("--to", "to_time", type=TIME, help="Failed attempts started at or before.")
@click.option("--since", type=DURATION, help="Failed attempts started within this duration.")
@click.option("--task", "task_identifier", metavar="TASK")
@click.option(
    "--max-attempts", type=click.IntRange(min=1), help=f"Default: {defaults.MAX_ATTEMPTS}."
)
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@json_option
def replay(
    from_time: datetime | None,
    to_time: datetime | None,
    since: timedelta | None,
    task_identifier: str | None,
    max_attempts: int | None,
    dry_run: bool,
) -> None:
    """Re-enqueue jobs whose final outcome was failure (atomically, with the flag 'replay')."""
    state = current_state()
    manager = state.manager()
    from_time = window_start(manager, from_time, since)

    def replay_in(session: Connection | None) -> list[Job]:
        return manager.replay_failed_jobs(
            from_time=from_time,
            to_time=to_time,
            task_identifier=task_identifier,
            max_attempts=max_attempts,
            session=session,
        )

    def run() -> list[Job]:
        if not dry_run:
            return replay_in(None)
        # The very replay, payload checks included, in a transaction rolled back.
        with manager.engine.connect() as connection:
            try:
                return replay_in(connection)
            finally:
                connection.rollback()

    if state.json:
        print_json({"dry_run": dry_run, "jobs": run()} if dry_run else run())
        return
    with progress_bar(transient=True) as progress:
        task = progress.add_task("Replaying failed jobs", total=None)
        replayed = run()
        progress.update(task, total=len(replayed), completed=len(replayed))
    out = console()
    verb = "Would replay" if dry_run else "Replayed"
    if replayed:
        out.print(jobs_table(replayed[:SHOWN_ROWS], title=verb))
    out.print(f"{verb} {len(replayed)} job(s){by_task(replayed)}.")
    if len(replayed) > SHOWN_ROWS:
        out.print(f"Showing {SHOWN_ROWS} of them; --json lists them all.")
    if dry_run:
        out.print("Nothing was changed (--dry-run).")


def by_task(jobs: Sequence[Job]) -> str:
    """``": a 3, b 1"``: how many of ``jobs`` each task has, most first."""
    counts = Counter(job.task_identifier for job in jobs)
    if len(counts) < 2:
        return ""
    return ": " + ", ".join(f"{task} {count}" for task, count in counts.most_common())


@cli.group()
def unlock() -> None:
    """Take locks away from jobs or named queues (their running attempts close as failed)."""


@unlock.command("jobs")
@click.argument("worker_ids", nargs=-1, metavar="[WORKER_ID]...")
@click.option("--all", "everything", is_flag=True, help="Unlock every locked job.")
@json_option
def unlock_jobs(worker_ids: tuple[str, ...], everything: bool) -> None:
    """Unlock the jobs held by these workers (or all of them with --all)."""
    if bool(worker_ids) == everything:
        raise InputError("name the workers whose jobs to unlock, or pass --all (not both)")
    unlocked = current_state().manager().force_unlock_jobs(None if everything else list(worker_ids))
    summary = f"Unlocked {len(unlocked)} job(s)."
    print_result(unlocked, summary, lambda: jobs_table(unlocked, title="Unlocked"))


@unlock.command("queues")
@click.argument("queue_names", nargs=-1, metavar="[QUEUE]...")
@click.option("--all", "everything", is_flag=True, help="Unlock every named queue.")
@json_option
def unlock_queues(queue_names: tuple[str, ...], everything: bool) -> None:
    """Free these named queues (or all with --all), unlocking any job running in them."""
    if bool(queue_names) == everything:
        raise InputError("name the queues to unlock, or pass --all (not both)")
    unlocked = (
        current_state().manager().force_unlock_queues(None if everything else list(queue_names))
    )
    print_result(unlocked, f"Unlocked {len(unlocked)} queue(s).", lambda: queues_table(unlocked))


def existing_jobs(manager: JobManager, job_ids: Sequence[uuid.UUID]) -> None:
    """Refuse, before changing anything, when a listed job id is not queued."""
    missing = [job_id for job_id in job_ids if manager.get_job(job_id) is None]
    if missing:
        listed = ", ".join(map(str, missing[:3])) + (" …" if len(missing) > 3 else "")
        raise InputError(f"no queued job {listed}; nothing was changed")


@cli.command("fail")
@click.argument("job_ids", nargs=-1, required=True, type=JOB_ID, metavar="JOB_ID...")
@click.option("--reason", required=True, help="Why; stored as the job's last error.")
@json_option
def fail(job_ids: tuple[uuid.UUID, ...], reason: str) -> None:
    """Permanently fail (exhaust) jobs; a running one loses its lock."""
    manager = current_state().manager()
    existing_jobs(manager, job_ids)
    failed = manager.permanently_fail_jobs(list(job_ids), reason)
    summary = f"Failed {len(failed)} job(s)."
    print_result(failed, summary, lambda: jobs_table(failed, title="Failed permanently"))


@cli.command("reschedule")
@click.argument("job_ids", nargs=-1, required=True, type=JOB_ID, metavar="JOB_ID...")
@click.option("--run-at", type=TIME, help="New earliest start, ISO 8601 with offset.")
@click.option("--delay", type=DURATION, help="New earliest start as a delay from now.")
@click.option("--priority", type=int)
@click.option("--max-attempts", type=click.IntRange(min=1))
@json_option
def reschedule(
    job_ids: tuple[uuid.UUID, ...],
    run_at: datetime | None,
    delay: timedelta | None,
    priority: int | None,
    max_attempts: int | None,
) -> None:
    """Change when, in which order, or how often jobs run."""
    if run_at is not None and delay is not None:
        raise InputError("give --run-at or --delay, not both")
    if run_at is None and delay is None and priority is None and max_attempts is None:
        raise InputError("nothing to change: give --run-at, --delay, --priority or --max-attempts")
    manager = current_state().manager()
    existing_jobs(manager, job_ids)
    if delay is not None:
        run_at = manager.now() + delay
    changed = manager.reschedule_jobs(
        list(job_ids), run_at=run_at, priority=priority, max_attempts=max_attempts
    )
    summary = f"Rescheduled {len(changed)} job(s)."
    print_result(changed, summary, lambda: jobs_table(changed, title="Rescheduled"))


@cli.group("rate-limit")
def rate_limit() -> None:
    """Token buckets that cap how many jobs with a key start per interval."""


@rate_limit.command("set")
@click.argument("key")
@click.argument("capacity", type=click.IntRange(min=1))
@click.argument("interval", type=INTERVAL)
@json_option
def rate_limit_set(key: str, capacity: int, interval: timedelta) -> None:
    """Create or change bucket KEY: CAPACITY job starts per INTERVAL (e.g. '1 minute')."""
    state = current_state()
    limit = state.manager().register_rate_limit(key, capacity, interval)
    if state.json:
        print_json(limit)
    else:
        console().print(rate_limit_table(limit))


@rate_limit.command("show")
@click.argument("key")
@json_option
def rate_limit_show(key: str) -> None:
    """Show bucket KEY with its tokens and refill times."""
    state = current_state()
    limit = state.manager().get_rate_limit(key)
    if limit is None:
        raise InputError(
            f"unknown rate-limit key {key!r}; create it with `queuekit rate-limit set`"
        )
    if state.json:
        print_json(limit)
    else:
        console().print(rate_limit_table(limit))


@cli.group()
def schema() -> None:
    """JSON Schemas that payloads of a task must match at enqueue."""


@schema.command("set")
@click.argument("task")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@json_option
def schema_set(task: str, file: str) -> None:
    """Store the JSON Schema in FILE ('-' for stdin) for TASK's payloads."""
    document = JSON.convert("-" if file == "-" else f"@{file}", None, click.get_current_context())
    if not isinstance(document, dict):
        raise InputError(f"{file!r} must hold a JSON object (a JSON Schema document)")
    stored = current_state().manager().register_task(task, schema=document)
    print_result(stored, f"Stored the payload schema of {stored.identifier}.")


@schema.command("remove")
@click.argument("task")
@json_option
def schema_remove(task: str) -> None:
    """Remove TASK's schema: its payloads may be any JSON object again."""
    manager = current_state().manager()
    if manager.get_task(task) is None:
        raise InputError(f"unknown task identifier {task!r}")
    stored = manager.register_task(task, schema=None)
    print_result(stored, f"Removed the payload schema of {stored.identifier}.")


@schema.command("show")
@click.argument("task")
@json_option
def schema_show(task: str) -> None:
    """Print TASK's payload schema."""
    state = current_state()
    stored: TaskIdentifier | None = state.manager().get_task(task)
    if stored is None:
        raise InputError(
            f"unknown task identifier {task!r}; it has no schema and no job "
            "(set one with `queuekit schema set`)"
        )
    if state.json:
        print_json(stored)
    elif stored.payload_schema is None:
        console().print(f"{task} has no payload schema: any JSON object is accepted.")
    else:
        click.echo(json.dumps(stored.payload_schema, indent=2, sort_keys=True))
