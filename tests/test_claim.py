"""Claim conformance (reference §7.3): order, filters, history rows, named queues, rate limits.

SPEC §4 replaces the reference's broken parts: a batch takes at most one job
per named queue (W1) and never more jobs of a key than its bucket has tokens
(W3); buckets whose window passed refill at claim time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from conformance import OTHER_WORKER, WORKER, emptied, fresh_database

from queuekit import JobError, JobManager, JobSpec
from queuekit.models import job_history, job_queues, rate_limits

MS = timedelta(milliseconds=1)


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


@pytest.fixture
def server_manager(server_dialect: str, tmp_path: Path) -> Iterator[JobManager]:
    """A JobManager on a fresh database of a server dialect (row locks, concurrent claims)."""
    with fresh_database(server_dialect, tmp_path) as engine:
        yield JobManager(engine)


def _expire_window(engine: sa.Engine, key: str) -> None:
    """Move a bucket's window into the past, as if its interval had elapsed."""
    past = datetime.now(UTC) - timedelta(hours=2)
    with engine.begin() as conn:
        conn.execute(
            sa.update(rate_limits)
            .where(rate_limits.c.key == key)
            .values(last_refill_at=past - timedelta(hours=1), next_refill_at=past)
        )


# -- rule-success.WorkerClaimsJobs ------------------------------------------------------


def test_rule_success_WorkerClaimsJobs_order_and_batch(manager: JobManager) -> None:
    now = manager.now()
    added = manager.add_jobs(
        [
            JobSpec("t", {"n": 0}, priority=5),
            JobSpec("t", {"n": 1}, priority=1, run_at=now - timedelta(minutes=1)),
            JobSpec("t", {"n": 2}, priority=1, run_at=now - timedelta(minutes=2)),
            JobSpec("t", {"n": 3}, priority=-2),
            JobSpec("t", {"n": 4}, priority=1, run_at=now - timedelta(minutes=2)),
            JobSpec("t", {"n": 5}, priority=9),
        ]
    )
    claimed = manager.get_jobs(WORKER, batch_size=4)
    # priority ASC, then run_at ASC, then id (n=2 and n=4 tie on both: id decides).
    assert [job.payload["n"] for job in claimed] == [3, 2, 4, 1]
    assert all(job.status == "locked" and job.locked_by == WORKER for job in claimed)
    assert len({job.correlation_id for job in claimed}) == 4
    rest = manager.get_jobs(WORKER, batch_size=10)
    assert [job.payload["n"] for job in rest] == [0, 5]
    assert manager.get_jobs(WORKER, batch_size=10) == []
    assert {job.id for job in claimed + rest} == {job.id for job in added}


def test_rule_success_WorkerClaimsJobs_filters(manager: JobManager) -> None:
    manager.add_jobs(
        [
            JobSpec("a", {"n": 1}, flags=["slow"]),
            JobSpec("a", {"n": 2}, flags=["fast", "gpu"]),
            JobSpec("b", {"n": 3}),
            JobSpec("c", {"n": 4}, flags=["gpu"]),
            JobSpec("a", {"n": 5}),
        ]
    )
    assert manager.get_jobs(WORKER, batch_size=0) == []
    assert manager.get_jobs(WORKER, task_identifiers=[], batch_size=10) == []
    picked = manager.get_jobs(
        WORKER, task_identifiers=["a", "c"], forbidden_flags=["gpu", "nope"], batch_size=10
    )
    assert sorted(job.payload["n"] for job in picked) == [1, 5]
    picked = manager.get_jobs(WORKER, forbidden_flags=["slow", "gpu"], batch_size=10)
    assert [job.payload["n"] for job in picked] == [3]
    rest = manager.get_jobs(WORKER, task_identifiers=None, forbidden_flags=None, batch_size=10)
    assert sorted(job.payload["n"] for job in rest) == [2, 4]


