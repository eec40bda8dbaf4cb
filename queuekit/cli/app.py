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
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from queuekit.cli.output import console, jsonable, print_json, progress_bar
from queuekit.cli.params import DURATION, INTERVAL, JOB_ID, JSON, TIME
from queuekit.cli.tables import (
    age,
    failure_details,
    history_table,
    job_detail_table,
    jobs_table,
    one_line,
    queues_table,
    rate_limit_table,
    shorten,
    when,
)
from queuekit.defaults import POOLERS
from queuekit.errors import (
    DatabaseError,
    InvalidArgumentError,
    QueueKitError,
    SchemaNotMigratedError,
    UnsupportedDatabaseError,
)

# Start-up time matters (every command, --help included, pays it): SQLAlchemy,
# rich and the manager are imported where first needed.
if TYPE_CHECKING:
    import sqlalchemy as sa
    from rich.console import RenderableType

    from queuekit.manager import JobManager

F = TypeVar("F", bound=Callable[..., Any])

# What the command modules import from here (the table helpers of tables.py among them).
__all__ = [
    "DEBUG_ENV",
    "DURATION",
    "INTERVAL",
    "JOB_ID",
    "JSON",
    "TIME",
    "InputError",
    "RuntimeFailure",
    "State",
    "age",
    "cli",
    "console",
    "current_state",
    "database_access",
    "failure_details",
    "history_table",
    "job_detail_table",
    "jobs_table",
    "json_option",
    "jsonable",
    "main",
    "one_line",
    "print_json",
    "print_result",
    "progress_bar",
    "queues_table",
    "rate_limit_table",
    "shorten",
    "when",
    "window_start",
]


DEFAULT_DATABASE_URL = "sqlite:///queuekit.db"
DATABASE_URL_ENV = "QUEUEKIT_DATABASE_URL"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
UPGRADE_COMMAND = "queuekit db upgrade"
#: Set to 1 to see the traceback of an unexpected error.
DEBUG_ENV = "QUEUEKIT_DEBUG"

log = logging.getLogger("queuekit.cli")


# -- errors ---------------------------------------------------------------------------


class InputError(click.ClickException):
    """The invocation cannot succeed as typed (exit status 2)."""

    exit_code = EXIT_USAGE


class RuntimeFailure(click.ClickException):
    """The invocation was fine, the environment failed (exit status 1)."""

    exit_code = EXIT_FAILURE


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


#: The module of :mod:`queuekit.cli` that defines each top-level command. A
#: command's module is imported when the command is invoked, so ``queuekit
#: add`` loads neither the worker's nor the administration commands' code.
COMMAND_MODULES = {
    "add": "jobs",
    "cancel": "control",
    "db": "database",
    "demo": "running",
    "fail": "admin",
    "gc": "maintenance",
    "history": "jobs",
    "jobs": "jobs",
    "maintain": "maintenance",
    "pause": "control",
    "rate-limit": "admin",
    "replay": "admin",
    "reschedule": "admin",
    "resume": "control",
    "schema": "admin",
    "stats": "jobs",
    "unlock": "admin",
    "web": "web",
    "worker": "running",
    "workers": "control",
}


class QueueKitGroup(click.Group):
    """The root group: imports a command's module on first use; one stderr line per failure."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, its module imported first if need be."""
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"queuekit.cli.{module}")
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name (all command modules imported: this is for help)."""
        load_commands()
        return super().list_commands(ctx)

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
            if os.environ.get(DEBUG_ENV) == "1" and not isinstance(
                error, click.ClickException | QueueKitError
            ):
                raise
            code, message = exit_status(error)
            report_error(message)
        if standalone_mode:
            sys.exit(code)
        return code


# -- state shared by the commands ---------------------------------------------------------


@dataclasses.dataclass
class State:
    """The database the command line talks to, opened on first use."""

    url: str
    schema: str | None
    json: bool = False
    pooler: str | None = None
    _engine: sa.Engine | None = None
    _manager: JobManager | None = None

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages."""
        import sqlalchemy as sa

        try:
            return sa.make_url(self.url).render_as_string(hide_password=True)
        except (sa.exc.ArgumentError, ValueError):
            return self.url

    def engine(self) -> sa.Engine:
        """An engine on ``url``; a malformed URL or a missing driver is a clean error."""
        import sqlalchemy as sa

        if self._engine is None:
            try:
                port = sa.make_url(self.url).port
            except ValueError as error:  # make_url reads the port with int()
                raise InputError(
                    f"--database-url {self.display_url!r} has a port that is not a number "
                    f"({error}); write it like postgresql+psycopg://user@host:5432/db"
                ) from error
            except sa.exc.ArgumentError:
                port = None  # create_engine below says what is wrong
            if port is not None and not 0 < port < 65536:
                raise InputError(
                    f"--database-url {self.display_url!r}: port {port} is not between 1 and 65535"
                )
            try:
                from queuekit.connections import create_engine

                self._engine = create_engine(self.url, pooler=self.pooler)
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
        import sqlalchemy as sa

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
        from queuekit.manager import JobManager

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
    import sqlalchemy as sa

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


def print_result(
    result: Any, summary: str, table: Callable[[], RenderableType] | None = None
) -> None:
    """``result`` as JSON under --json; else ``table()`` (when there are rows) and ``summary``."""
    if current_state().json:
        print_json(result)
        return
    out = console()
    if table is not None and result:
        out.print(table())
    out.print(summary)


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
@click.option(
    "--pooler",
    type=click.Choice(POOLERS),
    envvar="QUEUEKIT_POOLER",
    show_envvar=True,
    help="The URL goes through a transaction-pooling proxy such as PgBouncer (PostgreSQL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.version_option(package_name="queuekit", prog_name="queuekit")
@click.pass_context
def cli(
    ctx: click.Context, database_url: str, schema: str | None, pooler: str | None, as_json: bool
) -> None:
    """queuekit: a job queue in the database your application already has."""
    state = State(url=database_url, schema=schema, json=as_json, pooler=pooler)
    ctx.obj = state
    ctx.call_on_close(state.close)


def load_commands() -> None:
    """Import every command module, so that the root group holds every command."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"queuekit.cli.{module}")


def main() -> None:
    """Entry point of the ``queuekit`` script."""
    cli.main(prog_name="queuekit")
