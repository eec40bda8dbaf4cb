"""The maintenance loop (reference §5.3, W6 and W20 fixed): lock resets, refills, scheduled GC.

GC slots are made due by moving the ``queuekit:gc`` state into the past.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import (
    DatabaseError,
    InvalidArgumentError,
    JobManager,
    Maintenance,
    Worker,
    migrations,
)
from queuekit.cron import latest_slot
from queuekit.maintenance import GC_IDENTIFIER, GcReport
from queuekit.models import known_crontabs, rate_limits


@pytest.fixture
def sqlite_manager(tmp_path: Path) -> Iterator[JobManager]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'maintenance.db'}")
    migrations.upgrade(engine)
    yield JobManager(engine)
    engine.dispose()


def make_gc_due(engine: sa.Engine, manager: JobManager) -> None:
    """Pretend the GC state was created days ago and no slot has run since."""
    long_ago = manager.now() - timedelta(days=3)
    with engine.begin() as conn:
        conn.execute(
            sa.update(known_crontabs)
            .where(known_crontabs.c.identifier == GC_IDENTIFIER)
            .values(known_since=long_ago, last_execution=None)
        )


def test_pass_resets_expired_locks_and_refills_buckets(manager: JobManager) -> None:
    job = manager.add_job("t", {})
    [claimed] = manager.get_jobs("dead-worker")
    manager.register_rate_limit("api", 2, "1 hour")
    with manager.engine.begin() as conn:
        conn.execute(
            sa.update(rate_limits)
            .where(rate_limits.c.key == "api")
            .values(available_tokens=0, next_refill_at=datetime.now(UTC) - timedelta(hours=1))
        )
    time.sleep(0.3)
    upkeep = Maintenance(manager, lock_timeout="0.2 seconds")
    report = upkeep.run_once()

    assert (report.reset, report.refilled) == (1, 1)
    assert report.gc is None  # a fresh install waits for its first GC slot
    assert (upkeep.runs, upkeep.errors) == (1, 0)
    back = manager.get_job(job.id)
    assert back is not None and back.status == "available" and back.locked_by is None
    [record] = manager.job_history(job.id)
    assert (record.status, record.error_message) == ("failed", "lock expired")
    assert record.correlation_id == claimed.correlation_id
    bucket = manager.get_rate_limit("api")
    assert bucket is not None and bucket.available_tokens == 2


def test_overdue_gc_runs_once_per_slot(manager: JobManager) -> None:
    manager.add_job("old", {}, queue_name="emptied")
    [claimed] = manager.get_jobs("w", history_retention=0)
    manager.complete_jobs("w", [claimed], 1)  # history expires at once; the queue is empty
    keeper = manager.add_job("kept", {})
    upkeep = Maintenance(manager)
    assert upkeep.run_gc_if_due() is None  # creates the state; first slot still ahead
    make_gc_due(manager.engine, manager)
    time.sleep(0.01)

    report = upkeep.run_gc_if_due()
    assert isinstance(report, GcReport)
    assert (report.history, report.queues) == (1, 1)
    assert report.slot == latest_slot("0 3 * * *", manager.now())
    assert manager.list_queues() == []
    assert manager.job_history(claimed.id) == []
    assert manager.get_job(keeper.id) is not None
    assert upkeep.run_gc_if_due() is None
    assert upkeep.run_once().gc is None
    assert upkeep.gc_runs == 1
    with manager.engine.connect() as conn:
        stored = conn.execute(
            sa.select(known_crontabs.c.last_execution).where(
                known_crontabs.c.identifier == GC_IDENTIFIER
            )
        ).scalar_one()
    assert stored == report.slot


def test_many_maintainers_collect_garbage_once(manager: JobManager, engine: sa.Engine) -> None:
    engines = [sa.create_engine(engine.url) for _ in range(4)]
    try:
        keepers = [Maintenance(JobManager(e)) for e in engines]
        keepers[0].run_gc_if_due()
        make_gc_due(engine, manager)
        barrier = threading.Barrier(len(keepers))
        reports: list[Any] = []
        lock = threading.Lock()

        def run(upkeep: Maintenance) -> None:
            barrier.wait()
            report = upkeep.run_once()
            with lock:
                reports.append(report.gc)

        threads = [threading.Thread(target=run, args=(k,)) for k in keepers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len([r for r in reports if r is not None]) == 1
        assert sum(k.errors for k in keepers) == 0
        assert sum(k.gc_runs for k in keepers) == 1
    finally:
        for e in engines:
            e.dispose()


def test_dead_workers_jobs_come_back_to_a_worker_with_maintenance(manager: JobManager) -> None:
    """W20: a worker that died mid-job; a live worker's maintenance resets and reruns it."""
    job = manager.add_job("resume", {"n": 1})
    manager.get_jobs("crashed-worker")
    time.sleep(0.3)
    ran: list[int] = []
    worker = Worker(
        manager,
        {"resume": lambda payload, _ctx: ran.append(payload["n"])},
        lock_timeout="0.2 seconds",
    )
    stats = worker.drain()
    assert ran == [1] and stats.completed == 1
    history = manager.job_history(job.id)
    assert [(h.status, h.worker_id) for h in history] == [
        ("completed", worker.worker_id),
        ("failed", "crashed-worker"),
    ]
    assert history[1].error_message == "lock expired"
    assert manager.query_history(status="started") == []


def test_failing_step_is_isolated_and_reported(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.add_job("t", {})
    manager.get_jobs("dead")
    time.sleep(0.3)

    def broken() -> int:
        raise DatabaseError("refill exploded")

    monkeypatch.setattr(manager, "refill_rate_limits", broken)
    seen: list[tuple[str, str]] = []
    upkeep = Maintenance(manager, lock_timeout="0.2 seconds")
    upkeep.on_error = lambda step, error: seen.append((step, str(error)))
    report = upkeep.run_once()
    assert report.reset == 1 and report.refilled == 0
    assert upkeep.errors == 1
    assert seen == [("refill_rate_limits", "refill exploded")]


def test_run_loops_until_stopped(sqlite_manager: JobManager) -> None:
    upkeep = Maintenance(sqlite_manager, interval="0.05 seconds")
    thread = threading.Thread(target=upkeep.run)
    thread.start()
    deadline = time.monotonic() + 30
    while upkeep.runs < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    upkeep.stop()
    thread.join(30)
    assert not thread.is_alive()
    assert upkeep.runs >= 3 and upkeep.errors == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"gc_schedule": "every night"}, "5 fields"),
        ({"gc_timezone": "Nowhere/Special"}, "unknown timezone"),
        ({"interval": 0}, "interval"),
        ({"lock_timeout": "-1 second"}, "lock_timeout"),
    ],
)
def test_bad_maintenance_options_are_refused(
    sqlite_manager: JobManager, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        Maintenance(sqlite_manager, **options)
