"""The ``queuekit`` command line: migrate, run workers, enqueue, inspect and administer jobs.

Every reading command prints rich tables for people and, with ``--json``,
one JSON document for scripts. Errors never show a traceback: each is one
line on stderr and an exit status that tells a script what went wrong:

* ``2`` -- the invocation cannot succeed as typed: unknown option, malformed
  JSON, time, duration or job id, a value queuekit rejects (payload schema,
  unknown rate-limit key), or something named that does not exist.
* ``1`` -- the invocation was fine but the environment failed: the database
  is unreachable, unmigrated or unsupported, or a statement failed.

``QUEUEKIT_DEBUG=1`` re-raises unexpected exceptions with their traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click
import sqlalchemy as sa
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from queuekit import migrations
from queuekit.durations import parse_duration
from queuekit.errors import (
    DatabaseError,
    InvalidArgumentError,
    QueueKitError,
    SchemaNotMigratedError,
    UnsupportedDatabaseError,
)
from queuekit.manager import JobManager
from queuekit.types import (
    HISTORY_STATUSES,
    JOB_KEY_MODES,
    JOB_STATUSES,
    HistoryRecord,
    Job,
    JobQueue,
    RateLimit,
    TaskIdentifier,
)

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_DATABASE_URL = "sqlite:///queuekit.db"
DATABASE_URL_ENV = "QUEUEKIT_DATABASE_URL"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
UPGRADE_COMMAND = "queuekit db upgrade"

log = logging.getLogger("queuekit.cli")

if TYPE_CHECKING:
    ParamBase = click.ParamType[Any, Any]
else:
    ParamBase = click.ParamType


# -- errors ---------------------------------------------------------------------------


class InputError(click.ClickException):
    """The invocation cannot succeed as typed (exit status 2)."""

    exit_code = EXIT_USAGE


class RuntimeFailure(click.ClickException):
    """The invocation was fine, the environment failed (exit status 1)."""

    exit_code = EXIT_FAILURE


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def report_error(message: str) -> None:
    """Write one error line on stderr."""
    click.echo(f"Error: {one_line(message)}", err=True)


def exit_status(error: BaseException) -> tuple[int, str]:
    """The exit status and one-line message for an exception that ended a command."""
    if isinstance(error, click.ClickException):
        return error.exit_code, error.format_message()
    if isinstance(error, InvalidArgumentError):
        return EXIT_USAGE, str(error)
    if isinstance(error, SchemaNotMigratedError | UnsupportedDatabaseError):
        return EXIT_FAILURE, str(error)
    if isinstance(error, DatabaseError):
        return EXIT_FAILURE, f"database error: {error}"
    if isinstance(error, QueueKitError):
        return EXIT_FAILURE, str(error)
    return EXIT_FAILURE, f"unexpected {type(error).__name__}: {error}"


class QueueKitGroup(click.Group):
    """The root group: turns every failure into one stderr line and an exit status."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; exit with 0, 1 or 2 (130 when interrupted)."""
        try:
            result = super().main(
                args, prog_name or "queuekit", complete_var, standalone_mode=False, **extra
            )
            code = result if isinstance(result, int) else EXIT_OK
        except click.Abort:
            report_error("aborted")
            code = EXIT_INTERRUPTED
        except KeyboardInterrupt:
            report_error("interrupted")
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader of our output went away (``queuekit jobs list | head``).
            sys.stderr.close()
            code = EXIT_FAILURE
        except Exception as error:
            if os.environ.get("QUEUEKIT_DEBUG") == "1" and not isinstance(
                error, click.ClickException | QueueKitError
            ):
                raise
            code, message = exit_status(error)
            report_error(message)
        if standalone_mode:
            sys.exit(code)
        return code


# -- parameter types ---------------------------------------------------------------------


class JSONValue(ParamBase):
    """A JSON document given inline, or ``-`` for stdin, or ``@path`` for a file."""

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        text = value
        if value == "-":
            text = sys.stdin.read()
        elif value.startswith("@"):
            text = read_text_file(value[1:], self, param, ctx)
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            self.fail(f"{value!r} is not valid JSON ({error})", param, ctx)


