"""Enqueue throughput: ``add_job`` against a bare INSERT, ``add_jobs`` against COPY.

Single enqueue: one job per transaction, ``add_job`` (payload validated
against a registered schema, as an application would) against a plain
``INSERT`` committed per job. Bulk: ``add_jobs`` of a few thousand specs
against ``COPY`` on PostgreSQL and multi-row INSERTs elsewhere. Rounds
alternate between queuekit and the baseline; each side's best round counts.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import sqlalchemy as sa

from benchmarks.common import Measurement, RawQueue, timed
from queuekit import JobManager, JobSpec

ORDER = 10
SINGLE_JOBS = 1000
BULK_JOBS = 5000
ROUNDS = 3
TASK = "bench.send_email"
SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["to"],
}


def payload(n: int) -> dict[str, object]:
    """A small, realistic payload."""
    return {"to": f"user{n}@example.com", "n": n}


def rate(count: int, work: Callable[[], object]) -> float:
    """Jobs per second of ``work``, which enqueues ``count`` jobs."""
    return count / timed(work)


def each(enqueue: Callable[[int], object]) -> Callable[[], None]:
    """Work enqueueing :data:`SINGLE_JOBS` jobs one call (one transaction) at a time."""

    def work() -> None:
        for n in range(SINGLE_JOBS):
            enqueue(n)

    return work


def run(dialect: str, url: str) -> list[Measurement]:
    """Measure single and bulk enqueue on a fresh database."""
    engine = sa.create_engine(url)
    manager = JobManager(engine)
    manager.register_task(TASK, schema=SCHEMA)
    raw = RawQueue(dialect, url)
    try:
        # Warm both paths (connections, statement caches, schema cache).
        for n in range(20):
            manager.add_job(TASK, payload(n))
            raw.insert_one(TASK, payload(n))
        single: list[float] = []
        single_raw: list[float] = []
        single_notify: list[float] = []
        bulk: list[float] = []
        bulk_raw: list[float] = []
        for _ in range(ROUNDS):
            single.append(rate(SINGLE_JOBS, each(lambda n: manager.add_job(TASK, payload(n)))))
            single_raw.append(rate(SINGLE_JOBS, each(lambda n: raw.insert_one(TASK, payload(n)))))
            if dialect == "postgresql":
                notified = each(lambda n: raw.insert_and_notify(TASK, payload(n)))
                single_notify.append(rate(SINGLE_JOBS, notified))
            specs = [JobSpec(TASK, payload(n)) for n in range(BULK_JOBS)]
            bulk.append(rate(BULK_JOBS, partial(manager.add_jobs, specs)))
            payloads = [payload(n) for n in range(BULK_JOBS)]
            bulk_raw.append(rate(BULK_JOBS, partial(raw.insert_many, TASK, payloads)))
    finally:
        raw.close()
        engine.dispose()
    on_pg = dialect == "postgresql"
    # queuekit wakes PostgreSQL workers with a NOTIFY per enqueue transaction;
    # this row shows how much of the gap to a bare INSERT that alone explains.
    notify_row = []
    if on_pg:
        notify_row.append(
            Measurement(
                "single enqueue (add_job)",
                max(single),
                "jobs/s",
                "INSERT + NOTIFY + COMMIT per job",
                max(single_notify),
            )
        )
    return [
        Measurement(
            "single enqueue (add_job)",
            max(single),
            "jobs/s",
            "INSERT + COMMIT per job",
            max(single_raw),
            target=0.75 if on_pg else None,
        ),
        Measurement(
            "bulk enqueue (add_jobs)",
            max(bulk),
            "jobs/s",
            "COPY" if on_pg else "multi-row INSERT",
            max(bulk_raw),
            target=0.25 if on_pg else None,
        ),
        *notify_row,
    ]