def test_future_jobs_wait_for_run_at_in_any_time_zone(manager: JobManager) -> None:
    """run_at compares with the database clock whatever zone the caller's datetime uses."""
    now = manager.now()
    east = timezone(timedelta(hours=9))
    west = timezone(timedelta(hours=-8))
    due_east = manager.add_job("t", {"n": 1}, run_at=(now - timedelta(seconds=2)).astimezone(east))
    manager.add_job("t", {"n": 2}, run_at=(now + timedelta(hours=1)).astimezone(west))
    manager.add_job("t", {"n": 3}, run_at=(now + timedelta(minutes=1)).astimezone(east))
    due_west = manager.add_job("t", {"n": 4}, run_at=(now - timedelta(hours=3)).astimezone(west))
    assert due_east.run_at.utcoffset() == timedelta(0)
    assert abs(due_east.run_at - (now - timedelta(seconds=2))) < MS
    claimed = manager.get_jobs(WORKER, batch_size=10)
    assert [job.id for job in claimed] == [due_west.id, due_east.id]


def test_job_due_a_moment_ago_is_claimed(manager: JobManager) -> None:
    now = manager.now()
    job = manager.add_job("t", {}, run_at=now - timedelta(milliseconds=2))
    assert [j.id for j in manager.get_jobs(WORKER)] == [job.id]


# -- rule-entity-creation.WorkerClaimsJob: the started history row -------------------------


def test_rule_entity_creation_WorkerClaimsJob(manager: JobManager, engine: sa.Engine) -> None:
    run_at = manager.now() - timedelta(seconds=3)
    job = manager.add_job("t", {"deep": {"x": [1]}}, run_at=run_at, queue_name="q", flags=["f"])
    before = manager.now()
    [claimed] = manager.get_jobs(WORKER, history_retention="2 days")
    after = manager.now()
    assert claimed.correlation_id is not None and claimed.correlation_id.version == 4
    [record] = manager.job_history(job.id)
    assert record.id == record.correlation_id == claimed.correlation_id
    assert (record.job_id, record.worker_id, record.status) == (job.id, WORKER, "started")
    assert (record.task_identifier, record.payload) == ("t", {"deep": {"x": [1]}})
    assert record.attempt_number == 1 == claimed.attempts
    assert record.started_at == claimed.locked_at
    assert record.started_at is not None and before - MS <= record.started_at <= after + MS
    assert record.expires_at == record.started_at + timedelta(days=2)
    expected_wait = (record.started_at - run_at) / MS
    assert record.queue_time_ms is not None
    assert abs(record.queue_time_ms - expected_wait) <= 1
    assert record.completed_at is None and record.execution_time_ms is None
    assert record.error_message is None and record.partial_results is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(job_history)).scalar() == 1


def test_history_retention_defaults_to_30_days_and_counts_every_attempt(
    manager: JobManager,
) -> None:
    job = manager.add_job("t", {})
    [first] = manager.get_jobs(WORKER)
    manager.fail_jobs(WORKER, [JobError(first, "e")], 1)
    manager.reschedule_jobs([job.id], run_at=manager.now() - timedelta(seconds=1))
    [second] = manager.get_jobs(OTHER_WORKER)
    assert second.correlation_id != first.correlation_id
    records = manager.job_history(job.id)
    assert [(r.attempt_number, r.status, r.worker_id) for r in records] == [
        (2, "started", OTHER_WORKER),
        (1, "failed", WORKER),
    ]
    for record in records:
        assert record.started_at is not None
        assert record.expires_at == record.started_at + timedelta(days=30)


# -- locks ----------------------------------------------------------------------------------


def test_when_set_WorkerClaimsJob_locked_by_and_locked_at(manager: JobManager) -> None:
    job = manager.add_job("t", {})
    assert (job.status, job.attempts, job.revision) == ("available", 0, 0)
    before = manager.now()
    [claimed] = manager.get_jobs(WORKER)
    after = manager.now()
    assert claimed.id == job.id  # transition-edge.Job.available.locked
    assert (claimed.status, claimed.locked_by, claimed.attempts, claimed.revision) == (
        "locked",
        WORKER,
        1,
        1,
    )
    assert claimed.locked_at is not None and before - MS <= claimed.locked_at <= after + MS
    stored = manager.get_job(job.id)
    assert stored is not None and stored.status == "locked" and stored.correlation_id is None


