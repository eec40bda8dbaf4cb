"""Driver errors are classified by their codes, built here from the drivers' own classes.

psycopg errors carry a SQLSTATE, PyMySQL errors an error number (``args[0]``;
they carry a coarse SQLSTATE too), sqlite3 errors a result code. Only errors
without any code (a client library's own) fall back to their text.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from queuekit.errors import (
    DatabaseError,
    TransientDatabaseError,
    driver_code,
    is_connection_lost,
    is_transient,
    translate_db_errors,
)


def wrapped(orig: Exception) -> sa.exc.DBAPIError:
    """The driver error as SQLAlchemy raises it."""
    return sa.exc.OperationalError("SELECT 1", {}, orig)


def sqlite_error(message: str, code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # what the sqlite3 module sets when SQLite fails
    return error


ROLLED_BACK = [
    pytest.param(psycopg.errors.SerializationFailure("could not serialize access"), id="pg-40001"),
    pytest.param(psycopg.errors.DeadlockDetected("deadlock detected"), id="pg-40P01"),
    pytest.param(pymysql.err.OperationalError(1213, "Deadlock found"), id="mysql-1213"),
    pytest.param(
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded", sqlstate="HY000"),
        id="mysql-1205",
    ),
    pytest.param(sqlite_error("database is locked", 5), id="sqlite-busy"),
    pytest.param(sqlite_error("database is locked", 517), id="sqlite-busy-snapshot"),
]
CONNECTION_LOST = [
    pytest.param(psycopg.errors.AdminShutdown("terminating connection"), id="pg-57P01"),
    pytest.param(psycopg.errors.lookup("08006")("connection failure"), id="pg-08006"),
    pytest.param(psycopg.errors.lookup("25P03")("idle-in-transaction timeout"), id="pg-25P03"),
    pytest.param(pymysql.err.OperationalError(2013, "Lost connection"), id="mysql-2013"),
    pytest.param(pymysql.err.OperationalError(2006, "MySQL server has gone away"), id="mysql-2006"),
    pytest.param(pymysql.err.OperationalError(1927, "Connection was killed"), id="mariadb-1927"),
]
# Codes that mean neither, whatever the message says.
OTHER = [
    pytest.param(psycopg.errors.UndefinedTable('relation "deadlock" does not exist'), id="pg"),
    pytest.param(psycopg.errors.LockNotAvailable("lock wait timeout"), id="pg-55P03"),
    pytest.param(
        pymysql.err.ProgrammingError(1146, "Table 'gone_away' doesn't exist", sqlstate="42S02"),
        id="mysql-1146",
    ),
    pytest.param(
        pymysql.err.IntegrityError(1062, "Duplicate entry 'deadlock'", sqlstate="23000"),
        id="mysql-1062",
    ),
    pytest.param(sqlite_error("database is locked (but really a constraint)", 19), id="sqlite"),
]


@pytest.mark.parametrize("orig", ROLLED_BACK)
def test_rolled_back_transactions_are_transient_not_lost(orig: Exception) -> None:
    assert is_transient(wrapped(orig))
    assert not is_connection_lost(wrapped(orig))
    with pytest.raises(TransientDatabaseError), translate_db_errors():
        raise wrapped(orig)


@pytest.mark.parametrize("orig", CONNECTION_LOST)
def test_lost_connections_are_lost_and_transient(orig: Exception) -> None:
    assert is_connection_lost(wrapped(orig))
    assert is_transient(wrapped(orig))


@pytest.mark.parametrize("orig", OTHER)
def test_other_codes_are_plain_database_errors(orig: Exception) -> None:
    assert driver_code(orig) is not None
    assert not is_transient(wrapped(orig))
    with pytest.raises(DatabaseError) as caught, translate_db_errors():
        raise wrapped(orig)
    assert type(caught.value) is DatabaseError


def test_the_codes_read() -> None:
    assert driver_code(wrapped(psycopg.errors.DeadlockDetected())) == ("sqlstate", "40P01")
    mysql = pymysql.err.OperationalError(1205, "Lock wait timeout", sqlstate="HY000")
    assert driver_code(wrapped(mysql)) == ("mysql", 1205)
    assert driver_code(sqlite_error("database is locked", 517)) == ("sqlite", 5)


def test_a_client_error_without_a_code_falls_back_to_its_text() -> None:
    closed = psycopg.OperationalError("server closed the connection unexpectedly")
    assert driver_code(closed) is None
    assert is_connection_lost(wrapped(closed))
    assert not is_transient(wrapped(psycopg.OperationalError("invalid dsn")))
