"""Maintenance, GC and rate limits (seed §7.8), W20, concurrency and batching.

Every test runs on SQLite, PostgreSQL and MariaDB. Tests named after a seed
rule id prove that rule; the others prove SPEC §4/§5 additions: closed
attempts, queues freed, GC that never removes what is still referenced,
several concurrent callers, and bounded transactions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

import queuekit.manager
from queuekit import InvalidArgumentError, Job, JobError, JobManager, JobSpec
from queuekit.models import job_history, job_queues, jobs, rate_limits, task_identifiers

WORKER = "worker-a"


@pytest.fixture
def manager(clean_manager: JobManager) -> JobManager:
    """An empty, migrated database per dialect (one database per module, emptied per test)."""
    return clean_manager


def execute(manager: JobManager, statement: Any) -> None:
    """Change rows directly, as time or a crash would (back-dated locks, stale identifiers)."""
    with manager.engine.begin() as conn:
        conn.execute(statement)


def rows(manager: JobManager, table: sa.Table) -> list[dict[str, Any]]:
    """Every row of ``table`` as plain dicts."""
    with manager.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(table))]


def count(manager: JobManager, table: sa.Table, *where: Any) -> int:
    """How many rows of ``table`` match."""
    with manager.engine.connect() as conn:
        statement = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(statement).scalar_one())


def snapshot(manager: JobManager) -> tuple[Any, ...]:
    """Every table maintenance could touch, to prove nothing changed."""
    return tuple(
        sorted(repr(sorted(r.items())) for r in rows(manager, table))
        for table in (jobs, job_history, job_queues, task_identifiers, rate_limits)
    )


def back_date_locks(manager: JobManager, age: timedelta) -> None:
    """Make every current lock (job and queue) look ``age`` old."""
    now = manager.now()
    execute(
        manager, sa.update(jobs).where(jobs.c.locked_at.is_not(None)).values(locked_at=now - age)
    )
    execute(
        manager,
        sa.update(job_queues)
        .where(job_queues.c.locked_at.is_not(None))
        .values(locked_at=now - age),
    )


def pause() -> None:
    """Let the database clock move past what was just written (SQLite: millisecond clock)."""
    time.sleep(0.01)


def claim_all(
    manager: JobManager, *, retention: Any = "30 days", worker: str = WORKER
) -> list[Job]:
    """Claim every claimable job in one batch."""
    return manager.get_jobs(worker, batch_size=10_000, history_retention=retention)


def run_concurrently(callers: int, work: Callable[[], int]) -> list[int]:
    """Run ``work`` in ``callers`` threads started together; return each result."""
    barrier = threading.Barrier(callers)
    results: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def target() -> None:
        barrier.wait()
        try:
            value = work()
        except BaseException as error:  # reported below, never swallowed
            with lock:
                errors.append(error)
            return
        with lock:
            results.append(value)

    threads = [threading.Thread(target=target) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(results) == callers
    return results


class WriteLog:
    """Rows each DELETE/UPDATE statement changed, and how many transactions committed."""

    def __init__(self) -> None:
        self.changed: list[tuple[str, int]] = []
        self.commits = 0
        self.lock = threading.Lock()

    def on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("DELETE", "UPDATE"):
            table = next((t for t in _TABLE_NAMES if t in statement), "?")
            with self.lock:
                self.changed.append((f"{verb} {table}", cursor.rowcount))

    def on_commit(self, conn: Any) -> None:
        with self.lock:
            self.commits += 1

    def most(self, kind: str) -> int:
        """Most rows one statement of ``kind`` (e.g. ``DELETE queuekit_job_history``) changed."""
        return max((n for k, n in self.changed if k == kind), default=0)


_TABLE_NAMES = (
    "queuekit_job_history",
    "queuekit_job_queues",
    "queuekit_task_identifiers",
    "queuekit_jobs",
)


@contextmanager
def write_log(engine: sa.Engine) -> Iterator[WriteLog]:
    """Record writes and commits on ``engine`` while the block runs."""
    log = WriteLog()
    sa.event.listen(engine, "after_cursor_execute", log.on_execute)
    sa.event.listen(engine, "commit", log.on_commit)
    try:
        yield log
    finally:
        sa.event.remove(engine, "after_cursor_execute", log.on_execute)
        sa.event.remove(engine, "commit", log.on_commit)


# -- reset_locked_jobs (§7.8) ----------------------------------------------------------


def test_rule_success_ResetOverdueJobs(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}, max_attempts=3) for n in range(3)])
    claimed = claim_all(manager)
    assert len(claimed) == 3
    pause()

    assert manager.reset_locked_jobs(lock_timeout=0) == 3

    reclaimed = claim_all(manager, worker="worker-new")
    assert sorted(j.id for j in reclaimed) == sorted(j.id for j in claimed)
    assert all(j.locked_by == "worker-new" and j.attempts == 2 for j in reclaimed)


def test_temporal_ResetOverdueJobs(manager: JobManager) -> None:
    manager.add_job("mail", {}, max_attempts=3)
    (running,) = claim_all(manager)

    assert manager.reset_locked_jobs(lock_timeout="1 hour") == 0
    assert manager.get_job(running.id).status == "locked"  # type: ignore[union-attr]

    back_date_locks(manager, timedelta(minutes=59))
    assert manager.reset_locked_jobs(lock_timeout="1 hour") == 0
    back_date_locks(manager, timedelta(minutes=61))
    assert manager.reset_locked_jobs(lock_timeout="1 hour") == 1
    assert manager.get_job(running.id).status == "available"  # type: ignore[union-attr]


def test_when_clear_ResetOverdueJobs_Job_locked_by_and_locked_at(manager: JobManager) -> None:
    manager.add_job("mail", {}, max_attempts=3)
    (running,) = claim_all(manager)
    assert running.locked_by == WORKER and running.locked_at is not None
    pause()
    manager.reset_locked_jobs(lock_timeout=timedelta(0))
    job = manager.get_job(running.id)
    assert job is not None
    assert job.locked_by is None
    assert job.locked_at is None


def test_rule_failure_ResetOverdueJobs_1_available_jobs_untouched(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}) for n in range(3)])
    manager.add_job("later", {}, run_at=manager.now() + timedelta(hours=1))
    before = snapshot(manager)
    assert manager.reset_locked_jobs(lock_timeout=0) == 0
    assert snapshot(manager) == before


def test_reset_closes_the_attempt_frees_the_queue_and_exhausts_at_last_attempt(
    manager: JobManager,
) -> None:
    last = manager.add_job("mail", {}, queue_name="q", max_attempts=1)
    more = manager.add_job("mail", {}, max_attempts=2)
    manager.add_job("mail", {"next": True}, queue_name="q", max_attempts=1)
    claimed = {j.id: j for j in manager.get_jobs(WORKER, batch_size=2)}
    assert set(claimed) == {last.id, more.id}
    pause()

    assert manager.reset_locked_jobs(lock_timeout=0) == 2

    assert manager.get_job(last.id).status == "exhausted"  # type: ignore[union-attr]
    assert manager.get_job(more.id).status == "available"  # type: ignore[union-attr]
    for job in claimed.values():
        (record,) = manager.job_history(job.id)
        assert record.status == "failed"
        assert record.error_message == "lock expired"
        assert record.completed_at is not None
    assert [q.locked_at for q in manager.list_queues()] == [None]
    # The worker whose lock expired can no longer record an outcome.
    assert manager.complete_jobs(WORKER, list(claimed.values()), 1) == []
    assert count(manager, job_history, job_history.c.status == "started") == 0


def test_reset_frees_an_orphaned_queue_lock_after_the_timeout(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="stuck")
    manager.add_job("mail", {}, queue_name="fresh")
    execute(
        manager,
        sa.update(job_queues).values(locked_at=manager.now(), locked_by="ghost-worker"),
    )
    execute(
        manager,
        sa.update(job_queues)
        .where(job_queues.c.queue_name == "stuck")
        .values(locked_at=manager.now() - timedelta(hours=2)),
    )

    assert manager.reset_locked_jobs(lock_timeout="1 hour") == 0

    locks = {q.queue_name: q.locked_by for q in manager.list_queues()}
    assert locks == {"stuck": None, "fresh": "ghost-worker"}
    assert [j.queue_name for j in claim_all(manager)] == ["stuck"]


def test_heartbeat_keeps_a_live_lock_from_expiring(manager: JobManager) -> None:
    manager.add_job("mail", {}, max_attempts=3)
    (running,) = claim_all(manager)
    back_date_locks(manager, timedelta(hours=2))
    assert manager.heartbeat(WORKER, [running]) == [running]
    assert manager.reset_locked_jobs(lock_timeout="1 hour") == 0
    assert manager.complete_jobs(WORKER, [running], 1) != []


# -- gc_job_history (§7.8) --------------------------------------------------------------


def finished_history(manager: JobManager, n: int, *, retention: Any) -> list[Job]:
    """Run ``n`` jobs to completion; their history rows expire after ``retention``."""
    manager.add_jobs([JobSpec("mail", {"n": i}) for i in range(n)])
    claimed = claim_all(manager, retention=retention)
    assert len(claimed) == n
    manager.complete_jobs(WORKER, claimed, 1)
    return claimed


def test_rule_success_GarbageCollectJobHistory(manager: JobManager) -> None:
    first = manager.gc_job_history()
    assert isinstance(first, int) and first >= 0
    finished_history(manager, 2, retention=0)
    pause()
    assert manager.gc_job_history() == 2
    assert manager.gc_job_history() == 0  # idempotent


def test_rule_success_ExpireHistoryRecords(manager: JobManager) -> None:
    (job,) = finished_history(manager, 1, retention=0)
    pause()
    assert manager.gc_job_history() > 0
    assert manager.job_history(job.id) == []


def test_temporal_ExpireHistoryRecords(manager: JobManager) -> None:
    (job,) = finished_history(manager, 1, retention="1 hour")
    assert manager.gc_job_history() == 0
    execute(
        manager,
        sa.update(job_history).values(expires_at=manager.now() - timedelta(milliseconds=5)),
    )
    assert manager.gc_job_history() == 1
    assert manager.job_history(job.id) == []


def test_rule_invariant_ExpireHistoryRecords(manager: JobManager) -> None:
    (kept,) = finished_history(manager, 1, retention="90 days")
    pause()
    assert manager.gc_job_history() == 0
    (record,) = manager.job_history(kept.id)
    assert record.expires_at is not None
    assert record.expires_at - manager.now() > timedelta(days=89)


def test_rule_failure_ExpireHistoryRecords_1_null_expiry_is_kept(manager: JobManager) -> None:
    finished_history(manager, 2, retention=0)
    execute(manager, sa.update(job_history).values(expires_at=None))
    pause()
    assert manager.gc_job_history() == 0
    assert count(manager, job_history) == 2


# -- gc_job_queues (§7.8) ---------------------------------------------------------------


def test_rule_success_GarbageCollectQueues(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="q")
    (job,) = claim_all(manager)
    assert manager.gc_job_queues() == 0  # locked, and a job in it
    manager.complete_jobs(WORKER, [job], 1)
    assert manager.gc_job_queues() == 1
    assert manager.list_queues() == []


def test_gc_job_queues_only_removes_empty_unlocked_queues(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="waiting")
    manager.add_job("mail", {}, queue_name="dead", max_attempts=1)
    manager.add_job("mail", {}, queue_name="empty")
    manager.add_job("mail", {}, queue_name="orphan-lock")
    claimed = {j.queue_name: j for j in claim_all(manager)}
    manager.fail_jobs(WORKER, [JobError(claimed["dead"], "x")], 1)  # exhausted, stays
    manager.complete_jobs(WORKER, [claimed["empty"], claimed["orphan-lock"]], 1)
    manager.release_jobs(WORKER, [claimed["waiting"]])
    execute(
        manager,
        sa.update(job_queues)
        .where(job_queues.c.queue_name == "orphan-lock")
        .values(locked_at=manager.now(), locked_by="ghost"),
    )

    assert manager.gc_job_queues() == 1

    assert sorted(q.queue_name for q in manager.list_queues()) == [
        "dead",
        "orphan-lock",
        "waiting",
    ]


def test_enqueue_after_queue_gc_still_runs_the_job(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="q")
    manager.complete_jobs(WORKER, claim_all(manager), 1)
    assert manager.gc_job_queues() == 1
    job = manager.add_job("mail", {}, queue_name="q")
    assert [j.id for j in claim_all(manager)] == [job.id]


# -- gc_task_identifiers and tracking (§7.8) ---------------------------------------------


def make_stale(manager: JobManager, *identifiers: str, age: timedelta) -> None:
    """Pretend ``identifiers`` were last used ``age`` ago."""
    execute(
        manager,
        sa.update(task_identifiers)
        .where(task_identifiers.c.identifier.in_(identifiers))
        .values(last_used=manager.now() - age),
    )


def test_rule_success_GarbageCollectTaskIdentifiers(manager: JobManager) -> None:
    manager.add_job("stale", {})
    manager.complete_jobs(WORKER, claim_all(manager), 1)
    make_stale(manager, "stale", age=timedelta(days=8))
    assert manager.gc_task_identifiers() == 1
    assert manager.get_task("stale") is None


def test_rule_success_GarbageCollectTaskIdentifiers_2_used_identifier_survives(
    manager: JobManager,
) -> None:
    manager.add_job("queued", {}, run_at=manager.now() + timedelta(days=30))
    manager.add_job("dead", {}, max_attempts=1)
    manager.fail_jobs(WORKER, [JobError(j, "x") for j in claim_all(manager)], 1)
    manager.register_task("schema-only", schema={"type": "object"})
    manager.add_job("recent", {})
    manager.complete_jobs(WORKER, claim_all(manager), 1)
    make_stale(manager, "queued", "dead", "schema-only", age=timedelta(days=30))
    make_stale(manager, "recent", age=timedelta(days=6))

    assert manager.gc_task_identifiers() == 0
    assert manager.gc_task_identifiers(keep="5 days") == 1
    assert manager.get_task("recent") is None
    for kept in ("queued", "dead", "schema-only"):
        assert manager.get_task(kept) is not None


def test_rule_success_TrackTaskIdentifier(manager: JobManager) -> None:
    before = manager.now()
    manager.add_job("tracked", {})
    task = manager.get_task("tracked")
    assert task is not None
    assert task.identifier == "tracked"
    assert task.created_at >= before - timedelta(seconds=1)
    assert task.last_used >= task.created_at


def test_rule_success_TrackTaskIdentifier_2_last_used_never_goes_back(
    manager: JobManager,
) -> None:
    manager.add_job("tracked", {})
    first = manager.get_task("tracked")
    make_stale(manager, "tracked", age=timedelta(days=1))
    fresh = JobManager(manager.engine)  # no per-process refresh throttle yet
    fresh.add_job("tracked", {})
    second = fresh.get_task("tracked")
    assert first is not None and second is not None
    assert second.last_used >= first.last_used
    assert second.created_at == first.created_at


# -- rate limits (§7.8) -----------------------------------------------------------------


def test_rule_success_RegisterRateLimit(manager: JobManager) -> None:
    limit = manager.register_rate_limit("api", 3, "1 minute")
    assert limit.available_tokens == 3
    again = manager.register_rate_limit("api", 10, "1 minute")
    assert again.capacity == 10
    assert again.available_tokens == 3  # raising capacity adds no tokens before the refill
    assert again.last_refill_at == limit.last_refill_at


def test_rule_entity_creation_RegisterRateLimit_1(manager: JobManager) -> None:
    before = manager.now()
    limit = manager.register_rate_limit("api", 5, timedelta(seconds=30))
    assert (limit.key, limit.capacity, limit.available_tokens) == ("api", 5, 5)
    assert limit.interval == timedelta(seconds=30)
    assert limit.last_refill_at >= before - timedelta(seconds=1)
    assert manager.get_rate_limit("api") == limit


def test_rule_failure_RegisterRateLimit_lower_capacity_clamps_tokens(manager: JobManager) -> None:
    manager.register_rate_limit("api", 5, "1 hour")
    lowered = manager.register_rate_limit("api", 2, "1 hour")
    assert lowered.available_tokens == 2
    assert lowered.capacity == 2


def test_rule_success_RefillRateLimit(manager: JobManager) -> None:
    manager.register_rate_limit("api", 2, 0.02)
    manager.add_jobs([JobSpec("call", {"n": n}, rate_limit_key="api") for n in range(2)])
    assert len(claim_all(manager)) == 2
    assert manager.get_rate_limit("api").available_tokens == 0  # type: ignore[union-attr]
    time.sleep(0.05)
    assert manager.refill_rate_limits() == 1
    assert manager.get_rate_limit("api").available_tokens == 2  # type: ignore[union-attr]


def test_temporal_RefillRateLimit(manager: JobManager) -> None:
    manager.register_rate_limit("slow", 2, "1 hour")
    manager.add_job("call", {}, rate_limit_key="slow")
    claim_all(manager)
    before = manager.get_rate_limit("slow")
    assert manager.refill_rate_limits() == 0
    assert manager.get_rate_limit("slow") == before
    assert before is not None and before.available_tokens == 1


def test_derived_RateLimit_next_refill_at(manager: JobManager) -> None:
    minute = manager.register_rate_limit("minute", 1, "1 minute")
    assert minute.next_refill_at - minute.last_refill_at == timedelta(minutes=1)
    tiny = manager.register_rate_limit("tiny", 1, 0.001)
    time.sleep(0.02)
    assert manager.refill_rate_limits() == 1
    refilled = manager.get_rate_limit("tiny")
    assert refilled is not None
    assert refilled.last_refill_at > tiny.last_refill_at
    assert refilled.next_refill_at - refilled.last_refill_at == timedelta(milliseconds=1)
    assert manager.get_rate_limit("minute") == minute


@pytest.mark.parametrize(
    ("key", "capacity", "interval"),
    [
        ("", 1, "1 minute"),
        (None, 1, "1 minute"),
        ("api", 0, "1 minute"),
        ("api", -1, "1 minute"),
        ("api", 1.5, "1 minute"),
        ("api", 1, 0),
        ("api", 1, "0 seconds"),
        ("api", 1, "-5 minutes"),
        ("api", 1, "five minutes"),
        ("api", 1, "5 fortnights"),
        ("api", 1, None),
    ],
)
def test_register_rate_limit_bad_input(
    manager: JobManager, key: Any, capacity: Any, interval: Any
) -> None:
    manager.register_rate_limit("api", 3, "1 hour")
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        manager.register_rate_limit(key, capacity, interval)
    assert snapshot(manager) == before


def test_surface_provides_and_surface_actor_Maintenance(manager: JobManager) -> None:
    # No worker id, no caller identity: every maintenance operation just runs.
    for operation in (
        manager.gc_job_history,
        manager.gc_task_identifiers,
        manager.gc_job_queues,
        manager.reset_locked_jobs,
        manager.refill_rate_limits,
    ):
        assert operation() == 0


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "argument"),
    [
        ("reset_locked_jobs", {"lock_timeout": "-1 hour"}),
        ("reset_locked_jobs", {"lock_timeout": "soon"}),
        ("reset_locked_jobs", {"lock_timeout": None}),
        ("reset_locked_jobs", {"lock_timeout": [1]}),
        ("reset_locked_jobs", {"lock_timeout": float("nan")}),
        ("gc_task_identifiers", {"keep": "-7 days"}),
        ("gc_task_identifiers", {"keep": "7 dayz"}),
        ("gc_task_identifiers", {"keep": True}),
        ("gc_job_history", {"session": "not a session"}),
        ("gc_job_queues", {"session": 42}),
    ],
)
def test_maintenance_bad_input_raises_and_writes_nothing(
    manager: JobManager, operation: str, argument: dict[str, Any]
) -> None:
    manager.add_job("mail", {}, queue_name="q")
    claim_all(manager, retention=0)
    pause()
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        getattr(manager, operation)(**argument)
    assert snapshot(manager) == before


# -- concurrent callers and bounded batches ------------------------------------------------

BATCH = 7
CALLERS = 4


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    """Make maintenance work in transactions of at most ``BATCH`` rows."""
    monkeypatch.setattr(queuekit.manager, "MAINTENANCE_BATCH", BATCH)
    return BATCH


def test_reset_locked_jobs_concurrent_and_batched(manager: JobManager, small_batches: int) -> None:
    total = 60
    manager.add_jobs([JobSpec("mail", {"n": n}, queue_name=f"q{n}") for n in range(10)])
    manager.add_jobs([JobSpec("mail", {"n": n}) for n in range(10, total)])
    assert len(claim_all(manager)) == total
    pause()

    with write_log(manager.engine) as log:
        counts = run_concurrently(CALLERS, lambda: manager.reset_locked_jobs(lock_timeout=0))

    assert sum(counts) == total  # every job reset exactly once
    assert count(manager, jobs, jobs.c.locked_at.is_not(None)) == 0
    assert count(manager, job_history, job_history.c.status == "started") == 0
    failed = count(manager, job_history, job_history.c.error_message == "lock expired")
    assert failed == total
    # Job updates may use RETURNING (no reliable rowcount); each batch closes its
    # attempts in one history update, which shows the batch size.
    assert 0 < log.most("UPDATE queuekit_job_history") <= small_batches
    assert log.commits >= total // small_batches


def test_gc_job_history_concurrent_and_batched(manager: JobManager, small_batches: int) -> None:
    finished_history(manager, 50, retention=0)
    finished_history(manager, 5, retention="1 day")
    pause()

    with write_log(manager.engine) as log:
        counts = run_concurrently(CALLERS, manager.gc_job_history)

    assert sum(counts) == 50
    assert count(manager, job_history) == 5
    assert 0 < log.most("DELETE queuekit_job_history") <= small_batches
    assert log.commits >= 50 // small_batches


def test_gc_job_history_single_caller_uses_one_transaction_per_batch(
    manager: JobManager, small_batches: int
) -> None:
    finished_history(manager, 30, retention=0)
    pause()
    with write_log(manager.engine) as log:
        assert manager.gc_job_history() == 30
    assert log.commits == 30 // small_batches + 1


def test_gc_job_queues_concurrent_and_batched(manager: JobManager, small_batches: int) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}, queue_name=f"q{n}") for n in range(40)])
    manager.complete_jobs(WORKER, claim_all(manager), 1)
    manager.add_job("mail", {}, queue_name="busy")

    with write_log(manager.engine) as log:
        counts = run_concurrently(CALLERS, manager.gc_job_queues)

    assert sum(counts) == 40
    assert [q.queue_name for q in manager.list_queues()] == ["busy"]
    assert 0 < log.most("DELETE queuekit_job_queues") <= small_batches


def test_gc_task_identifiers_concurrent_and_batched(
    manager: JobManager, small_batches: int
) -> None:
    names = [f"task-{n}" for n in range(30)]
    manager.add_jobs([JobSpec(name, {}) for name in names])
    manager.complete_jobs(WORKER, claim_all(manager), 1)
    manager.add_job("still-used", {}, run_at=manager.now() + timedelta(days=1))
    make_stale(manager, *names, "still-used", age=timedelta(days=10))

    with write_log(manager.engine) as log:
        counts = run_concurrently(CALLERS, manager.gc_task_identifiers)

    assert sum(counts) == 30
    assert [r["identifier"] for r in rows(manager, task_identifiers)] == ["still-used"]
    assert 0 < log.most("DELETE queuekit_task_identifiers") <= small_batches


def test_maintenance_in_callers_transaction_rolls_back(manager: JobManager) -> None:
    finished_history(manager, 3, retention=0)
    manager.add_job("mail", {}, max_attempts=2)
    claim_all(manager)
    pause()
    before = snapshot(manager)
    with manager.engine.connect() as conn, conn.begin() as transaction:
        assert manager.gc_job_history(session=conn) == 3
        assert manager.reset_locked_jobs(lock_timeout=0, session=conn) == 1
        transaction.rollback()
    assert snapshot(manager) == before
