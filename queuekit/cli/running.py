"""Commands that run things: ``worker`` and ``demo``."""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from queuekit import defaults
from queuekit.cli.app import (
    DEBUG_ENV,
    DURATION,
    INTERVAL,
    InputError,
    RuntimeFailure,
    State,
    cli,
    console,
    current_state,
    database_access,
    history_table,
    json_option,
    main,
    print_json,
    progress_bar,
)
from queuekit.cli.logs import LOG_FORMATS, LogFormat, logging_to_stderr

if TYPE_CHECKING:
    from rich.table import Table

    from queuekit.manager import JobManager


# -- the worker ---------------------------------------------------------------------------


def import_object(spec: str, option: str) -> Any:
    """The object named by ``module:attribute`` (the current directory is importable)."""
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise InputError(
            f"{option} {spec!r} must look like module:attribute, e.g. myapp.tasks:TASKS"
        )
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise InputError(f"{option} {spec!r}: cannot import {module_name!r} ({error})") from error
    except Exception as error:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        frame = traceback.extract_tb(error.__traceback__)[-1]
        raise RuntimeFailure(
            f"{option} {spec!r}: importing {module_name!r} failed with "
            f"{type(error).__name__}: {error} (at {frame.filename}:{frame.lineno}); "
            f"run again with {DEBUG_ENV}=1 to see the traceback"
        ) from error
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise InputError(f"{option} {spec!r}: {module_name} has no {attribute!r}") from None
    return target


def load_tasks(specs: Sequence[str]) -> dict[str, Callable[..., object]]:
    """Merge the task mappings named by ``--tasks`` options."""
    tasks: dict[str, Callable[..., object]] = {}
    for spec in specs:
        found = import_object(spec, "--tasks")
        if callable(found) and not isinstance(found, Mapping):
            found = found()
        if not isinstance(found, Mapping) or not all(
            isinstance(name, str) and callable(fn) for name, fn in found.items()
        ):
            raise InputError(
                f"--tasks {spec!r} must name a mapping of task identifier to function "
                "(or a function returning one)"
            )
        tasks.update(found)
    return tasks


def load_crontabs(specs: Sequence[str]) -> list[Any]:
    """Concatenate the cron entry lists named by ``--crontab`` options."""
    entries: list[Any] = []
    for spec in specs:
        found = import_object(spec, "--crontab")
        if callable(found):
            found = found()
        if isinstance(found, str | bytes | Mapping) or not isinstance(found, Sequence):
            raise InputError(f"--crontab {spec!r} must name a list of cron entries")
        entries += list(found)
    return entries


def stats_table(stats: Any, title: str) -> Table:
    """A WorkerStats as a one-row table."""
    from rich.table import Table

    table = Table(title=title)
    names = [f.name for f in dataclasses.fields(stats)]
    for name in names:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(str(getattr(stats, name)) for name in names))
    return table


