"""The root of the ``queuekit`` command line and what its commands share.

The ``queuekit`` command line: migrate, run workers, enqueue, inspect and administer jobs.

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
import json
import logging
import os
import sys
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
    HistoryRecord,
    Job,
    JobQueue,
    RateLimit,
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
    """A duration: ``"30 seconds"``, ``"1 hour 30 minutes"``, ``90s``, ``PT5M`` or seconds."""

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


def window_start(
    manager: JobManager, from_time: datetime | None, since: timedelta | None
) -> datetime | None:
    """``--from``, or ``--since`` counted back from the database clock."""
    if since is None:
        return from_time
    if from_time is not None:
        raise InputError("give --from or --since, not both")
    return manager.now() - since


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
