"""The queuekit error hierarchy.

Every error queuekit raises derives from :class:`QueueKitError`. Errors caused
by the caller's arguments also derive from :class:`ValueError`, so code that
already guards against bad input keeps working. Driver exceptions are
translated into these classes at one boundary (:func:`translate_db_errors`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


#: Errors the server reports when it rolled the transaction back (retrying is safe).
_ROLLED_BACK_MARKERS = (
    "deadlock",
    "could not serialize",
    "serialization failure",
    "lock wait timeout",
    "database is locked",
)
#: Errors of a lost connection: the server may or may not have done what was sent.
_CONNECTION_MARKERS = (
    "server closed the connection",
    "connection refused",
    "lost connection",
    "gone away",
    "terminating connection",
    "connection is closed",
    "consuming input failed",
)


def is_connection_lost(error: BaseException) -> bool:
    """Whether a driver error means the connection to the server was lost."""
    # Imported here so that importing the errors (as the command line does to
    # answer --help) does not import SQLAlchemy.
    from sqlalchemy import exc as sa_exc

    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    text = str(error).lower()
    return any(marker in text for marker in _CONNECTION_MARKERS)


def is_transient(error: BaseException) -> bool:
    """Tell whether a driver error is worth retrying in a new transaction."""
    text = str(error).lower()
    return is_connection_lost(error) or any(marker in text for marker in _ROLLED_BACK_MARKERS)


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
