"""Reading: get_job, list_jobs, job_history, query_history, list_queues, stats.

Every test runs on SQLite, PostgreSQL and MariaDB. Reading never writes, and
unknown ids give empty results rather than errors.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from clock import MovableClock
from sqlalchemy.orm import Session

from queuekit import (
    HistoryRecord,
    InvalidArgumentError,
    JobError,
    JobManager,
    JobSpec,
    PartialSuccess,
    QueueStats,
)
from queuekit.models import jobs

WORKER = "worker-a"


@pytest.fixture
def manager(clean_manager: JobManager) -> JobManager:
    """An empty, migrated database per dialect (one database per module, emptied per test)."""
    return clean_manager


def run_once(manager: JobManager, task: str, outcome: str, **options: Any) -> uuid.UUID:
    """Enqueue a job of ``task``, claim it and end its attempt with ``outcome``."""
    job = manager.add_job(task, {"task": task}, **options)
    (claimed,) = manager.get_jobs(WORKER, task_identifiers=[task])
    assert claimed.id == job.id
    if outcome == "completed":
        manager.complete_jobs(WORKER, [claimed], 3)
    elif outcome == "failed":
        manager.fail_jobs(WORKER, [JobError(claimed, ValueError("bad"))], 4)
    elif outcome == "partial_success":
        manager.report_partial_success(WORKER, claimed, PartialSuccess(["a"], ["b"], "b"), 5)
    return job.id


# -- get_job / list_jobs --------------------------------------------------------------


def test_get_job_returns_the_job_or_none(manager: JobManager) -> None:
    job = manager.add_job("mail", {"to": "x"}, priority=3, flags=["a"])
    assert manager.get_job(job.id) == job
    assert manager.get_job(str(job.id)) == job  # type: ignore[arg-type]
    assert manager.get_job(uuid.uuid4()) is None
    completed = run_once(manager, "done", "completed")
    assert manager.get_job(completed) is None  # completed jobs live on in history only


@pytest.mark.parametrize("job_id", ["nope", 12, None, b"\x00" * 16])
def test_get_job_bad_id(manager: JobManager, job_id: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        manager.get_job(job_id)


def test_list_jobs_filters_by_status_task_and_queue(manager: JobManager) -> None:
    available = manager.add_job("mail", {}, queue_name="q1")
    later = manager.add_job("mail", {}, run_at=datetime.now(UTC) + timedelta(hours=1))
    manager.add_job("sms", {}, max_attempts=1)
    (locked,) = manager.get_jobs(WORKER, task_identifiers=["sms"])
    exhausted = manager.add_job("push", {}, max_attempts=1, queue_name="q2")
    (claimed,) = manager.get_jobs(WORKER, task_identifiers=["push"])
    manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)

    def ids(**filters: Any) -> set[uuid.UUID]:
        return {j.id for j in manager.list_jobs(**filters)}

    assert ids() == {available.id, later.id, locked.id, exhausted.id}
    assert ids(status="available") == {available.id, later.id}
    assert ids(status="locked") == {locked.id}
    assert ids(status="exhausted") == {exhausted.id}
    assert ids(task_identifier="mail") == {available.id, later.id}
    assert ids(queue_name="q2") == {exhausted.id}
    assert ids(queue_name="q2", status="available") == set()
    assert ids(task_identifier="unknown") == set()
    assert all(j.status == "locked" for j in manager.list_jobs(status="locked"))


def test_list_jobs_is_in_claim_order_and_limited(manager: JobManager) -> None:
    now = datetime.now(UTC)
    low = manager.add_job("mail", {"n": 1}, priority=5, run_at=now - timedelta(minutes=1))
    early = manager.add_job("mail", {"n": 2}, priority=0, run_at=now - timedelta(minutes=2))
    late = manager.add_job("mail", {"n": 3}, priority=0, run_at=now - timedelta(minutes=1))
    assert [j.id for j in manager.list_jobs()] == [early.id, late.id, low.id]
    assert [j.id for j in manager.list_jobs(limit=2)] == [early.id, late.id]
    assert manager.list_jobs(limit=0) == []


@pytest.mark.parametrize(
    "filters",
    [
        {"status": "running"},
        {"status": "started"},
        {"limit": -1},
        {"limit": "10"},
        {"task_identifier": ""},
        {"queue_name": 5},
    ],
)
def test_list_jobs_bad_input(manager: JobManager, filters: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        manager.list_jobs(**filters)


# -- history --------------------------------------------------------------------------


def test_job_history_is_newest_first(manager: JobManager, clock: MovableClock) -> None:
    job = manager.add_job("mail", {}, max_attempts=3)
    for attempt in range(1, 4):
        (claimed,) = manager.get_jobs(WORKER)
        assert claimed.attempts == attempt
        manager.fail_jobs(WORKER, [JobError(claimed, f"attempt {attempt}")], attempt)
        manager.reschedule_jobs([job.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
        clock.advance()

    records = manager.job_history(job.id)

    assert [r.attempt_number for r in records] == [3, 2, 1]
    assert [r.error_message for r in records] == ["attempt 3", "attempt 2", "attempt 1"]
    assert all(isinstance(r, HistoryRecord) and r.job_id == job.id for r in records)
    assert manager.job_history(uuid.uuid4()) == []


def test_history_record_fields(manager: JobManager) -> None:
    failed = run_once(manager, "fails", "failed", max_attempts=2)
    partial = run_once(manager, "partial", "partial_success", max_attempts=2)
    (fail_record,) = manager.job_history(failed)
    assert fail_record.status == "failed"
    assert fail_record.error_message == "bad"
    assert fail_record.error_stack is not None and "ValueError" in fail_record.error_stack
    assert fail_record.execution_time_ms == 4
    assert fail_record.worker_id == WORKER
    assert fail_record.started_at is not None and fail_record.completed_at is not None
    assert fail_record.started_at <= fail_record.completed_at
    assert fail_record.queue_time_ms is not None and fail_record.queue_time_ms >= 0
    (partial_record,) = manager.job_history(partial)
    assert partial_record.status == "partial_success"
    assert partial_record.completed_steps == ["a"]
    assert partial_record.failed_steps == ["b"]
    assert partial_record.retry_from_step == "b"


def test_query_history_filters_window_task_status_and_limit(
    manager: JobManager, clock: MovableClock
) -> None:
    start = manager.now()
    clock.advance()
    done = run_once(manager, "mail", "completed")
    clock.advance()
    middle = manager.now()
    clock.advance()
    failed = run_once(manager, "mail", "failed", max_attempts=2)
    other = run_once(manager, "sms", "completed")
    clock.advance()
    end = manager.now()

    def job_ids(**criteria: Any) -> list[uuid.UUID]:
        return [r.job_id for r in manager.query_history(**criteria)]

    assert job_ids() == [other, failed, done]  # newest started first
    assert job_ids(from_time=start, to_time=end) == [other, failed, done]
    assert job_ids(from_time=middle) == [other, failed]
    assert job_ids(to_time=middle) == [done]
    assert job_ids(task_identifier="mail") == [failed, done]
    assert job_ids(status="failed") == [failed]
    assert job_ids(status="completed", task_identifier="sms") == [other]
    assert job_ids(limit=1) == [other]
    assert job_ids(from_time=end + timedelta(seconds=1)) == []
    assert job_ids(task_identifier="unknown") == []


def test_query_history_window_is_inclusive(manager: JobManager) -> None:
    run_once(manager, "mail", "completed")
    (record,) = manager.query_history()
    assert record.started_at is not None
    (same,) = manager.query_history(from_time=record.started_at, to_time=record.started_at)
    assert same == record


@pytest.mark.parametrize(
    "criteria",
    [
        {
            "from_time": datetime(2030, 1, 1, tzinfo=UTC),
            "to_time": datetime(2020, 1, 1, tzinfo=UTC),
        },
        {"from_time": datetime(2020, 1, 1)},
        {"to_time": "2020-01-01"},
        {"status": "exhausted"},
        {"limit": -5},
        {"task_identifier": 3},
    ],
)
def test_query_history_bad_input(manager: JobManager, criteria: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        manager.query_history(**criteria)


# -- queues -------------------------------------------------------------------------------


def test_list_queues_counts_jobs_and_shows_locks(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}, queue_name="busy") for n in range(3)])
    manager.add_job("mail", {}, queue_name="idle")
    (claimed,) = manager.get_jobs(WORKER, task_identifiers=["mail"], batch_size=1)

    queues = {q.queue_name: q for q in manager.list_queues()}

    locked_name = claimed.queue_name
    assert locked_name is not None
    assert queues[locked_name].locked_by == WORKER
    assert queues["busy"].job_count == 3
    assert queues["idle"].job_count == 1
    free = "idle" if locked_name == "busy" else "busy"
    assert queues[free].locked_at is None and queues[free].locked_by is None


# -- stats ----------------------------------------------------------------------------------


def test_stats_on_an_empty_database(manager: JobManager) -> None:
    stats = manager.stats()
    assert isinstance(stats, QueueStats)
    assert stats.by_status == {"available": 0, "locked": 0, "exhausted": 0}
    assert stats.by_task == {}
    assert stats.by_queue == {}
    assert stats.oldest_available_age is None


def test_stats_counts_by_status_task_and_queue(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}, queue_name="q1") for n in range(3)])
    manager.add_jobs([JobSpec("sms", {"n": n}) for n in range(2)])
    manager.add_job("push", {}, max_attempts=1, queue_name="q2")
    claimed = manager.get_jobs(WORKER, task_identifiers=["push"])
    manager.fail_jobs(WORKER, [JobError(claimed[0], "x")], 1)
    (mail,) = manager.get_jobs(WORKER, task_identifiers=["mail"])
    manager.add_job("mail", {}, queue_name="empty")
    manager.complete_jobs(WORKER, manager.get_jobs(WORKER, task_identifiers=["mail"]), 1)

    stats = manager.stats()

    assert stats.by_status == {"available": 4, "locked": 1, "exhausted": 1}
    assert stats.by_task == {
        "mail": {"available": 2, "locked": 1, "exhausted": 0},
        "sms": {"available": 2, "locked": 0, "exhausted": 0},
        "push": {"available": 0, "locked": 0, "exhausted": 1},
    }
    assert stats.by_queue == {
        "q1": {"available": 2, "locked": 1, "exhausted": 0, "is_locked": True},
        "q2": {"available": 0, "locked": 0, "exhausted": 1, "is_locked": False},
        "empty": {"available": 0, "locked": 0, "exhausted": 0, "is_locked": False},
    }
    assert mail.queue_name == "q1"


def test_stats_agree_with_list_jobs(manager: JobManager) -> None:
    manager.add_jobs(
        [JobSpec(f"t{n % 3}", {"n": n}, queue_name=f"q{n % 4}", max_attempts=1) for n in range(30)]
    )
    claimed = manager.get_jobs(WORKER, batch_size=10)
    manager.fail_jobs(WORKER, [JobError(j, "x") for j in claimed[:2]], 1)
    stats = manager.stats()
    for status, total in stats.by_status.items():
        assert total == len(manager.list_jobs(status=status, limit=1000))
    for task, counts in stats.by_task.items():
        for status, total in counts.items():
            listed = manager.list_jobs(task_identifier=task, status=status, limit=1000)
            assert total == len(listed)


def test_stats_oldest_available_age_counts_from_run_at(manager: JobManager) -> None:
    now = manager.now()
    manager.add_job("mail", {}, run_at=now - timedelta(minutes=10))
    manager.add_job("mail", {}, run_at=now - timedelta(minutes=2))
    manager.add_job("mail", {}, run_at=now + timedelta(hours=1))  # not waiting yet
    age = manager.stats().oldest_available_age
    assert age is not None
    assert timedelta(minutes=10) <= age < timedelta(minutes=11)

    # Locked and exhausted jobs are not waiting.
    manager.add_job("old", {}, run_at=now - timedelta(days=1), max_attempts=1)
    manager.get_jobs(WORKER, task_identifiers=["old"])
    age = manager.stats().oldest_available_age
    assert age is not None and age < timedelta(minutes=11)


# -- reading never writes, and joins the caller's transaction --------------------------------


def test_reading_sees_the_callers_uncommitted_work(manager: JobManager) -> None:
    with Session(manager.engine) as session:
        job = manager.add_job("mail", {}, queue_name="q", session=session)
        assert manager.get_job(job.id, session=session) == job
        assert [j.id for j in manager.list_jobs(session=session)] == [job.id]
        assert manager.stats(session=session).by_status["available"] == 1
        assert [q.queue_name for q in manager.list_queues(session=session)] == ["q"]
        session.rollback()
    assert manager.get_job(job.id) is None
    assert manager.stats().by_status["available"] == 0


def test_reading_writes_nothing(manager: JobManager) -> None:
    run_once(manager, "mail", "failed", max_attempts=1)
    manager.add_job("mail", {}, queue_name="q")
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    sa.event.listen(manager.engine, "before_cursor_execute", record)
    try:
        manager.stats()
        manager.list_jobs()
        manager.list_queues()
        manager.query_history()
        manager.job_history(uuid.uuid4())
        manager.get_job(uuid.uuid4())
    finally:
        sa.event.remove(manager.engine, "before_cursor_execute", record)
    assert statements
    assert set(statements) <= {"SELECT", "WITH", "BEGIN", "SET"}, statements
    with manager.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one() == 2