def read_text_file(
    path: str, kind: ParamBase, param: click.Parameter | None, ctx: click.Context | None
) -> str:
    """The text of a file named on the command line, or a clean usage error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        kind.fail(f"cannot read {path!r}: {error.strerror or error}", param, ctx)


class DurationValue(ParamBase):
    """A duration such as ``"30 seconds"``, ``"1 hour 30 minutes"`` or a number of seconds."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = True) -> None:
        self.allow_zero = allow_zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        try:
            number: float | str = float(text)
        except ValueError:
            number = text
        try:
            return parse_duration(number, name="duration", allow_zero=self.allow_zero)
        except InvalidArgumentError as error:
            self.fail(str(error), param, ctx)


class TimeValue(ParamBase):
    """An ISO 8601 time with a UTC offset (``2024-05-01T12:00:00Z``), or ``now``."""

    name = "time"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return datetime.now(UTC)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{value!r} is not an ISO 8601 time; write it like 2024-05-01T12:00:00Z",
                param,
                ctx,
            )
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.fail(
                f"{value!r} has no UTC offset; add one, e.g. {text}Z or {text}+02:00", param, ctx
            )
        return moment.astimezone(UTC)


class JobIdValue(ParamBase):
    """A job id (UUID)."""

    name = "job_id"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> uuid.UUID:
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a job id (a UUID)", param, ctx)


JSON = JSONValue()
DURATION = DurationValue()
INTERVAL = DurationValue(allow_zero=False)
TIME = TimeValue()
JOB_ID = JobIdValue()


# -- state shared by the commands ---------------------------------------------------------


@dataclasses.dataclass
class State:
    """The database the command line talks to, opened on first use."""

    url: str
    schema: str | None
    json: bool = False
    _engine: sa.Engine | None = None
    _manager: JobManager | None = None

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        try:
            return sa.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return self.url

    def engine(self) -> sa.Engine:
        """An engine on ``url``; a malformed URL or a missing driver is a clean error."""
        if self._engine is None:
            try:
                self._engine = sa.create_engine(self.url)
            except sa.exc.NoSuchModuleError as error:
                raise InputError(f"--database-url {self.display_url!r}: {error}") from error
            except sa.exc.ArgumentError as error:
                raise InputError(
                    f"--database-url {self.url!r} is not a database URL ({error}); "
                    "write it like postgresql+psycopg://user@host/db or sqlite:///queuekit.db"
                ) from error
            except ImportError as error:
                raise RuntimeFailure(
                    f"the driver for {self.display_url} is not installed ({error}); "
                    "install queuekit[postgresql] or queuekit[mysql] and use "
                    "postgresql+psycopg:// or mysql+pymysql:// URLs"
                ) from error
        return self._engine

    def sqlite_file_missing(self) -> Path | None:
        """The file of a ``sqlite:///`` URL when it does not exist yet (else None)."""
        url = sa.make_url(self.url)
        database = url.database
        if not url.drivername.startswith("sqlite") or not database:
            return None
        if database == ":memory:" or database.startswith("file:"):
            return None
        path = Path(database)
        return None if path.exists() else path

    def manager(self) -> JobManager:
        """A JobManager on a migrated database, or a one-line reason why there is none."""
        if self._manager is None:
            engine = self.engine()
            missing = self.sqlite_file_missing()
            if missing is not None:
                raise SchemaNotMigratedError(
                    f"the database file {str(missing)!r} does not exist; "
                    f"create it with `{UPGRADE_COMMAND}`"
                )
            with database_access(self):
                self._manager = JobManager(engine, schema=self.schema)
        return self._manager

    def close(self) -> None:
        """Release the engine's connections."""
        if self._engine is not None:
            self._engine.dispose()


@contextmanager
def database_access(state: State) -> Iterator[None]:
    """Name the database in connection failures, which otherwise read like driver noise."""
    try:
        yield
    except (SchemaNotMigratedError, UnsupportedDatabaseError):
        raise
    except DatabaseError as error:
        raise RuntimeFailure(f"cannot use the database at {state.display_url}: {error}") from error
    except sa.exc.SQLAlchemyError as error:
        raise RuntimeFailure(
            f"cannot use the database at {state.display_url}: {getattr(error, 'orig', error)}"
        ) from error


