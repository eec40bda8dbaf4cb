"""MySQL 8.0+ and MariaDB 10.6+ through PyMySQL: UTC_TIMESTAMP(6), ON DUPLICATE KEY."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Table,
    cast,
    func,
    literal_column,
    or_,
    type_coerce,
)
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import Insert

from queuekit.dialects.base import DialectSupport
from queuekit.models import UTCDateTime


class MySQLSupport(DialectSupport):
    """MySQL 8.0+ / MariaDB 10.6+: SKIP LOCKED claims under READ COMMITTED."""

    name = "mysql"
    # REPEATABLE READ would keep locks on every row a claim scanned; READ
    # COMMITTED releases the ones that did not match.
    isolation_level = "READ COMMITTED"
    # A no-op ON DUPLICATE KEY UPDATE still reports the existing row; read ids back instead.
    skip_insert_returns_ids = False

    def minimum_version(self, dialect: Dialect) -> tuple[str, tuple[int, ...]]:
        # SKIP LOCKED arrived in MySQL 8.0 and MariaDB 10.6.
        if getattr(dialect, "is_mariadb", False):
            return "MariaDB", (10, 6)
        return "MySQL", (8, 0)

    def begin_transaction(self, connection: Connection) -> None:
        # Applies to the transaction about to start only: one round trip, and
        # nothing to reset when the connection goes back to the pool (the
        # isolation_level execution option would set and reset the session).
        # SQLAlchemy has no construct for SET TRANSACTION.
        connection.exec_driver_sql(f"SET TRANSACTION ISOLATION LEVEL {self.isolation_level}")

    def limit_statement_time(self, connection: Connection, milliseconds: int) -> None:
        # SET has no SQLAlchemy construct. The limit is per session (MariaDB counts
        # seconds in max_statement_time, MySQL milliseconds in max_execution_time),
        # so clear_statement_time must undo it before the connection is pooled again.
        if connection.dialect.is_mariadb:  # type: ignore[attr-defined]
            connection.exec_driver_sql(
                f"SET SESSION max_statement_time = {milliseconds / 1000:.3f}"
            )
        else:
            connection.exec_driver_sql(f"SET SESSION max_execution_time = {int(milliseconds)}")

    def clear_statement_time(self, connection: Connection) -> None:
        if connection.dialect.is_mariadb:  # type: ignore[attr-defined]
            connection.exec_driver_sql("SET SESSION max_statement_time = DEFAULT")
        else:
            connection.exec_driver_sql("SET SESSION max_execution_time = DEFAULT")

    def server_now(self) -> ColumnElement[datetime]:
        # Columns hold naive UTC, so the clock must be UTC whatever the session time zone.
        return type_coerce(literal_column("UTC_TIMESTAMP(6)"), UTCDateTime())

    def add_ms(
        self, moment: ColumnElement[datetime], milliseconds: ColumnElement[int] | int
    ) -> ColumnElement[datetime]:
        microseconds = milliseconds * 1000
        return type_coerce(
            func.timestampadd(literal_column("MICROSECOND"), microseconds, moment), UTCDateTime()
        )

    def ms_between(
        self, start: ColumnElement[datetime], end: ColumnElement[datetime]
    ) -> ColumnElement[int]:
        micro = func.timestampdiff(literal_column("MICROSECOND"), start, end)
        return cast(func.floor(micro / 1000), BigInteger())

    def has_any_flag(self, flags_column: Column[Any], flags: Sequence[str]) -> ColumnElement[bool]:
        # JSON_OVERLAPS is missing from MariaDB 10.6; one JSON_CONTAINS per flag works everywhere.
        # MariaDB keeps JSON as text and compares strings without decoding \u escapes,
        # so each flag is matched both as the driver serialises it (non-ASCII escaped)
        # and unescaped; MySQL compares decoded values and matches either.
        candidates = sorted(
            {json.dumps(flag) for flag in flags}
            | {json.dumps(flag, ensure_ascii=False) for flag in flags}
        )
        return or_(*(func.json_contains(flags_column, text) == 1 for text in candidates))

    def upsert(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        key: Sequence[str],
        update: Mapping[str, ColumnElement[Any] | str] | None,
    ) -> Insert:
        statement = insert(table).values(list(rows))
        if update is None:
            # Assigning a key column to itself is MySQL's "do nothing on conflict".
            return statement.on_duplicate_key_update({key[0]: table.c[key[0]]})
        values = {
            name: statement.inserted[name] if value == "new" else value
            for name, value in update.items()
        }
        return statement.on_duplicate_key_update(values)

    def insert_skipping_conflicts(
        self, table: Table, key: str, values: Mapping[str, ColumnElement[Any]]
    ) -> Insert:
        # Assigning the key to itself turns a duplicate into a no-op.
        return insert(table).values(dict(values)).on_duplicate_key_update({key: table.c[key]})
