"""Bookkeeping shared by the claim races: every thread reports what it saw."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import sqlalchemy as sa

from queuekit.models import jobs


class Race:
    """Jobs claimed so far, errors, and any named queue seen with two locked jobs."""

    def __init__(self, engine: sa.Engine, expected: int) -> None:
        self.engine = engine
        self.expected = expected
        self.claimed: list[uuid.UUID] = []
        self.errors: list[BaseException] = []
        self.double_locked: list[Any] = []
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add_claimed(self, claimed: list[Any]) -> None:
        """Count ``claimed``; call with ``lock`` held. Sets ``done`` once all are in."""
        self.claimed += [job.id for job in claimed]
        if len(self.claimed) >= self.expected:
            self.done.set()

    def check_queues(self) -> None:
        """No committed state ever shows two locked jobs in one named queue."""
        statement = (
            sa.select(jobs.c.queue_name, sa.func.count())
            .where(jobs.c.locked_at.is_not(None), jobs.c.queue_name.is_not(None))
            .group_by(jobs.c.queue_name)
            .having(sa.func.count() > 1)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(statement).all()
        if rows:
            with self.lock:
                self.double_locked += rows
