"""Upserts for the dialects with ``INSERT ... ON CONFLICT`` (PostgreSQL and SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.sql.dml import Insert

from queuekit.dialects.base import DialectSupport


class OnConflictSupport(DialectSupport):
    """Shared by PostgreSQL and SQLite, whose ``insert()`` constructs speak ON CONFLICT."""

    #: The dialect's own ``insert`` construct (it carries the ON CONFLICT methods).
    dialect_insert: Callable[[Table], Any]

    def upsert(
        self,
        table: Table,
        rows: Sequence[Mapping[str, Any]],
        key: Sequence[str],
        update: Mapping[str, ColumnElement[Any] | str] | None,
    ) -> Insert:
        statement = self.dialect_insert(table).values(list(rows))
        if update is None:
            return statement.on_conflict_do_nothing(index_elements=list(key))  # type: ignore[no-any-return]
        values = {
            name: statement.excluded[name] if value == "new" else value
            for name, value in update.items()
        }
        return statement.on_conflict_do_update(index_elements=list(key), set_=values)  # type: ignore[no-any-return]

    def insert_skipping_conflicts(
        self, table: Table, key: str, values: Mapping[str, ColumnElement[Any]]
    ) -> Insert:
        statement = self.dialect_insert(table).values(dict(values))
        return statement.on_conflict_do_nothing(index_elements=[key])  # type: ignore[no-any-return]