def test_rule_failure_WorkerClaimsJob_1_locked_job_not_claimed_again(manager: JobManager) -> None:
    manager.add_job("t", {})
    [claimed] = manager.get_jobs(WORKER)
    assert manager.get_jobs(OTHER_WORKER, batch_size=5) == []
    assert manager.get_jobs(WORKER, batch_size=5) == []  # rule-failure.WorkerDefers...4 too
    assert manager.get_job(claimed.id).locked_by == WORKER  # type: ignore[union-attr]


def test_rule_failure_LockJobQueue_2_nothing_available(manager: JobManager) -> None:
    assert manager.get_jobs(WORKER, batch_size=3) == []
    manager.add_job("t", {}, run_at=manager.now() + timedelta(hours=1))
    exhausted = manager.add_job("t", {}, max_attempts=1)
    [claimed] = manager.get_jobs(WORKER)
    manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    assert manager.get_job(exhausted.id).status == "exhausted"  # type: ignore[union-attr]
    assert manager.get_jobs(WORKER, batch_size=3) == []


def test_claims_skip_jobs_another_open_claim_holds(server_manager: JobManager) -> None:
    """SKIP LOCKED: a claim in an open transaction neither blocks nor shares its jobs."""
    manager = server_manager
    engine = manager.engine
    first, second = manager.add_jobs([JobSpec("t", {"n": 1}), JobSpec("t", {"n": 2})])
    with engine.connect() as conn:
        transaction = conn.begin()
        [held] = manager.get_jobs(WORKER, session=conn)
        assert held.id == first.id
        [other] = manager.get_jobs(OTHER_WORKER, batch_size=5)
        assert other.id == second.id
        transaction.rollback()
    [again] = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert again.id == first.id


# -- named queues --------------------------------------------------------------------------


def test_rule_success_LockJobQueue(manager: JobManager) -> None:
    queued = manager.add_jobs([JobSpec("t", {"n": i}, queue_name="serial") for i in range(3)])
    [queue] = manager.list_queues()
    assert (queue.queue_name, queue.locked_by, queue.job_count) == ("serial", None, 3)
    before = manager.now()
    [claimed] = manager.get_jobs(WORKER)
    assert claimed.id == queued[0].id
    [queue] = manager.list_queues()
    assert queue.locked_by == WORKER
    assert queue.locked_at is not None and before - MS <= queue.locked_at
    assert manager.get_jobs(WORKER, batch_size=5) == []  # its other jobs wait
    assert manager.get_jobs(OTHER_WORKER, batch_size=5) == []  # rule-failure.LockJobQueue.1


def test_rule_success_CreateAndLockJobQueue(manager: JobManager) -> None:
    manager.add_jobs(
        [
            JobSpec("t", {"q": "a", "n": 1}, queue_name="a"),
            JobSpec("t", {"q": "a", "n": 2}, queue_name="a"),
            JobSpec("t", {"q": "b", "n": 1}, queue_name="b"),
        ]
    )
    [first] = manager.get_jobs(WORKER)
    assert first.payload == {"q": "a", "n": 1}
    locks = {q.queue_name: q.locked_by for q in manager.list_queues()}
    assert locks == {"a": WORKER, "b": None}
    # rule-failure.CreateAndLockJobQueue.1: "a" is blocked, "b" is independent.
    [second] = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert second.payload == {"q": "b", "n": 1}
    assert manager.get_jobs(OTHER_WORKER, batch_size=5) == []


def test_invariant_QueueSerialisation_with_batches(manager: JobManager) -> None:
    """W1: one batch takes at most one job per named queue (several queues are fine)."""
    manager.add_jobs(
        [JobSpec("t", {"q": q, "n": n}, queue_name=q) for n in range(3) for q in ("x", "y", "z")]
        + [JobSpec("t", {"q": None, "n": n}) for n in range(2)]
    )
    claimed = manager.get_jobs(WORKER, batch_size=20)
    by_queue = sorted((job.queue_name or "", job.payload["n"]) for job in claimed)
    assert by_queue == [("", 0), ("", 1), ("x", 0), ("y", 0), ("z", 0)]
    assert all(q.locked_by == WORKER for q in manager.list_queues())
    assert manager.get_jobs(OTHER_WORKER, batch_size=20) == []
    queued = [job for job in claimed if job.queue_name is not None]
    manager.complete_jobs(WORKER, queued, 1)
    again = manager.get_jobs(OTHER_WORKER, batch_size=20)
    assert sorted((job.queue_name, job.payload["n"]) for job in again) == [
        ("x", 1),
        ("y", 1),
        ("z", 1),
    ]


