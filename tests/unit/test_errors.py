"""The error hierarchy and the driver-error translation boundary, without a database."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from queuekit import (
    DatabaseError,
    InvalidArgumentError,
    InvalidSchemaError,
    InvalidWorkerIdError,
    JobKeyError,
    PayloadValidationError,
    QueueKitError,
    SchemaNotMigratedError,
    TransientDatabaseError,
    UnknownRateLimitError,
    UnsupportedDatabaseError,
)
from queuekit.errors import is_transient, translate_db_errors


def test_error_classes_follow_the_spec() -> None:
    for caller_error in (
        InvalidArgumentError,
        JobKeyError,
        InvalidWorkerIdError,
        PayloadValidationError,
        InvalidSchemaError,
        UnknownRateLimitError,
    ):
        assert issubclass(caller_error, QueueKitError)
        assert issubclass(caller_error, ValueError)
    for other in (SchemaNotMigratedError, UnsupportedDatabaseError, DatabaseError):
        assert issubclass(other, QueueKitError)
        assert not issubclass(other, ValueError)
    assert issubclass(TransientDatabaseError, DatabaseError)


def driver_error(message: str, *, invalidated: bool = False) -> sa.exc.DBAPIError:
    """A SQLAlchemy-wrapped driver error carrying ``message``."""
    return sa.exc.OperationalError(
        "SELECT 1", {}, Exception(message), connection_invalidated=invalidated
    )


@pytest.mark.parametrize(
    "message",
    [
        "deadlock detected",
        "could not serialize access due to concurrent update",
        "Lock wait timeout exceeded; try restarting transaction",
        "database is locked",
        "server closed the connection unexpectedly",
        "MySQL server has gone away",
    ],
)
def test_retryable_driver_errors_become_transient(message: str) -> None:
    assert is_transient(driver_error(message))
    with pytest.raises(TransientDatabaseError, match=message.split()[0]), translate_db_errors():
        raise driver_error(message)


def test_an_invalidated_connection_is_transient_whatever_it_says() -> None:
    assert is_transient(driver_error("something odd", invalidated=True))


def test_other_driver_errors_become_database_errors() -> None:
    error = driver_error('relation "x" does not exist')
    assert not is_transient(error)
    with pytest.raises(DatabaseError) as caught, translate_db_errors():
        raise error
    assert type(caught.value) is DatabaseError
    assert isinstance(caught.value.__cause__, sa.exc.DBAPIError)


def test_queuekit_errors_and_other_sqlalchemy_errors_cross_the_boundary_cleanly() -> None:
    with pytest.raises(JobKeyError), translate_db_errors():
        raise JobKeyError("kept as it is")
    with pytest.raises(DatabaseError, match="no such thing"), translate_db_errors():
        raise sa.exc.InvalidRequestError("no such thing")
    with pytest.raises(KeyError), translate_db_errors():
        raise KeyError("not a database error: untouched")
