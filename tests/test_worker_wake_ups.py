"""PostgreSQL: a job enqueued for later wakes listening workers when it falls due.

The enqueue's notification carries the seconds until the job's ``run_at``
(empty for a job due now); the listener keeps that moment and wakes the
fetch loop then, so a worker polling once an hour still runs it on time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import create_database_url

from queuekit import JobContext, JobManager, JobSpec, Worker, migrations

#: Upper bound for waiting; nothing here measures speed.
PATIENCE = 30.0


@pytest.fixture
def pg_manager(tmp_path: Path) -> Iterator[JobManager]:
    """A JobManager on a fresh PostgreSQL database (LISTEN/NOTIFY exists only there)."""
    for url in create_database_url("postgresql", tmp_path):
        engine = sa.create_engine(url)
        migrations.upgrade(engine)
        yield JobManager(engine)
        engine.dispose()


def test_notifications_say_when_the_jobs_are_due(pg_manager: JobManager) -> None:
    manager = pg_manager
    raw = manager.engine.raw_connection()
    try:
        listening: Any = raw.dbapi_connection
        listening.autocommit = True
        listening.execute("LISTEN queuekit_jobs")

        def payloads() -> list[str]:
            return sorted(n.payload for n in listening.notifies(timeout=0.5))

        manager.add_job("ping", {"n": 0})
        assert payloads() == [""]  # due now
        later = manager.add_job("ping", {"n": 1}, run_at=_from_now(manager, 60))
        [payload] = payloads()
        assert 55 < float(payload) <= 60
        assert later.run_at > manager.now()
        manager.add_jobs(
            [
                JobSpec("ping", {"n": 2}),
                JobSpec("ping", {"n": 3}, run_at=_from_now(manager, 3600)),
                JobSpec("ping", {"n": 4}),
            ]
        )
        arrived = payloads()
        assert arrived[0] == "" and len(arrived) == 2  # identical wake-ups merge
        assert 3500 < float(arrived[1]) <= 3600
    finally:
        raw.close()


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
