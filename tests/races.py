"""Bookkeeping shared by the claim races: every thread reports what it saw."""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter, defaultdict
from typing import Any

import sqlalchemy as sa

from queuekit.models import job_history, jobs


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


def check_history(engine: sa.Engine, claimed: list[uuid.UUID]) -> set[str]:
    """One completed history row per claimed job; a queue's attempts never overlap.

    Returns the named queues the attempts ran in.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                job_history.c.job_id,
                job_history.c.status,
                job_history.c.queue_name,
                job_history.c.started_at,
                job_history.c.completed_at,
            )
        ).all()
    per_job = Counter(row.job_id for row in rows)
    assert set(per_job) == set(claimed)
    assert set(per_job.values()) == {1}
    assert {row.status for row in rows} == {"completed"}
    spans: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for row in rows:
        if row.queue_name is not None:
            spans[row.queue_name].append((row.started_at, row.completed_at))
    for queue, attempts in spans.items():
        attempts.sort()
        for (_, previous_end), (next_start, _) in itertools.pairwise(attempts):
            assert next_start >= previous_end, f"{queue}: two attempts overlap"
    return set(spans)
