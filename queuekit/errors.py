"""The queuekit error hierarchy.

Every error queuekit raises derives from :class:`QueueKitError`. Errors caused
by the caller's arguments also derive from :class:`ValueError`, so code that
already guards against bad input keeps working. Driver exceptions are
translated into these classes at one boundary (:func:`translate_db_errors`),
which tells a transient failure from the others by the code the driver error
carries (SQLSTATE, MySQL error number, SQLite result code), not by its text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

#: What to install when SQLAlchemy's asyncio support (greenlet) is missing.
ASYNC_EXTRAS_HINT = (
    "install queuekit[postgresql-async], queuekit[sqlite-async] or queuekit[mysql-async]"
)


class QueueKitError(Exception):
    """Root of every error raised by queuekit."""


class InvalidArgumentError(QueueKitError, ValueError):
    """An argument has the wrong type or an impossible value."""


class JobKeyError(InvalidArgumentError):
    """A job key mode without a key, or an unknown job key mode."""


class InvalidWorkerIdError(InvalidArgumentError):
    """A worker id is empty, not a string, longer than 255 characters, or held by a live worker."""


class PayloadValidationError(InvalidArgumentError):
    """A payload is not a JSON object or does not match its task's schema."""

    def __init__(
        self,
        task_identifier: str,
        errors: list[dict[str, str]],
        payload: Any,
    ) -> None:
        details = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        super().__init__(f"Invalid payload for task {task_identifier!r}: {details}")
        self.task_identifier = task_identifier
        self.errors = errors
        self.payload = payload


class InvalidSchemaError(InvalidArgumentError):
    """A payload schema is not a valid JSON Schema document."""


class UnknownRateLimitError(InvalidArgumentError):
    """A job names a rate-limit key that was never registered."""


class SchemaNotMigratedError(QueueKitError):
    """queuekit's tables are missing or not at the revision this version expects."""


class UnsupportedDatabaseError(QueueKitError):
    """The database dialect or server version is not supported."""


class LockLostError(QueueKitError):
    """A task's attempt no longer owns its job, so ``ctx.transaction()`` rolled its writes back.

    The lock was taken away (reset after expiry, unlocked, failed, cancelled
    or re-claimed by another worker) or the worker already settled the
    attempt (timed out, shut down, fenced). The job runs again under its new
    owner; nothing the attempt wrote in the block was committed.
    """


class MissingExtraError(QueueKitError, ImportError):
    """An optional part of queuekit was used without the extra that installs its libraries."""


class DatabaseError(QueueKitError):
    """The database failed in a way queuekit cannot attribute to the caller."""


class TransientDatabaseError(DatabaseError):
    """A deadlock, serialization failure or lost connection: retrying may succeed."""


class CommitUnknownError(DatabaseError):
    """The connection was lost while COMMIT was in flight: the work may or may not be saved.

    Raised only for queuekit's own transactions (``session=None``), and only
    where queuekit cannot find out by itself which way it went (an enqueue
    and a claim check, and then return or retry safely). Look at the data
    before repeating the call: repeating it blindly may do the work twice.
    """


#: SQLSTATEs (PostgreSQL, through psycopg's ``sqlstate``) of a transaction the
#: server rolled back, so that retrying it is safe: serialization failure, deadlock.
_PG_ROLLED_BACK = frozenset({"40001", "40P01"})
#: SQLSTATEs of a lost connection: class 08 (connection exception), the server
#: ending the session (shutdown, crash, not accepting yet, idle timeouts).
_PG_CONNECTION_CLASS = "08"
_PG_CONNECTION = frozenset({"57P01", "57P02", "57P03", "57P05", "25P03"})
#: MySQL/MariaDB error numbers (``args[0]`` of a PyMySQL error): deadlock, lock wait timeout.
_MYSQL_ROLLED_BACK = frozenset({1213, 1205})
#: MySQL/MariaDB error numbers of a lost connection: server shutting down,
#: connection killed, cannot connect, server gone away, lost during a query,
#: disconnected for inactivity.
_MYSQL_CONNECTION = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
#: SQLite's primary result code (``sqlite_errorcode`` of a sqlite3 error) for
#: another connection holding the lock: SQLITE_BUSY and its extended codes.
_SQLITE_BUSY = 5

#: Only for errors that carry no code (a client library's own errors, such as
#: psycopg's when the server closes the socket): the words they are raised with.
_ROLLED_BACK_MARKERS = (
    "deadlock",
    "could not serialize",
    "serialization failure",
    "lock wait timeout",
    "database is locked",
)
_CONNECTION_MARKERS = (
    "server closed the connection",
    "connection refused",
    "lost connection",
    "gone away",
    "terminating connection",
    "connection is closed",
    "consuming input failed",
)

DriverCode = tuple[Literal["sqlstate", "mysql", "sqlite"], str | int]


def driver_code(error: BaseException) -> DriverCode | None:
    """The code a driver error carries: a SQLSTATE, a MySQL error number or a SQLite result code.

    ``error`` is a SQLAlchemy error wrapping the driver's, or the driver's own.
    None when the error carries no code.
    """
    from sqlalchemy import exc as sa_exc  # lazily, as in is_connection_lost

    driver = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    inner = getattr(driver, "orig", None)  # SQLAlchemy's emulated DBAPI errors wrap the driver's
    if isinstance(inner, BaseException):
        driver = inner
    # PyMySQL's errors carry a SQLSTATE too, but a coarse one (a lock wait
    # timeout is HY000): their error number comes first.
    args = getattr(driver, "args", ())
    if not isinstance(driver, OSError) and args and type(args[0]) is int and args[0] > 0:
        return ("mysql", args[0])
    sqlstate = getattr(driver, "sqlstate", None)
    if isinstance(sqlstate, str):
        return ("sqlstate", sqlstate)
    sqlite_code = getattr(driver, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        return ("sqlite", sqlite_code & 0xFF)  # the primary code of an extended one
    return None


def _mentions(error: BaseException, markers: tuple[str, ...]) -> bool:
    text = str(error).lower()
    return any(marker in text for marker in markers)


def is_connection_lost(error: BaseException) -> bool:
    """Whether a driver error means the connection to the server was lost."""
    # Imported here so that importing the errors (as the command line does to
    # answer --help) does not import SQLAlchemy.
    from sqlalchemy import exc as sa_exc

    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    code = driver_code(error)
    if code is None:
        return _mentions(error, _CONNECTION_MARKERS)
    kind, value = code
    if kind == "sqlstate":
        return str(value).startswith(_PG_CONNECTION_CLASS) or value in _PG_CONNECTION
    return kind == "mysql" and value in _MYSQL_CONNECTION


def is_transient(error: BaseException) -> bool:
    """Tell whether a driver error is worth retrying in a new transaction."""
    if is_connection_lost(error):
        return True
    code = driver_code(error)
    if code is None:
        return _mentions(error, _ROLLED_BACK_MARKERS)
    kind, value = code
    if kind == "sqlstate":
        return value in _PG_ROLLED_BACK
    if kind == "mysql":
        return value in _MYSQL_ROLLED_BACK
    return value == _SQLITE_BUSY


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn SQLAlchemy/driver errors into queuekit errors; the one translation boundary."""
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except QueueKitError:
        raise
    except sa_exc.DBAPIError as error:
        if is_transient(error):
            raise TransientDatabaseError(str(error.orig)) from error
        raise DatabaseError(str(error.orig)) from error
    except sa_exc.SQLAlchemyError as error:
        raise DatabaseError(str(error)) from error
