"""Named things the queue keeps: task identifiers and schemas, rate limits, cron state."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    literal,
    select,
    update,
)

from queuekit.models import (
    known_crontabs,
    rate_limits,
    task_identifiers,
)
from queuekit.repository.base import TOUCH_INTERVAL, RepositoryBase, chunks
from queuekit.rows import (
    rate_limit_from_row,
    task_identifier_from_row,
)
from queuekit.schemas import SchemaRow
from queuekit.session import after_transaction
from queuekit.types import (
    RateLimit,
    TaskIdentifier,
)


class Catalog(RepositoryBase):
    """Statements over task identifiers, rate-limit buckets and cron state."""

    def fetch_schemas(self, conn: Connection, identifiers: Sequence[str]) -> dict[str, SchemaRow]:
        """Stored schema and version of each identifier that has a row."""
        statement = select(
            task_identifiers.c.identifier,
            task_identifiers.c.schema_version,
            task_identifiers.c.payload_schema,
        ).where(task_identifiers.c.identifier.in_(list(identifiers)))
        return {row[0]: (row[1], row[2]) for row in self.run(conn, statement)}

    def register_task(
        self, conn: Connection, identifier: str, schema: dict[str, Any] | None
    ) -> TaskIdentifier:
        """Store (or replace, or with None remove) the schema of a task identifier."""
        now = self.dialect.now()
        statement = self.dialect.upsert(
            task_identifiers,
            [
                {
                    "identifier": identifier,
                    "payload_schema": schema,
                    "schema_version": 1,
                    "created_at": now,
                    "last_used": now,
                }
            ],
            ["identifier"],
            {
                "payload_schema": "new",
                "schema_version": task_identifiers.c.schema_version + 1,
            },
        )
        self.run(conn, statement)
        task = self.get_task(conn, identifier)
        assert task is not None
        return task

    def get_task(self, conn: Connection, identifier: str) -> TaskIdentifier | None:
        """One task identifier row, or None."""
        row = self.run(
            conn, select(task_identifiers).where(task_identifiers.c.identifier == identifier)
        ).first()
        return None if row is None else task_identifier_from_row(row)

    def schema_version(self, conn: Connection, identifier: str) -> int:
        """The schema version stored for an identifier (0 when none)."""
        version = self.run(
            conn,
            select(task_identifiers.c.schema_version).where(
                task_identifiers.c.identifier == identifier
            ),
        ).scalar()
        return int(version or 0)

    def touch_tasks(self, conn: Connection, identifiers: Iterable[str]) -> None:
        """Create task identifier rows and refresh ``last_used``, at most once a minute each.

        Refreshing on every job would make every enqueue and completion of a
        busy task update one hot row; the GC that reads ``last_used`` counts
        in days, so a minute of lag costs nothing.
        """
        moment = time.monotonic()
        with self._touch_lock:
            due = sorted(
                {
                    i
                    for i in identifiers
                    if moment - self._touched.get(i, -TOUCH_INTERVAL) >= TOUCH_INTERVAL
                }
            )
            for identifier in due:
                self._touched[identifier] = moment
        if not due:
            return
        # A rollback undoes the rows: touch them again next time.
        after_transaction(conn, rolled_back=lambda: self.forget_touches(due))
        now = self.dialect.now()
        rows = [{"identifier": i, "created_at": now, "last_used": now} for i in due]
        self.run(
            conn,
            self.dialect.upsert(task_identifiers, rows, ["identifier"], {"last_used": now}),
        )

    def forget_touches(self, identifiers: Iterable[str] | None = None) -> None:
        """Drop the touch throttle of these identifiers (None: all), whose rows may be gone."""
        with self._touch_lock:
            if identifiers is None:
                self._touched.clear()
            else:
                for identifier in identifiers:
                    self._touched.pop(identifier, None)

    def known_rate_limit_keys(self, conn: Connection, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are registered."""
        statement = select(rate_limits.c.key).where(rate_limits.c.key.in_(list(keys)))
        return set(self.run(conn, statement).scalars())

    def register_rate_limit(
        self, conn: Connection, key: str, capacity: int, interval_ms: int
    ) -> RateLimit:
        """Create a full bucket, or change capacity and window keeping the current window start."""
        now = self.dialect.now()
        statement = self.dialect.upsert(
            rate_limits,
            [
                {
                    "key": key,
                    "capacity": capacity,
                    "interval_ms": interval_ms,
                    "available_tokens": capacity,
                    "last_refill_at": now,
                    "next_refill_at": self.dialect.add_ms(now, interval_ms),
                    "created_at": now,
                }
            ],
            ["key"],
            {
                "available_tokens": case(
                    (rate_limits.c.available_tokens > capacity, literal(capacity)),
                    else_=rate_limits.c.available_tokens,
                ),
                "next_refill_at": self.dialect.add_ms(rate_limits.c.last_refill_at, interval_ms),
                "capacity": literal(capacity),
                "interval_ms": literal(interval_ms),
            },
        )
        self.run(conn, statement)
        limit = self.get_rate_limit(conn, key)
        assert limit is not None
        return limit

    def get_rate_limit(self, conn: Connection, key: str) -> RateLimit | None:
        """One bucket, or None."""
        row = self.run(conn, select(rate_limits).where(rate_limits.c.key == key)).first()
        return None if row is None else rate_limit_from_row(row)

    def refill_rate_limits(self, conn: Connection) -> int:
        """Refill every bucket whose window has passed; returns how many."""
        now = self.dialect.now()
        # Lock in key order, as claims do, so refill and claims never deadlock; and
        # NO KEY UPDATE (PostgreSQL), which enqueues' foreign-key checks never block.
        due = list(
            self.run(
                conn,
                select(rate_limits.c.key)
                .where(rate_limits.c.next_refill_at <= now)
                .order_by(rate_limits.c.key)
                .with_for_update(key_share=True),
            ).scalars()
        )
        for part in chunks(due):
            self._refill(conn, part)
        return len(due)

    def _refill(self, conn: Connection, keys: Sequence[str]) -> None:
        now = self.dialect.now()
        self.run(
            conn,
            update(rate_limits)
            .where(rate_limits.c.key.in_(list(keys)))
            .values(
                available_tokens=rate_limits.c.capacity,
                last_refill_at=now,
                next_refill_at=self.dialect.add_ms(now, rate_limits.c.interval_ms),
            ),
        )

    def ensure_crontabs(self, conn: Connection, identifiers: Sequence[str]) -> None:
        """Create a state row for each identifier not seen before (``known_since`` now)."""
        now = self.dialect.now()
        rows = [
            {"identifier": i, "known_since": now, "created_at": now, "updated_at": now}
            for i in sorted(set(identifiers))
        ]
        for part in chunks(rows):
            self.run(conn, self.dialect.upsert(known_crontabs, part, ["identifier"], None))

    def crontab_states(
        self, conn: Connection, identifiers: Sequence[str]
    ) -> dict[str, tuple[datetime, datetime | None]]:
        """``known_since`` and ``last_execution`` of each identifier that has a row."""
        statement = select(
            known_crontabs.c.identifier,
            known_crontabs.c.known_since,
            known_crontabs.c.last_execution,
        ).where(known_crontabs.c.identifier.in_(list(identifiers)))
        return {row[0]: (row[1], row[2]) for row in self.run(conn, statement)}

    def claim_cron_slot(
        self, conn: Connection, identifier: str, previous: datetime | None, slot: datetime
    ) -> bool:
        """Move ``last_execution`` from ``previous`` to ``slot``; False if someone else did.

        The compare-and-set is what lets any number of schedulers run: only
        the one whose UPDATE matches the value it read fires the slot.
        """
        seen = (
            known_crontabs.c.last_execution.is_(None)
            if previous is None
            else known_crontabs.c.last_execution == previous
        )
        statement = (
            update(known_crontabs)
            .where(known_crontabs.c.identifier == identifier, seen)
            .values(last_execution=slot, updated_at=self.dialect.now())
        )
        return int(self.run(conn, statement).rowcount) == 1
