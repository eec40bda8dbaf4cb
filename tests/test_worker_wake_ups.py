"""PostgreSQL: a job enqueued for later wakes listening workers when it falls due.

The enqueue's notification carries the seconds until the job's ``run_at``
(empty for a job due now); the listener keeps that moment and wakes the
fetch loop then, so a worker polling once an hour still runs it on time.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from conformance import notifications

from queuekit import JobContext, JobManager, JobSpec, Worker

#: Upper bound for waiting; nothing here measures speed.
PATIENCE = 30.0


def test_notifications_say_when_the_jobs_are_due(pg_manager: JobManager) -> None:
    manager = pg_manager
    with notifications(manager.engine) as delivered:
        manager.add_job("ping", {"n": 0})
        assert sorted(delivered()) == [""]  # due now
        later = manager.add_job("ping", {"n": 1}, run_at=_from_now(manager, 60))
        [payload] = sorted(delivered())
        assert 55 < float(payload) <= 60
        assert later.run_at > manager.now()
        manager.add_jobs(
            [
                JobSpec("ping", {"n": 2}),
                JobSpec("ping", {"n": 3}, run_at=_from_now(manager, 3600)),
                JobSpec("ping", {"n": 4}),
            ]
        )
        arrived = sorted(delivered())
        assert arrived[0] == "" and len(arrived) == 2  # identical wake-ups merge
        assert 3500 < float(arrived[1]) <= 3600


def _from_now(manager: JobManager, seconds: float) -> datetime:
    return manager.now() + timedelta(seconds=seconds)


def _wait_for_listener(manager: JobManager) -> None:
    deadline = time.monotonic() + PATIENCE
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    while True:
        with manager.engine.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        assert time.monotonic() < deadline, "the worker never started listening"
        time.sleep(0.01)


def test_a_job_due_later_runs_when_due_without_a_poll(pg_manager: JobManager) -> None:
    manager = pg_manager
    started: list[datetime] = []
    ran = threading.Event()

    def ping(_payload: dict[str, Any], _ctx: JobContext) -> None:
        started.append(manager.now())
        ran.set()

    # Polling once an hour: only the wake-up the notification announced can run it.
    worker = Worker(manager, {"ping": ping}, poll_interval="1 hour", maintenance=False)
    worker.start()
    try:
        _wait_for_listener(manager)
        job = manager.add_job("ping", {}, run_at=_from_now(manager, 1.5))
        assert ran.wait(PATIENCE), "the job due later was not run when due"
    finally:
        worker.stop()
    assert started[0] >= job.run_at
    assert manager.list_jobs() == []
