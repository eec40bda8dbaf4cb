"""The registry of running workers (``queuekit_workers``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy import exc as sa_exc

from queuekit.models import workers
from queuekit.repository.base import RepositoryBase
from queuekit.rows import worker_from_row
from queuekit.types import WorkerInfo


class Registry(RepositoryBase):
    """Statements over the rows running workers keep fresh with their heartbeats."""

    def register_worker(
        self, conn: Connection, values: Mapping[str, Any], live_ms: int
    ) -> tuple[bool, WorkerInfo | None]:
        """Insert this worker's row, or take over a row not seen for ``live_ms``.

        Returns ``(True, the new row)``, or ``(False, the live holder)`` when a
        row with the id was seen more recently (the holder is None if it
        appeared concurrently). After ``False`` the transaction must be rolled
        back: a concurrent insert leaves it failed on PostgreSQL.
        """
        worker_id = values["worker_id"]
        now = self.dialect.now()
        seen_lately = workers.c.last_seen >= self.dialect.add_ms(now, -live_ms)
        current = self.run(
            conn,
            select(workers, seen_lately.label("live"))
            .where(workers.c.worker_id == worker_id)
            .with_for_update(),
        ).first()
        fresh = {**values, "started_at": now, "last_seen": now}
        if current is None:
            try:
                self.run(conn, insert(workers).values(fresh))
            except sa_exc.IntegrityError:
                return False, None  # another process registered the id meanwhile
        elif current.live:
            return False, worker_from_row(current)
        else:
            self.run(conn, update(workers).where(workers.c.worker_id == worker_id).values(fresh))
        return True, self.get_worker(conn, worker_id)

    def get_worker(self, conn: Connection, worker_id: str) -> WorkerInfo | None:
        """One worker's row, or None."""
        row = self.run(conn, select(workers).where(workers.c.worker_id == worker_id)).first()
        return None if row is None else worker_from_row(row)

    def touch_worker(self, conn: Connection, worker_id: str) -> bool:
        """Move ``last_seen`` to now; False when the row is gone (removed as dead)."""
        statement = (
            update(workers)
            .where(workers.c.worker_id == worker_id)
            .values(last_seen=self.dialect.now())
        )
        return int(self.run(conn, statement).rowcount) > 0

    def remove_worker(self, conn: Connection, worker_id: str) -> bool:
        """Delete one worker's row; False when there was none."""
        statement = delete(workers).where(workers.c.worker_id == worker_id)
        return int(self.run(conn, statement).rowcount) > 0

    def remove_dead_workers(self, conn: Connection, older_than_ms: int) -> int:
        """Delete the rows of workers not seen for ``older_than_ms``; returns how many."""
        threshold = self.dialect.add_ms(self.dialect.now(), -older_than_ms)
        return int(self.run(conn, delete(workers).where(workers.c.last_seen < threshold)).rowcount)

    def list_workers(self, conn: Connection) -> list[WorkerInfo]:
        """Every registered worker, by worker id."""
        statement = select(workers).order_by(workers.c.worker_id)
        return [worker_from_row(row) for row in self.run(conn, statement)]
