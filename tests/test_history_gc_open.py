"""History GC keeps the ``started`` row of an attempt that is still running.

A history row expires counted from its claim, so with a short (or zero)
``history_retention`` and a job that runs longer, the row of the running
attempt is past its ``expires_at``. Deleting it would leave the attempt
with no history at all. Every test runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import time

from queuekit import JobError, JobManager

WORKER = "worker-a"


def pause() -> None:
    """Let the database clock move past the claim (SQLite's clock counts milliseconds)."""
    time.sleep(0.01)


def test_gc_keeps_the_started_row_of_a_running_attempt(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {"to": "a@example.com"})
    (claimed,) = manager.get_jobs(WORKER, history_retention=0)
    pause()
    assert manager.gc_job_history() == 0
    (record,) = manager.job_history(job.id)
    assert record.status == "started"
    assert record.correlation_id == claimed.correlation_id
    # Once the attempt is over its row is an ordinary expired row.
    assert manager.complete_jobs(WORKER, [claimed], 5) != []
    pause()
    assert manager.gc_job_history() == 1
    assert manager.job_history(job.id) == []


def test_gc_keeps_only_the_open_attempt_of_a_retried_job(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {"n": 1})
    (first,) = manager.get_jobs(WORKER, history_retention=0)
    manager.fail_jobs(WORKER, [JobError(first, "boom")], 1)
    manager.reschedule_jobs([job.id], run_at=manager.now())
    (second,) = manager.get_jobs(WORKER, history_retention=0)
    pause()
    assert manager.gc_job_history() == 1  # the failed first attempt goes
    (record,) = manager.job_history(job.id)
    assert record.correlation_id == second.correlation_id
    assert record.status == "started"
