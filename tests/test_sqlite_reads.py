"""SQLite: queuekit's reads never queue behind a writer.

SQLite has one writer at a time; with WAL, readers read their snapshot
without it. A worker running task after task in ``ctx.transaction()`` holds
the write lock almost all the time, and a read that asked for the lock
(``BEGIN IMMEDIATE``) waited until the worker ran out of jobs, then saw a
queue already empty. Here a writer holds the lock while the manager reads:
every read must come back, with every committed job, before the writer lets go.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from queuekit import JobManager, JobSpec, migrations
from queuekit.models import jobs

#: How long the writer holds the lock at most; far longer than a read needs.
HOLD_SECONDS = 15.0


@pytest.mark.timeout(120)
def test_reads_see_committed_jobs_while_another_connection_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'reads.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    manager = JobManager(engine)
    added = manager.add_jobs([JobSpec("task", {"n": n}) for n in range(5)])
    writer_engine = sa.create_engine(url)
    JobManager(writer_engine)  # the same SQLite set-up (WAL, busy timeout) as a worker's
    locked, reads_done = threading.Event(), threading.Event()
    still_locked_after_reads: list[bool] = []

    def hold_the_write_lock() -> None:
        with writer_engine.begin() as conn:
            conn.execute(sa.update(jobs).values(priority=jobs.c.priority + 1))
            locked.set()
            reads_done.wait(HOLD_SECONDS)
            still_locked_after_reads.append(reads_done.is_set())
            conn.rollback()

    writer = threading.Thread(target=hold_the_write_lock)
    writer.start()
    try:
        assert locked.wait(30)
        listed = manager.list_jobs()
        counts = manager.stats().by_status
        one = manager.get_job(added[0].id)
        reads_done.set()
    finally:
        reads_done.set()
        writer.join()
        writer_engine.dispose()
        engine.dispose()
    assert still_locked_after_reads == [True], "the reads waited for the writer to let go"
    assert {job.id for job in listed} == {job.id for job in added}
    assert counts["available"] == len(added)
    assert one is not None and one.priority == added[0].priority