@cli.command("worker")
@click.option(
    "--tasks",
    "task_specs",
    multiple=True,
    required=True,
    metavar="MODULE:MAPPING",
    help="Task identifier → function mapping to run, e.g. myapp.tasks:TASKS (repeatable).",
)
@click.option("--concurrency", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--worker-id", help="Default: host-pid-random.")
@click.option(
    "--task",
    "task_identifiers",
    multiple=True,
    metavar="TASK",
    help="Claim only these tasks (repeatable; default: every task).",
)
@click.option("--only-mapped", is_flag=True, help="Claim only the tasks --tasks provides.")
@click.option("--forbid-flag", "forbidden_flags", multiple=True, metavar="FLAG")
@click.option("--poll-interval", type=INTERVAL, default="2 seconds", show_default=True)
@click.option(
    "--job-timeout", type=DURATION, default="5 minutes", show_default=True, help="0: no limit."
)
@click.option("--shutdown-timeout", type=DURATION, default="30 seconds", show_default=True)
@click.option("--lock-timeout", type=INTERVAL, default=defaults.LOCK_TIMEOUT, show_default=True)
@click.option("--no-maintenance", is_flag=True, help="Leave maintenance to `queuekit maintain`.")
@click.option("--crontab", "crontab_specs", multiple=True, metavar="MODULE:LIST")
@click.option("--drain", is_flag=True, help="Exit once no job is claimable (with a progress bar).")
@click.option(
    "--listen-url",
    envvar="QUEUEKIT_LISTEN_URL",
    show_envvar=True,
    metavar="URL",
    help="Direct PostgreSQL URL to LISTEN on when --database-url goes through PgBouncer.",
)
@click.option("--no-listen", is_flag=True, help="Only poll (no LISTEN/NOTIFY).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="text: one line per event (colour on a terminal); json: one JSON object per line.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on this port (needs queuekit[prometheus]).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, metavar="ADDRESS")
@click.option(
    "--backlog-metrics",
    is_flag=True,
    help="Also report backlog gauges from the database: on ONE process per database.",
)
@json_option
def worker(
    task_specs: tuple[str, ...],
    concurrency: int,
    worker_id: str | None,
    task_identifiers: tuple[str, ...],
    only_mapped: bool,
    forbidden_flags: tuple[str, ...],
    poll_interval: timedelta,
    job_timeout: timedelta,
    shutdown_timeout: timedelta,
    lock_timeout: timedelta,
    no_maintenance: bool,
    crontab_specs: tuple[str, ...],
    drain: bool,
    listen_url: str | None,
    no_listen: bool,
    log_level: str,
    log_format: LogFormat,
    metrics_port: int | None,
    metrics_host: str,
    backlog_metrics: bool,
) -> None:
    """Run tasks for queued jobs until SIGINT/SIGTERM (or, with --drain, until none is left)."""
    from queuekit.worker import Worker

    if task_identifiers and only_mapped:
        raise InputError("give --task or --only-mapped, not both")
    if backlog_metrics and metrics_port is None:
        raise InputError("--backlog-metrics needs --metrics-port")
    tasks = load_tasks(task_specs)
    crontabs = load_crontabs(crontab_specs)
    state = current_state()
    manager = state.manager()
    claim: Sequence[str] | None = list(task_identifiers) or None
    if only_mapped:
        claim = sorted(tasks)
    runner = Worker(
        manager,
        tasks,
        concurrency=concurrency,
        worker_id=worker_id,
        task_identifiers=claim,
        forbidden_flags=list(forbidden_flags) or None,
        poll_interval=poll_interval,
        job_timeout=job_timeout if job_timeout > timedelta(0) else None,
        shutdown_timeout=shutdown_timeout,
        lock_timeout=lock_timeout,
        maintenance=not no_maintenance,
        crontabs=crontabs,
        listen=not no_listen,
        listen_url=listen_url,
    )
    metrics = None
    if metrics_port is not None:
        from queuekit.otel.prometheus import serve_metrics

        metrics = serve_metrics(
            metrics_port, host=metrics_host, collect_backlog=manager if backlog_metrics else None
        )
        click.echo(f"Metrics on http://{metrics_host}:{metrics.port}/metrics", err=True)
    try:
        with logging_to_stderr(log_level, log_format):
            if drain:
                drain_worker(state, manager, runner, claim, list(forbidden_flags) or None)
            else:
                runner.run()
    finally:
        if metrics is not None:
            metrics.close()
    if state.json:
        print_json({"worker_id": runner.worker_id, "stats": runner.stats})
    else:
        console().print(stats_table(runner.stats, f"Worker {runner.worker_id}"))


#: Jobs the drain progress bar counts up front at most (it grows past them as jobs finish).
DRAIN_COUNT_LIMIT = 100_000


def drain_worker(
    state: State,
    manager: JobManager,
    runner: Any,
    task_identifiers: Sequence[str] | None,
    forbidden_flags: Sequence[str] | None,
) -> None:
    """Drain on a background thread, with a progress bar, stopping cleanly on SIGINT/SIGTERM.

    The bar counts the jobs this worker can claim now (due, of its tasks, not
    of a forbidden flag), each once when its first attempt ends however it
    ends; a job that becomes claimable during the drain adds itself to it.
    """
    from queuekit.signals import stop_signals

    stop_requested = threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            runner.drain()
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=work, name="queuekit-drain", daemon=True)
    progress = None if state.json else progress_bar()
    if progress is not None:
        pending = set(
            manager.claimable_job_ids(task_identifiers, forbidden_flags, DRAIN_COUNT_LIMIT)
        )
        total = [len(pending)]
        seen: set[Any] = set()
        bar = progress.add_task("Draining", total=total[0] or None)
        lock = threading.Lock()

        def advance(event: Any) -> None:
            job_id = event.data.get("job_id")
            with lock:
                if job_id in seen:
                    return
                seen.add(job_id)
                if job_id not in pending:
                    total[0] += 1
                progress.update(bar, total=total[0], completed=len(seen))

        for name in ("job/completed", "job/failed", "job/exhausted", "job/partial-success"):
            runner.on(name, advance)
        progress.start()
    try:
        with stop_signals(lambda _force: stop_requested.set()):
            thread.start()
            while thread.is_alive():
                thread.join(0.1)
                if stop_requested.is_set() and runner.running:
                    runner.stop()
    finally:
        if progress is not None:
            progress.stop()
    if failure:
        raise failure[0]


@cli.command("demo")
@json_option
def demo() -> None:
    """Run a few hundred jobs of every kind through a worker (use a fresh SQLite file)."""
    from rich.console import Console

    from queuekit import demo as demo_module
    from queuekit import migrations
    from queuekit.manager import JobManager
    from queuekit.types import RetryPolicy

    state = current_state()
    out = console()
    engine = state.engine()
    with database_access(state):
        migrations.upgrade(engine, schema=state.schema)
    # Short retry delays so that failing jobs reach their last attempt within seconds.
    manager = JobManager(
        engine,
        schema=state.schema,
        retry=RetryPolicy(base_delay="0.05 seconds", max_delay="0.5 seconds"),
    )
    quiet = Console(file=io.StringIO()) if state.json else out
    if not state.json:
        out.print(f"queuekit demo on {state.display_url} (migrated to {migrations.head()})")
    # The demo's tables report every outcome; the log keeps only what went wrong.
    with logging_to_stderr("warning", outcomes=False):
        if state.json:
            result = demo_module.run_demo(manager, quiet, None)
        else:
            with progress_bar() as progress:
                result = demo_module.run_demo(manager, out, progress)
    if state.json:
        print_json({k: v for k, v in dataclasses.asdict(result).items() if k != "records"})
        return
    out.print(demo_module.summary_table(result.by_task, result.records))
    out.print(history_table(demo_module.sample_rows(result.records), title="A few history rows"))
    out.print(stats_table(result.worker, "Worker totals"))
    out.print(
        f"Cron entry fired {result.cron_fired} time(s) (one catch-up run for the missed slot). "
        f"Done in {result.seconds:.1f} s."
    )
    prefix = f"queuekit --database-url {state.url}"
    out.print(
        f"Explore: `{prefix} stats`, then `jobs list --status exhausted`, "
        "`history --status failed` or `replay` in place of `stats`."
    )


__all__ = ["cli", "main"]