def test_batch_looks_past_candidates_that_fall_out(manager: JobManager) -> None:
    """A queue's second job and a key's jobs beyond its tokens do not shrink the batch."""
    manager.register_rate_limit("one", 1, "1 hour")
    manager.add_jobs(
        [JobSpec("t", {"n": f"a{i}"}, queue_name="a", priority=0) for i in range(3)]
        + [JobSpec("t", {"n": f"k{i}"}, rate_limit_key="one", priority=1) for i in range(3)]
        + [JobSpec("t", {"n": f"p{i}"}, priority=2) for i in range(3)]
    )
    claimed = manager.get_jobs(WORKER, batch_size=3)
    assert [job.payload["n"] for job in claimed] == ["a0", "k0", "p0"]
    rest = manager.get_jobs(OTHER_WORKER, batch_size=10)
    assert [job.payload["n"] for job in rest] == ["p1", "p2"]


def test_projection_JobQueue_available_and_locked_jobs(manager: JobManager) -> None:
    """entity-relationship.JobQueue.jobs, projection.available/locked_jobs, derived.is_locked."""
    manager.add_jobs(
        [
            JobSpec("t", {"n": 1}, queue_name="q"),
            JobSpec("t", {"n": 2}, queue_name="q"),
            JobSpec("t", {"n": 3}, queue_name="other"),
            JobSpec("t", {"n": 4}),
        ]
    )
    assert {q.queue_name: q.job_count for q in manager.list_queues()} == {"other": 1, "q": 2}
    stats = manager.stats()
    assert stats.by_queue["q"] == {"available": 2, "locked": 0, "exhausted": 0, "is_locked": False}
    claimed = manager.get_jobs(WORKER, batch_size=5)
    assert sorted(job.payload["n"] for job in claimed) == [1, 3, 4]
    stats = manager.stats()
    assert stats.by_queue["q"] == {"available": 1, "locked": 1, "exhausted": 0, "is_locked": True}
    assert stats.by_queue["other"]["locked"] == 1
    manager.complete_jobs(WORKER, claimed, 1)
    stats = manager.stats()
    assert stats.by_queue["q"] == {"available": 1, "locked": 0, "exhausted": 0, "is_locked": False}
    assert {q.queue_name: q.job_count for q in manager.list_queues()} == {"other": 0, "q": 1}


def test_missing_queue_row_is_recreated_and_claimable(
    manager: JobManager, engine: sa.Engine
) -> None:
    job = manager.add_job("t", {}, queue_name="lost")
    with engine.begin() as conn:
        conn.execute(sa.delete(job_queues))
    claimed = manager.get_jobs(WORKER) or manager.get_jobs(WORKER)
    assert [j.id for j in claimed] == [job.id]
    assert [q.locked_by for q in manager.list_queues()] == [WORKER]


# -- rate limits --------------------------------------------------------------------------


def test_rule_success_WorkerClaimsJob_takes_one_token(manager: JobManager) -> None:
    manager.register_rate_limit("api", 3, "1 hour")
    early = manager.add_job(
        "t", {}, rate_limit_key="api", run_at=manager.now() - timedelta(hours=1)
    )
    manager.add_job("t", {}, rate_limit_key="api")
    [claimed] = manager.get_jobs(WORKER)
    assert claimed.id == early.id
    assert manager.get_rate_limit("api").available_tokens == 2  # type: ignore[union-attr]


