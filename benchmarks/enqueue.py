"""Enqueue throughput: ``add_job`` against a bare INSERT, ``add_jobs`` against COPY.

Single enqueue: one job per transaction, ``add_job`` (payload validated
against a registered schema, as an application would) against a plain
``INSERT`` committed per job. Bulk: ``add_jobs`` of a few thousand specs
against ``COPY`` on PostgreSQL and multi-row INSERTs elsewhere. Both
sides enqueue in alternating slices and their total times are compared.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import sqlalchemy as sa

from benchmarks.common import Measurement, RawQueue, timed
from queuekit import JobManager, JobSpec

ORDER = 10
#: Jobs per side, enqueued in slices that alternate between the sides, so that
#: both see the same machine (other load drifts over seconds, not milliseconds).
SINGLE_JOBS = 2000
SINGLE_SLICE = 100
BULK_JOBS = 20000
BULK_SLICE = 2500
TASK = "bench.send_email"
SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string"}, "n": {"type": "integer"}},
    "required": ["to"],
}

Work = Callable[[int], object]


def payload(n: int) -> dict[str, object]:
    """A small, realistic payload."""
    return {"to": f"user{n}@example.com", "n": n}


def interleaved(total: int, size: int, sides: dict[str, Work]) -> dict[str, float]:
    """Jobs per second of each side; ``sides[name](first)`` enqueues ``size`` jobs."""
    seconds = dict.fromkeys(sides, 0.0)
    for first in range(0, total, size):
        for name, work in sides.items():
            seconds[name] += timed(partial(work, first))
    return {name: total / spent for name, spent in seconds.items()}


def one_by_one(enqueue: Callable[[int], object]) -> Work:
    """Work enqueueing :data:`SINGLE_SLICE` jobs, one transaction each."""

    def work(first: int) -> None:
        for n in range(first, first + SINGLE_SLICE):
            enqueue(n)

    return work


def run(dialect: str, url: str) -> list[Measurement]:
    """Measure single and bulk enqueue on a fresh database."""
    on_pg = dialect == "postgresql"
    engine = sa.create_engine(url)
    manager = JobManager(engine)
    manager.register_task(TASK, schema=SCHEMA)
    raw = RawQueue(dialect, url)
    try:
        # Warm both paths (connections, statement caches, schema cache).
        for n in range(20):
            manager.add_job(TASK, payload(n))
            raw.insert_one(TASK, payload(n))
        single_sides: dict[str, Work] = {
            "queuekit": one_by_one(lambda n: manager.add_job(TASK, payload(n))),
            "raw": one_by_one(lambda n: raw.insert_one(TASK, payload(n))),
        }
        if on_pg:
            single_sides["notify"] = one_by_one(lambda n: raw.insert_and_notify(TASK, payload(n)))
        single = interleaved(SINGLE_JOBS, SINGLE_SLICE, single_sides)
        specs = [JobSpec(TASK, payload(n)) for n in range(BULK_SLICE)]
        payloads = [payload(n) for n in range(BULK_SLICE)]
        bulk = interleaved(
            BULK_JOBS,
            BULK_SLICE,
            {
                "queuekit": lambda _: manager.add_jobs(specs),
                "raw": lambda _: raw.insert_many(TASK, payloads),
            },
        )
    finally:
        raw.close()
        engine.dispose()
    results = [
        Measurement(
            "single enqueue (add_job)",
            single["queuekit"],
            "jobs/s",
            "INSERT + COMMIT per job",
            single["raw"],
            target=0.75 if on_pg else None,
        ),
        Measurement(
            "bulk enqueue (add_jobs)",
            bulk["queuekit"],
            "jobs/s",
            "COPY" if on_pg else "multi-row INSERT",
            bulk["raw"],
            target=0.25 if on_pg else None,
        ),
    ]
    if on_pg:
        # queuekit wakes PostgreSQL workers with a NOTIFY per enqueue transaction;
        # this row shows how much of the gap to a bare INSERT that alone explains.
        results.append(
            Measurement(
                "single enqueue (add_job)",
                single["queuekit"],
                "jobs/s",
                "INSERT + NOTIFY + COMMIT per job",
                single["notify"],
            )
        )
    return results