def current_state() -> State:
    """The State of the running invocation."""
    return click.get_current_context().find_object(State) or _missing_state()


def _missing_state() -> NoReturn:
    raise RuntimeFailure("queuekit commands must run under the queuekit group")


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        state = ctx.find_object(State)
        if state is not None:
            state.json = True


def json_option(function: F) -> F:
    """``--json`` on a command (the same flag is accepted before the command name too)."""
    option = click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print one JSON document for scripts instead of tables.",
    )
    return option(function)


# -- output -------------------------------------------------------------------------------


def console() -> Console:
    """A rich console on stdout (wide when piped, so tables are not squeezed)."""
    stream = sys.stdout
    interactive = stream.isatty()
    return Console(file=stream, width=None if interactive else 160, highlight=False)


def jsonable(value: Any) -> Any:
    """``value`` with queuekit's value types turned into plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


def print_json(value: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(jsonable(value), indent=2, sort_keys=True))


def when(moment: datetime | None) -> str:
    """A time for tables: UTC, to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(delta: timedelta | None) -> str:
    """A duration for tables, e.g. ``3m 12s``."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{delta.total_seconds():.1f}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


def shorten(text: str | None, width: int = 60) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    if not text:
        return ""
    line = one_line(text)
    return line if len(line) <= width else line[: width - 1] + "…"


def jobs_table(jobs: Sequence[Job], title: str | None = None) -> Table:
    """Jobs as a table."""
    table = Table(title=title)
    for column in ("id", "task", "status", "queue", "run at (UTC)", "attempts", "prio", "error"):
        table.add_column(column, no_wrap=column in {"id", "run at (UTC)"})
    for job in jobs:
        table.add_row(
            str(job.id),
            job.task_identifier,
            job.status,
            job.queue_name or "",
            when(job.run_at),
            f"{job.attempts}/{job.max_attempts}",
            str(job.priority),
            shorten(job.last_error, 40),
        )
    return table


def history_table(records: Sequence[HistoryRecord], title: str | None = None) -> Table:
    """History rows as a table."""
    table = Table(title=title)
    for column in ("started (UTC)", "job", "task", "status", "try", "worker", "ms", "error"):
        table.add_column(column, no_wrap=column in {"started (UTC)", "job"})
    for record in records:
        table.add_row(
            when(record.started_at),
            str(record.job_id),
            record.task_identifier,
            record.status,
            str(record.attempt_number),
            record.worker_id or "",
            "" if record.execution_time_ms is None else str(record.execution_time_ms),
            shorten(record.error_message, 40),
        )
    return table


def job_detail_table(job: Job) -> Table:
    """One job, field by field."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for field in dataclasses.fields(job):
        value = getattr(job, field.name)
        if field.name == "correlation_id":
            continue
        if isinstance(value, datetime):
            shown = when(value)
        elif field.name == "payload":
            shown = json.dumps(value, sort_keys=True)
        elif isinstance(value, tuple):
            shown = ", ".join(value)
        else:
            shown = "" if value is None else str(value)
        table.add_row(field.name, shown)
    return table


def rate_limit_table(limit: RateLimit) -> Table:
    """One token bucket."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("key", limit.key)
    table.add_row("capacity", str(limit.capacity))
    table.add_row("interval", age(limit.interval))
    table.add_row("available tokens", str(limit.available_tokens))
    table.add_row("last refill (UTC)", when(limit.last_refill_at))
    table.add_row("next refill (UTC)", when(limit.next_refill_at))
    return table


def queues_table(queues: Sequence[JobQueue]) -> Table:
    """Named queues with their locks."""
    table = Table(title="Named queues unlocked")
    for column in ("queue", "jobs"):
        table.add_column(column)
    for queue in queues:
        table.add_row(queue.queue_name, str(queue.job_count))
    return table


def progress_bar(*, transient: bool = False) -> Progress:
    """The progress display of long operations (drains, replays, the demo)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(),
        transient=transient,
    )