def test_rule_success_WorkerDefersJobForRateLimit_exact_tokens(manager: JobManager) -> None:
    """W3: 1 token, batch 10, 3 jobs with the key → exactly 1 claimed; others unaffected."""
    manager.register_rate_limit("one", 1, "1 hour")
    keyed = manager.add_jobs([JobSpec("t", {"n": i}, rate_limit_key="one") for i in range(3)])
    free = manager.add_job("t", {"n": "free"})  # rule-failure.WorkerDefersJobForRateLimit.1
    claimed = manager.get_jobs(WORKER, batch_size=10)
    assert sorted(str(job.payload["n"]) for job in claimed) == ["0", "free"]
    assert {job.id for job in claimed} == {keyed[0].id, free.id}
    limit = manager.get_rate_limit("one")
    assert limit is not None and limit.available_tokens == 0
    # rule-failure.WorkerClaimsJob.2 / rule-success.WorkerDefersJobForRateLimit
    assert manager.get_jobs(OTHER_WORKER, batch_size=10) == []
    assert all(manager.get_job(j.id).status == "available" for j in keyed[1:])  # type: ignore[union-attr]


def test_rate_limit_shared_across_batches_and_keys(manager: JobManager) -> None:
    manager.register_rate_limit("a", 2, "1 hour")
    manager.register_rate_limit("b", 3, "1 hour")
    manager.add_jobs(
        [JobSpec("t", {"k": "a"}, rate_limit_key="a") for _ in range(5)]
        + [JobSpec("t", {"k": "b"}, rate_limit_key="b") for _ in range(5)]
    )
    first = manager.get_jobs(WORKER, batch_size=3)
    second = manager.get_jobs(WORKER, batch_size=10)
    taken = [job.payload["k"] for job in first + second]
    assert sorted(taken) == ["a", "a", "b", "b", "b"]
    assert manager.get_rate_limit("a").available_tokens == 0  # type: ignore[union-attr]
    assert manager.get_rate_limit("b").available_tokens == 0  # type: ignore[union-attr]


def test_rule_failure_WorkerDefersJobForRateLimit_2_deleted_limit_is_unconstrained(
    manager: JobManager, engine: sa.Engine
) -> None:
    manager.register_rate_limit("gone", 1, "1 hour")
    manager.add_jobs([JobSpec("t", {}, rate_limit_key="gone") for _ in range(3)])
    with engine.begin() as conn:
        conn.execute(sa.delete(rate_limits).where(rate_limits.c.key == "gone"))
    assert len(manager.get_jobs(WORKER, batch_size=10)) == 3


def test_rule_failure_WorkerDefersJobForRateLimit_3_tokens_left_means_claimed(
    manager: JobManager,
) -> None:
    manager.register_rate_limit("k", 2, "1 hour")
    manager.add_jobs([JobSpec("t", {}, rate_limit_key="k") for _ in range(2)])
    assert len(manager.get_jobs(WORKER)) == 1
    assert len(manager.get_jobs(WORKER)) == 1
    assert manager.get_jobs(WORKER) == []


def test_every_claim_takes_a_token_retries_included(manager: JobManager) -> None:
    manager.register_rate_limit("k", 2, "1 hour")
    job = manager.add_job("t", {}, rate_limit_key="k")
    [first] = manager.get_jobs(WORKER)
    manager.fail_jobs(WORKER, [JobError(first, "retry me")], 1)
    manager.reschedule_jobs([job.id], run_at=manager.now() - timedelta(seconds=1))
    [second] = manager.get_jobs(WORKER)
    assert second.attempts == 2
    assert manager.get_rate_limit("k").available_tokens == 0  # type: ignore[union-attr]


