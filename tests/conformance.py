"""Helpers shared by the conformance suite: row counts, statement counting, sessions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import create_database_url
from sqlalchemy.orm import Session

from queuekit import migrations
from queuekit.models import metadata

WORKER = "worker-one"
OTHER_WORKER = "worker-two"
SESSION_KINDS = ("session", "connection", "none")


def emptied(engine: sa.Engine) -> sa.Engine:
    """Delete every queuekit row, so a module's database starts each test empty."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    return engine


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """How many rows each queuekit table holds."""
    with engine.connect() as conn:
        return {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for name, table in sorted(metadata.tables.items())
        }


def table_rows(engine: sa.Engine, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of one table as plain dicts (for exact before/after comparisons)."""
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.select(table))]


def snapshot(engine: sa.Engine) -> dict[str, list[tuple[Any, ...]]]:
    """The full content of every queuekit table, sorted, to prove nothing changed."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name, table in sorted(metadata.tables.items()):
            rows = [tuple(repr(value) for value in row) for row in conn.execute(sa.select(table))]
            result[name] = sorted(rows)
    return result


class StatementCounter:
    """Counts the statements an engine sends, via ``before_cursor_execute``."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, *args: Any) -> None:
        self.statements.append(str(args[2]))

    @property
    def count(self) -> int:
        """Statements seen so far."""
        return len(self.statements)


@contextmanager
def counting(engine: sa.Engine) -> Iterator[StatementCounter]:
    """Count every statement sent on ``engine`` inside the block."""
    counter = StatementCounter()
    sa.event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        sa.event.remove(engine, "before_cursor_execute", counter)


@contextmanager
def caller_transaction(
    engine: sa.Engine, kind: str, *, commit: bool = True
) -> Iterator[Session | sa.Connection | None]:
    """Yield what a caller passes as ``session=``; commit or roll back at the end.

    ``kind`` is ``session`` (an ORM Session), ``connection`` (a Core
    Connection in a transaction) or ``none`` (queuekit's own transactions).
    """
    if kind == "session":
        with Session(engine) as session:
            yield session
            if commit:
                session.commit()
            else:
                session.rollback()
    elif kind == "connection":
        with engine.connect() as conn:
            transaction = conn.begin()
            yield conn
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
    else:
        yield None


@contextmanager
def fresh_database(dialect: str, tmp_path: Path) -> Iterator[sa.Engine]:
    """A new database of ``dialect`` migrated to head, dropped afterwards."""
    urls = create_database_url(dialect, tmp_path)
    engine = sa.create_engine(next(urls))
    try:
        migrations.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        next(urls, None)


@contextmanager
def notifications(engine: sa.Engine) -> Iterator[Callable[[], list[str]]]:
    """LISTEN on the workers' channel (PostgreSQL) on a connection of its own.

    Yields a function returning the payloads of the notifications delivered
    within half a second.
    """
    raw = engine.raw_connection()
    try:
        listening: Any = raw.dbapi_connection
        listening.autocommit = True
        listening.execute("LISTEN queuekit_jobs")
        yield lambda: [n.payload for n in listening.notifies(timeout=0.5)]
    finally:
        raw.close()