# -- the root group ---------------------------------------------------------------------


@click.group(
    cls=QueueKitGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    show_envvar=True,
    metavar="URL",
    help="SQLAlchemy URL of the database holding queuekit's tables.",
)
@click.option(
    "--schema",
    default=None,
    metavar="NAME",
    help="Named schema holding queuekit's tables (PostgreSQL/MySQL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="queuekit", prog_name="queuekit")
@click.pass_context
def cli(ctx: click.Context, database_url: str, schema: str | None, as_json: bool) -> None:
    """queuekit: a job queue in the database your application already has."""
    state = State(url=database_url, schema=schema, json=as_json)
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Entry point of the ``queuekit`` script."""
    cli.main(prog_name="queuekit")


# -- db ----------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Create, upgrade and check queuekit's tables (works on an empty database)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@json_option
def db_upgrade(revision: str) -> None:
    """Migrate queuekit's tables up to REVISION (default: the newest)."""
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
    state = current_state()
    engine = state.engine()
    with database_access(state):
        revision = migrations.current(engine, schema=state.schema)
    head = migrations.head()
    if state.json:
        print_json({"current": revision, "head": head, "up_to_date": revision == head})
    else:
        note = "up to date" if revision == head else f"head is {head}"
        console().print(f"{revision or 'none'} ({note})")


@db.command("check")
@json_option
def db_check() -> None:
    """Exit 0 when the tables are at the newest revision, else 1 with what to run."""
    state = current_state()
    engine = state.engine()
    head = migrations.head()
    with database_access(state):
        revision = migrations.current(engine, schema=state.schema)
        try:
            migrations.check(engine, schema=state.schema)
        except SchemaNotMigratedError:
            if state.json:
                print_json({"current": revision, "head": head, "up_to_date": False})
            raise
    if state.json:
        print_json({"current": revision, "head": head, "up_to_date": True})
    else:
        console().print(f"queuekit's tables are up to date ({head}).")


# -- enqueue ------------------------------------------------------------------------------


@cli.command("add")
@click.argument("task")
@click.argument("payload", type=JSON, default="{}", required=False)
@click.option("--queue", "queue_name", metavar="NAME", help="Named queue (runs one at a time).")
@click.option("--run-at", type=TIME, help="Earliest start, ISO 8601 with offset.")
@click.option("--delay", type=DURATION, help="Earliest start as a delay from now.")
@click.option("--priority", type=int, default=0, show_default=True, help="Lower runs first.")
@click.option("--max-attempts", type=click.IntRange(min=1), default=25, show_default=True)
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
    if state.json:
        print_json(job)
    else:
        console().print(f"Added job {job.id} ({job.task_identifier}, run at {when(job.run_at)}).")


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


@cli.command("history")
@click.option("--job", "job_id", type=JOB_ID, help="Every attempt of one job.")
@click.option("--from", "from_time", type=TIME, help="Started at or after (ISO 8601).")
@click.option("--to", "to_time", type=TIME, help="Started at or before (ISO 8601).")
@click.option("--since", type=DURATION, help="Started within this duration, e.g. '1 hour'.")
@click.option("--task", "task_identifier", metavar="TASK")
@click.option("--status", type=click.Choice(HISTORY_STATUSES))
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True)
@json_option
def history(
    job_id: uuid.UUID | None,
    from_time: datetime | None,
    to_time: datetime | None,
    since: timedelta | None,
    task_identifier: str | None,
    status: str | None,
    limit: int,
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


def window_start(
    manager: JobManager, from_time: datetime | None, since: timedelta | None
) -> datetime | None:
    """``--from``, or ``--since`` counted back from the database clock."""
    if since is None:
        return from_time
    if from_time is not None:
        raise InputError("give --from or --since, not both")
    return manager.now() - since


@cli.command("stats")
@json_option
def stats() -> None:
    """Jobs by status, task and named queue, and how long the oldest has waited."""
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
        tasks = Table(title="By task")
        tasks.add_column("task")
        for name in JOB_STATUSES:
            tasks.add_column(name, justify="right")
        for task, counts in sorted(result.by_task.items()):
            tasks.add_row(task, *(str(counts.get(name, 0)) for name in JOB_STATUSES))
        out.print(tasks)
    if result.by_queue:
        queues = Table(title="By named queue")
        queues.add_column("queue")
        for name in JOB_STATUSES:
            queues.add_column(name, justify="right")
        queues.add_column("locked")
        for queue, counts in sorted(result.by_queue.items()):
            queues.add_row(
                queue,
                *(str(counts.get(name, 0)) for name in JOB_STATUSES),
                "yes" if counts.get("is_locked") else "no",
            )
        out.print(queues)


# -- admin ----------------------------------------------------------------------------------


@cli.command("replay")
@click.option("--from", "from_time", type=TIME, help="Failed attempts started at or after.")
@click.option("--to", "to_time", type=TIME, help="Failed attempts started at or before.")
@click.option("--since", type=DURATION, help="Failed attempts started within this duration.")
@click.option("--task", "task_identifier", metavar="TASK")
@click.option("--max-attempts", type=click.IntRange(min=1), help="Default: 25.")
@json_option
def replay(
    from_time: datetime | None,
    to_time: datetime | None,
    since: timedelta | None,
    task_identifier: str | None,
    max_attempts: int | None,
) -> None:
    """Re-enqueue jobs whose final outcome was failure (atomically, with the flag 'replay')."""
    state = current_state()
    manager = state.manager()
    from_time = window_start(manager, from_time, since)

    def run() -> list[Job]:
        return manager.replay_failed_jobs(
            from_time=from_time,
            to_time=to_time,
            task_identifier=task_identifier,
            max_attempts=max_attempts,
        )

    if state.json:
        print_json(run())
        return
    with progress_bar(transient=True) as progress:
        task = progress.add_task("Replaying failed jobs", total=None)
        replayed = run()
        progress.update(task, total=len(replayed), completed=len(replayed))
    out = console()
    if replayed:
        out.print(jobs_table(replayed, title="Replayed"))
    out.print(f"Replayed {len(replayed)} job(s).")


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
    state = current_state()
    unlocked = state.manager().force_unlock_jobs(None if everything else list(worker_ids))
    if state.json:
        print_json(unlocked)
        return
    out = console()
    if unlocked:
        out.print(jobs_table(unlocked, title="Unlocked"))
    out.print(f"Unlocked {len(unlocked)} job(s).")


@unlock.command("queues")
@click.argument("queue_names", nargs=-1, metavar="[QUEUE]...")
@click.option("--all", "everything", is_flag=True, help="Unlock every named queue.")
@json_option
def unlock_queues(queue_names: tuple[str, ...], everything: bool) -> None:
    """Free these named queues (or all with --all), unlocking any job running in them."""
    if bool(queue_names) == everything:
        raise InputError("name the queues to unlock, or pass --all (not both)")
    state = current_state()
    unlocked = state.manager().force_unlock_queues(None if everything else list(queue_names))
    if state.json:
        print_json(unlocked)
        return
    out = console()
    if unlocked:
        out.print(queues_table(unlocked))
    out.print(f"Unlocked {len(unlocked)} queue(s).")


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
    state = current_state()
    manager = state.manager()
    existing_jobs(manager, job_ids)
    failed = manager.permanently_fail_jobs(list(job_ids), reason)
    if state.json:
        print_json(failed)
        return
    out = console()
    out.print(jobs_table(failed, title="Failed permanently"))
    out.print(f"Failed {len(failed)} job(s).")


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
    state = current_state()
    manager = state.manager()
    existing_jobs(manager, job_ids)
    if delay is not None:
        run_at = manager.now() + delay
    changed = manager.reschedule_jobs(
        list(job_ids), run_at=run_at, priority=priority, max_attempts=max_attempts
    )
    if state.json:
        print_json(changed)
        return
    out = console()
    out.print(jobs_table(changed, title="Rescheduled"))
    out.print(f"Rescheduled {len(changed)} job(s).")


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
    state = current_state()
    stored = state.manager().register_task(task, schema=document)
    if state.json:
        print_json(stored)
    else:
        console().print(f"Stored the payload schema of {stored.identifier}.")


@schema.command("remove")
@click.argument("task")
@json_option
def schema_remove(task: str) -> None:
    """Remove TASK's schema: its payloads may be any JSON object again."""
    state = current_state()
    manager = state.manager()
    if manager.get_task(task) is None:
        raise InputError(f"unknown task identifier {task!r}")
    stored = manager.register_task(task, schema=None)
    if state.json:
        print_json(stored)
    else:
        console().print(f"Removed the payload schema of {stored.identifier}.")


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


# -- maintenance --------------------------------------------------------------------------


@cli.command("gc")
@click.option(
    "--keep-task-identifiers",
    type=DURATION,
    default="7 days",
    show_default=True,
    help="Forget unused task identifiers (no schema, no job) after this long.",
)
@json_option
def gc(keep_task_identifiers: timedelta) -> None:
    """Delete expired history, empty named queues and unused task identifiers."""
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
@click.option("--lock-timeout", type=DURATION, default="10 minutes", show_default=True)
@click.option("--gc-schedule", default="0 3 * * *", show_default=True, metavar="CRON")
@click.option("--gc-timezone", default="UTC", show_default=True, metavar="ZONE")
@click.option("--keep-task-identifiers", type=DURATION, default="7 days", show_default=True)
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
    for column in ("locks reset", "buckets refilled", "GC"):
        table.add_column(column, justify="right")
    gc_text = "not due"
    if report.gc is not None:
        gc_text = (
            f"{report.gc.history} history, {report.gc.queues} queues, "
            f"{report.gc.task_identifiers} task ids"
        )
    table.add_row(str(report.reset), str(report.refilled), gc_text)
    console().print(table)


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
        raise RuntimeFailure(
            f"{option} {spec!r}: importing {module_name!r} failed with "
            f"{type(error).__name__}: {error}"
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


@contextmanager
def logging_to_stderr(level: str) -> Iterator[None]:
    """Log queuekit's messages on stderr, one line each, while the block runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("queuekit")
    saved = (root.handlers[:], root.level, root.propagate)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    try:
        yield
    finally:
        root.handlers[:], root.level, root.propagate = saved


def stats_table(stats: Any, title: str) -> Table:
    """A WorkerStats as a one-row table."""
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
@click.option("--lock-timeout", type=INTERVAL, default="10 minutes", show_default=True)
@click.option("--no-maintenance", is_flag=True, help="Leave maintenance to `queuekit maintain`.")
@click.option("--crontab", "crontab_specs", multiple=True, metavar="MODULE:LIST")
@click.option("--drain", is_flag=True, help="Exit once no job is claimable (with a progress bar).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
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
    log_level: str,
) -> None:
    """Run tasks for queued jobs until SIGINT/SIGTERM (or, with --drain, until none is left)."""
    from queuekit.worker import Worker

    if task_identifiers and only_mapped:
        raise InputError("give --task or --only-mapped, not both")
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
    )
    with logging_to_stderr(log_level):
        if drain:
            drain_worker(state, manager, runner)
        else:
            runner.run()
    if state.json:
        print_json({"worker_id": runner.worker_id, "stats": runner.stats})
    else:
        console().print(stats_table(runner.stats, f"Worker {runner.worker_id}"))


def drain_worker(state: State, manager: JobManager, runner: Any) -> None:
    """Drain on a background thread, with a progress bar, stopping cleanly on SIGINT/SIGTERM."""
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
        waiting = manager.stats().by_status.get("available", 0)
        bar = progress.add_task("Draining", total=waiting or None)
        finished = [0]
        lock = threading.Lock()

        def advance(_event: Any) -> None:
            with lock:
                finished[0] += 1
                progress.update(bar, completed=finished[0])

        runner.on("job/completed", advance)
        runner.on("job/exhausted", advance)
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
    from queuekit import demo as demo_module
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