def test_bucket_refills_at_claim_time(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_rate_limit("k", 2, "1 minute")
    manager.add_jobs([JobSpec("t", {}, rate_limit_key="k") for _ in range(5)])
    assert len(manager.get_jobs(WORKER, batch_size=5)) == 2
    assert manager.get_jobs(WORKER, batch_size=5) == []
    _expire_window(engine, "k")
    before = manager.now()
    assert len(manager.get_jobs(WORKER, batch_size=5)) == 2
    limit = manager.get_rate_limit("k")
    assert limit is not None and limit.available_tokens == 0
    assert before - MS <= limit.last_refill_at <= manager.now() + MS
    assert limit.next_refill_at == limit.last_refill_at + timedelta(minutes=1)


def test_rule_success_RefillRateLimit(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_rate_limit("due", 2, "1 minute")
    manager.register_rate_limit("not_due", 2, "1 hour")
    manager.add_jobs([JobSpec("t", {}, rate_limit_key=k) for k in ("due", "not_due")])
    manager.get_jobs(WORKER, batch_size=5)
    untouched = manager.get_rate_limit("not_due")
    assert manager.refill_rate_limits() == 0
    _expire_window(engine, "due")
    before = manager.now()
    assert manager.refill_rate_limits() == 1
    due = manager.get_rate_limit("due")
    assert due is not None and due.available_tokens == 2
    assert before - MS <= due.last_refill_at <= manager.now() + MS
    assert due.next_refill_at == due.last_refill_at + timedelta(minutes=1)
    assert manager.get_rate_limit("not_due") == untouched  # temporal.RefillRateLimit
    assert manager.refill_rate_limits() == 0


def test_invariant_RateLimitTokenBound_and_RegisterRateLimit(manager: JobManager) -> None:
    """rule-success/failure.RegisterRateLimit and invariant.RateLimitTokenBound."""
    assert manager.get_rate_limit("k") is None
    before = manager.now()
    created = manager.register_rate_limit("k", 5, "90 seconds")
    assert (created.key, created.capacity, created.available_tokens) == ("k", 5, 5)
    assert created.interval == timedelta(seconds=90)
    assert before - MS <= created.last_refill_at <= manager.now() + MS
    assert created.next_refill_at == created.last_refill_at + timedelta(seconds=90)
    manager.add_jobs([JobSpec("t", {}, rate_limit_key="k") for _ in range(2)])
    manager.get_jobs(WORKER, batch_size=5)
    bigger = manager.register_rate_limit("k", 10, "1 minute")
    assert (bigger.capacity, bigger.available_tokens) == (10, 3)
    assert bigger.last_refill_at == created.last_refill_at
    assert bigger.next_refill_at == created.last_refill_at + timedelta(minutes=1)
    smaller = manager.register_rate_limit("k", 2, "1 minute")
    assert (smaller.capacity, smaller.available_tokens) == (2, 2)
    assert manager.register_rate_limit("k", 2, "1 minute") == smaller
    assert manager.get_rate_limit("k") == smaller


def test_concurrent_claims_never_exceed_tokens(server_manager: JobManager) -> None:
    """A claim waiting on a bucket another open claim emptied takes nothing from it."""
    manager = server_manager
    engine = manager.engine
    manager.register_rate_limit("one", 1, "1 hour")
    manager.add_jobs([JobSpec("t", {"n": i}, rate_limit_key="one") for i in range(4)])
    results: list[list[uuid.UUID]] = []
    with engine.connect() as conn:
        transaction = conn.begin()
        [held] = manager.get_jobs(WORKER, session=conn)
        rival = threading.Thread(
            target=lambda: results.append(
                [j.id for j in manager.get_jobs(OTHER_WORKER, batch_size=10)]
            )
        )
        rival.start()
        transaction.commit()
    rival.join()
    assert results == [[]]
    assert manager.get_rate_limit("one").available_tokens == 0  # type: ignore[union-attr]
    assert held.rate_limit_key == "one"


def test_forbidden_flags_match_exactly(manager: JobManager) -> None:
    manager.add_jobs(
        [JobSpec("t", {"f": f}, flags=[f]) for f in ("slow", "Slow", "slow ", "slów", "ü")]
    )
    picked = manager.get_jobs(WORKER, forbidden_flags=["SLOW", "slow", "u"], batch_size=10)
    assert sorted(job.payload["f"] for job in picked) == sorted(["Slow", "slow ", "slów", "ü"])


def test_max_queued_caps_the_named_queue_jobs_of_a_claim_in_claim_order(
    manager: JobManager,
) -> None:
    manager.add_jobs(
        [JobSpec("t", {"n": n}, queue_name=f"q{n}" if n < 4 else None) for n in range(8)]
    )
    claimed = manager.get_jobs(WORKER, batch_size=5, max_queued=2)
    assert [job.payload["n"] for job in claimed] == [0, 1, 4, 5, 6]
    plain_only = manager.get_jobs(OTHER_WORKER, batch_size=5, max_queued=0)
    assert [job.payload["n"] for job in plain_only] == [7]
    rest = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert [job.payload["n"] for job in rest] == [2, 3]
    with pytest.raises(ValueError, match="max_queued"):
        manager.get_jobs(WORKER, batch_size=1, max_queued=-1)
