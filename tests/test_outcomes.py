"""Outcome conformance (reference §7.4 to §7.6) with SPEC §4's W7 fix.

Complete, fail and partial success change the job and close its ``started``
history row in one transaction, and only for the worker that still owns the
claim (same ``correlation_id``). Backoff follows the reference formula on the
database clock.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conformance import OTHER_WORKER, WORKER, caller_transaction, emptied

from queuekit import JobError, JobManager, JobSpec, PartialSuccess, RetryPolicy
from queuekit.models import job_history, task_identifiers
from queuekit.types import Job

MS = timedelta(milliseconds=1)


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _claim_one(manager: JobManager, *args: object, **options: object) -> Job:
    manager.add_job("t", *args, **options)  # type: ignore[arg-type]
    [claimed] = manager.get_jobs(WORKER)
    return claimed


def _history_rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(job_history).order_by(job_history.c.id))
        return [tuple(row) for row in rows]


def _last_used(engine: sa.Engine, identifier: str) -> object:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(task_identifiers.c.last_used).where(
                task_identifiers.c.identifier == identifier
            )
        ).scalar_one()


def _unlocked_stale(manager: JobManager, job: Job) -> Job:
    """The claim's Job object after someone force-unlocked the job."""
    manager.force_unlock_jobs([WORKER])
    return job


# -- complete ---------------------------------------------------------------------------------


def test_rule_success_WorkerCompletesJob(manager: JobManager) -> None:
    claimed = _claim_one(manager, {"x": 1})
    before = manager.now()
    done = manager.complete_jobs(WORKER, [claimed], 1234)
    after = manager.now()
    assert done == [claimed]
    assert manager.get_job(claimed.id) is None
    assert manager.get_jobs(WORKER, batch_size=5) == []
    [record] = manager.job_history(claimed.id)
    assert (record.status, record.execution_time_ms, record.worker_id) == (
        "completed",
        1234,
        WORKER,
    )
    assert record.completed_at is not None and before - MS <= record.completed_at <= after + MS
    assert record.started_at is not None and record.started_at <= record.completed_at
    assert record.error_message is None and record.error_stack is None


def test_rule_failure_WorkerCompletesJob_1_unlocked_job(manager: JobManager) -> None:
    job = manager.add_job("t", {})
    assert manager.complete_jobs(WORKER, [job], 1) == []  # never claimed: no correlation id
    claimed = _claim_one(manager, {})
    stale = _unlocked_stale(manager, claimed)
    assert manager.complete_jobs(WORKER, [stale], 1) == []
    still = manager.get_job(claimed.id)
    assert still is not None and still.status == "available"


def test_rule_failure_WorkerCompletesJob_2_other_workers_job(
    manager: JobManager, engine: sa.Engine
) -> None:
    claimed = _claim_one(manager, {}, queue_name="q")
    before = _history_rows(engine)
    assert manager.complete_jobs(OTHER_WORKER, [claimed], 1) == []
    assert manager.get_job(claimed.id).status == "locked"  # type: ignore[union-attr]
    assert _history_rows(engine) == before
    # rule-failure.UnlockJobQueue.2: the queue stays locked by its owner.
    assert [q.locked_by for q in manager.list_queues()] == [WORKER]


def test_rule_failure_WorkerCompletesJob_3_unknown_job(
    manager: JobManager, engine: sa.Engine
) -> None:
    claimed = _claim_one(manager, {})
    before = _history_rows(engine)
    unknown = dataclasses.replace(claimed, id=uuid.uuid4(), correlation_id=uuid.uuid4())
    assert manager.complete_jobs(WORKER, [unknown], 1) == []
    # A known claim paired with another job's id is not an owned attempt either.
    mismatched = dataclasses.replace(claimed, id=uuid.uuid4())
    assert manager.complete_jobs(WORKER, [mismatched], 1) == []
    assert manager.fail_jobs(WORKER, [JobError(mismatched, "x")], 1) == []
    assert manager.report_partial_success(WORKER, mismatched, PartialSuccess([], []), 1) is None
    assert _history_rows(engine) == before
    assert manager.get_job(claimed.id).status == "locked"  # type: ignore[union-attr]


def test_rule_failure_WorkerCompletesJob_4_second_completion(
    manager: JobManager, engine: sa.Engine
) -> None:
    claimed = _claim_one(manager, {})
    assert manager.complete_jobs(WORKER, [claimed], 5) == [claimed]
    after_first = _history_rows(engine)
    assert manager.complete_jobs(WORKER, [claimed], 6) == []
    assert manager.fail_jobs(WORKER, [JobError(claimed, "late")], 6) == []
    # transition-rejected.HistoryRecord.status: no second terminal record, nothing rewritten.
    assert _history_rows(engine) == after_first


def test_duplicates_in_one_call_finish_a_job_once(manager: JobManager) -> None:
    claimed = _claim_one(manager, {})
    assert manager.complete_jobs(WORKER, [claimed, claimed], 5) == [claimed]
    other = _claim_one(manager, {})
    failed = manager.fail_jobs(WORKER, [JobError(other, "a"), JobError(other, "b")], 5)
    assert [job.id for job in failed] == [other.id]
    assert [h.status for h in manager.job_history(other.id)] == ["failed"]


def test_complete_returns_only_the_owned_jobs_of_a_batch(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(4)])
    mine = manager.get_jobs(WORKER, batch_size=2)
    theirs = manager.get_jobs(OTHER_WORKER, batch_size=2)
    done = manager.complete_jobs(WORKER, [theirs[0], mine[1], mine[0], theirs[1]], 3)
    assert sorted(job.id for job in done) == sorted(job.id for job in mine)
    assert all(manager.get_job(job.id).status == "locked" for job in theirs)  # type: ignore[union-attr]


def test_transition_terminal_HistoryRecord_status(manager: JobManager, engine: sa.Engine) -> None:
    """completed, failed and partial_success rows never change again."""
    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(3)])
    first, second, third = manager.get_jobs(WORKER, batch_size=3)
    manager.complete_jobs(WORKER, [first], 1)
    manager.fail_jobs(WORKER, [JobError(second, "x")], 1)
    manager.report_partial_success(WORKER, third, PartialSuccess(["a"], ["b"]), 1)
    before = _history_rows(engine)
    for job in (first, second, third):
        assert manager.complete_jobs(WORKER, [job], 9) == []
        assert manager.fail_jobs(WORKER, [JobError(job, "again")], 9) == []
        assert manager.report_partial_success(WORKER, job, PartialSuccess([], []), 9) is None
    assert _history_rows(engine) == before


def test_rule_success_UnlockJobQueue(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {"n": i}, queue_name="q") for i in range(3)])
    [first] = manager.get_jobs(WORKER, batch_size=5)
    manager.complete_jobs(WORKER, [first], 1)
    assert manager.list_queues()[0].locked_at is None
    [second] = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert second.payload == {"n": 1}
    manager.fail_jobs(OTHER_WORKER, [JobError(second, "x")], 1)
    [queue] = manager.list_queues()
    assert (queue.locked_at, queue.locked_by) == (None, None)
    [third] = manager.get_jobs(WORKER, batch_size=5)
    assert third.payload == {"n": 2}


def test_rule_failure_UnlockJobQueue_1_plain_job_leaves_queues_alone(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {"q": True}, queue_name="q"), JobSpec("t", {"q": False})])
    claimed = manager.get_jobs(WORKER, batch_size=2)
    plain = [job for job in claimed if job.queue_name is None]
    manager.complete_jobs(WORKER, plain, 1)
    assert [q.locked_by for q in manager.list_queues()] == [WORKER]


def test_rule_success_RefreshTaskIdentifierOnComplete(
    manager: JobManager, engine: sa.Engine
) -> None:
    claimed = _claim_one(manager, {})
    enqueued_at = _last_used(engine, "t")
    # rule-failure.RefreshTaskIdentifierOnComplete.1/.2/.3: impostors refresh nothing.
    impostor = JobManager(engine)
    assert impostor.complete_jobs(OTHER_WORKER, [claimed], 1) == []
    assert _last_used(engine, "t") == enqueued_at
    owner = JobManager(engine)  # a fresh process: no recent refresh remembered
    owner.complete_jobs(WORKER, [claimed], 1)
    assert _last_used(engine, "t") > enqueued_at  # type: ignore[operator]


# -- W7: outcomes need the claim ----------------------------------------------------------


def test_W7_reclaimed_job_cannot_be_finished_with_the_old_claim(
    manager: JobManager, engine: sa.Engine
) -> None:
    job = manager.add_job("t", {}, queue_name="q")
    [old] = manager.get_jobs(WORKER)
    manager.force_unlock_jobs([WORKER])
    [new] = manager.get_jobs(WORKER)
    assert new.id == old.id and new.correlation_id != old.correlation_id
    assert manager.complete_jobs(WORKER, [old], 1) == []
    assert manager.fail_jobs(WORKER, [JobError(old, "x")], 1) == []
    assert manager.report_partial_success(WORKER, old, PartialSuccess([], []), 1) is None
    current = manager.get_job(job.id)
    assert current is not None and current.status == "locked" and current.attempts == 2
    assert [q.locked_by for q in manager.list_queues()] == [WORKER]
    history = manager.job_history(job.id)
    assert [(h.correlation_id, h.status, h.error_message) for h in history] == [
        (new.correlation_id, "started", None),
        (old.correlation_id, "failed", "force unlocked"),
    ]
    assert manager.complete_jobs(WORKER, [new], 2) == [new]
    assert [h.status for h in manager.job_history(job.id)] == ["completed", "failed"]


@pytest.mark.parametrize("kind", ["session", "connection"])
def test_W7_outcome_and_history_commit_or_roll_back_together(
    manager: JobManager, engine: sa.Engine, kind: str
) -> None:
    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(3)])
    claimed = manager.get_jobs(WORKER, batch_size=3)
    before = _history_rows(engine)
    with caller_transaction(engine, kind, commit=False) as session:
        assert manager.complete_jobs(WORKER, [claimed[0]], 1, session=session)
        assert manager.fail_jobs(WORKER, [JobError(claimed[1], "x")], 1, session=session)
        partial = PartialSuccess(["a"], [])
        assert manager.report_partial_success(WORKER, claimed[2], partial, 1, session=session)
    assert _history_rows(engine) == before
    assert all(manager.get_job(j.id).status == "locked" for j in claimed)  # type: ignore[union-attr]
    # The claims are still valid after the rollback and can finish for real.
    assert manager.complete_jobs(WORKER, claimed, 2) == claimed


# -- fail -----------------------------------------------------------------------------------


def test_rule_success_WorkerFailsJob(manager: JobManager) -> None:
    claimed = _claim_one(manager, {}, max_attempts=3)
    try:
        raise RuntimeError("disk full")
    except RuntimeError as error:
        failure = error
    before = manager.now()
    [failed] = manager.fail_jobs(WORKER, [JobError(claimed, failure)], 77)
    after = manager.now()
    # transition-edge.Job.locked.available; when-clear locked_by/locked_at
    assert (failed.status, failed.locked_by, failed.locked_at) == ("available", None, None)
    assert (failed.last_error, failed.attempts, failed.revision) == ("disk full", 1, 2)
    # Default policy after attempt 1: 1 s * 2**1 = 2 s, plus up to 10 % jitter.
    assert before + 2000 * MS <= failed.run_at <= after + 2200 * MS
    assert failed.run_at > claimed.run_at
    assert manager.get_job(claimed.id) == failed
    [record] = manager.job_history(claimed.id)
    assert (record.status, record.error_message, record.execution_time_ms) == (
        "failed",
        "disk full",
        77,
    )
    assert record.error_stack is not None
    assert "Traceback" in record.error_stack and "RuntimeError: disk full" in record.error_stack
    assert record.completed_at is not None and before - MS <= record.completed_at <= after + MS
    assert manager.get_jobs(WORKER) == []  # not before its backoff has passed


def test_backoff_follows_the_retry_policy_on_the_database_clock(engine: sa.Engine) -> None:
    policy = RetryPolicy(base_delay="10 seconds", multiplier=3.0, max_delay="1 hour", jitter=0)
    manager = JobManager(engine, retry=policy)
    job = manager.add_job("t", {}, max_attempts=5)
    for attempt, delay_s in ((1, 30), (2, 90), (3, 270)):
        [claimed] = manager.get_jobs(WORKER)
        assert claimed.attempts == attempt
        before = manager.now()
        [failed] = manager.fail_jobs(WORKER, [JobError(claimed, f"attempt {attempt}")], 1)
        after = manager.now()
        assert before + timedelta(seconds=delay_s) <= failed.run_at
        assert failed.run_at <= after + timedelta(seconds=delay_s)
        manager.reschedule_jobs([job.id], run_at=manager.now() - timedelta(seconds=1))


def test_backoff_never_exceeds_max_delay(engine: sa.Engine) -> None:
    policy = RetryPolicy(base_delay="1 second", multiplier=10.0, max_delay="5 seconds", jitter=1)
    manager = JobManager(engine, retry=policy)
    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(5)])
    claimed = manager.get_jobs(WORKER, batch_size=5)
    before = manager.now()
    failed = manager.fail_jobs(WORKER, [JobError(job, "x") for job in claimed], 1)
    after = manager.now()
    assert len(failed) == 5
    for job in failed:
        assert before + timedelta(seconds=5) <= job.run_at <= after + timedelta(seconds=5)


def test_fail_batch_with_mixed_errors(manager: JobManager) -> None:
    """Per-job values in one statement: text, None, exceptions, empty messages."""
    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(4)])
    claimed = manager.get_jobs(WORKER, batch_size=4)
    errors: list[BaseException | str | None] = ["plain text", None, ValueError("bad"), KeyError()]
    failed = manager.fail_jobs(
        WORKER, [JobError(job, error) for job, error in zip(claimed, errors, strict=True)], 8
    )
    by_id = {job.id: job for job in failed}
    expected = ["plain text", None, "bad", "KeyError"]
    assert [by_id[job.id].last_error for job in claimed] == expected
    for job, message in zip(claimed, expected, strict=True):
        [record] = manager.job_history(job.id)
        assert (record.status, record.error_message, record.execution_time_ms) == (
            "failed",
            message,
            8,
        )
    stacks = [manager.job_history(job.id)[0].error_stack for job in claimed]
    assert stacks[0] is None and stacks[1] is None
    assert stacks[2] is not None and "ValueError: bad" in stacks[2]


def test_rule_failure_WorkerFailsJob_1_unlocked_job(manager: JobManager) -> None:
    job = manager.add_job("t", {})
    assert manager.fail_jobs(WORKER, [JobError(job, "x")], 1) == []
    claimed = _claim_one(manager, {})
    stale = _unlocked_stale(manager, claimed)
    assert manager.fail_jobs(WORKER, [JobError(stale, "x")], 1) == []
    assert manager.get_job(claimed.id).last_error is None  # type: ignore[union-attr]


def test_rule_failure_WorkerFailsJob_2_wrong_worker(manager: JobManager) -> None:
    claimed = _claim_one(manager, {})
    assert manager.fail_jobs(OTHER_WORKER, [JobError(claimed, "x")], 1) == []
    current = manager.get_job(claimed.id)
    assert current is not None and current.status == "locked" and current.last_error is None


def test_rule_failure_WorkerFailsJob_4_unknown_job(manager: JobManager) -> None:
    claimed = _claim_one(manager, {})
    unknown = dataclasses.replace(claimed, id=uuid.uuid4(), correlation_id=uuid.uuid4())
    assert manager.fail_jobs(WORKER, [JobError(unknown, "x")], 1) == []


def test_rule_failure_WorkerFailsJob_5_null_error(manager: JobManager) -> None:
    claimed = _claim_one(manager, {})
    [failed] = manager.fail_jobs(WORKER, [JobError(claimed, None)], 1)
    assert failed.last_error is None and failed.status == "available"
    [record] = manager.job_history(claimed.id)
    assert (record.status, record.error_message, record.error_stack) == ("failed", None, None)


def test_fail_keeps_a_later_run_at(manager: JobManager) -> None:
    """run_at is never moved backwards by a failure."""
    claimed = _claim_one(manager, {})
    [failed] = manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    assert failed.run_at >= claimed.locked_at  # type: ignore[operator]


# -- exhaust --------------------------------------------------------------------------------


def test_rule_success_WorkerExhaustsJob(manager: JobManager) -> None:
    claimed = _claim_one(manager, {}, max_attempts=1)
    [exhausted] = manager.fail_jobs(WORKER, [JobError(claimed, "fatal")], 1)
    # transition-edge.Job.locked.exhausted; when-clear locked_by/locked_at
    assert (exhausted.status, exhausted.locked_by, exhausted.locked_at) == ("exhausted", None, None)
    assert (exhausted.attempts, exhausted.max_attempts, exhausted.last_error) == (1, 1, "fatal")
    assert manager.get_jobs(WORKER, batch_size=5) == []  # transition-terminal.Job.status
    assert [h.status for h in manager.job_history(claimed.id)] == ["failed"]
    # rule-failure.WorkerExhaustsJob.5 / transition-rejected.Job.status
    assert manager.fail_jobs(WORKER, [JobError(claimed, "again")], 1) == []
    assert manager.get_job(claimed.id) == exhausted


def test_rule_failure_WorkerExhaustsJob_3_attempts_remain(manager: JobManager) -> None:
    claimed = _claim_one(manager, {}, max_attempts=2)
    [failed] = manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    assert failed.status == "available"


def test_rule_failure_WorkerExhaustsJob_6_queue_unlocked(manager: JobManager) -> None:
    manager.add_jobs(
        [
            JobSpec("t", {"n": 1}, queue_name="q", max_attempts=1),
            JobSpec("t", {"n": 2}, queue_name="q"),
        ]
    )
    [first] = manager.get_jobs(WORKER, batch_size=5)
    manager.fail_jobs(WORKER, [JobError(first, "x")], 1)
    [queue] = manager.list_queues()
    assert queue.locked_at is None
    [second] = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert second.payload == {"n": 2}


def test_invariant_Job_AttemptsWithinBound(manager: JobManager) -> None:
    job = manager.add_job("t", {}, max_attempts=3)
    for attempt in range(1, 4):
        [claimed] = manager.get_jobs(WORKER)
        assert claimed.attempts == attempt <= claimed.max_attempts
        [failed] = manager.fail_jobs(WORKER, [JobError(claimed, f"e{attempt}")], 1)
        manager.reschedule_jobs([job.id], run_at=manager.now() - timedelta(seconds=1))
    final = manager.get_job(job.id)
    assert final is not None and (final.attempts, final.status) == (3, "exhausted")
    assert failed.status == "exhausted"
    assert manager.get_jobs(WORKER) == []
    assert [h.attempt_number for h in manager.job_history(job.id)] == [3, 2, 1]


def test_entity_relationship_TaskIdentifier_active_jobs(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {}, max_attempts=1), JobSpec("t", {}, max_attempts=1)])
    assert manager.stats().by_task["t"] == {"available": 2, "locked": 0, "exhausted": 0}
    claimed = manager.get_jobs(WORKER, batch_size=2)
    manager.fail_jobs(WORKER, [JobError(job, "x") for job in claimed], 1)
    assert manager.stats().by_task["t"] == {"available": 0, "locked": 0, "exhausted": 2}


def test_rule_success_RefreshTaskIdentifierOnFail(manager: JobManager, engine: sa.Engine) -> None:
    claimed = _claim_one(manager, {})
    enqueued_at = _last_used(engine, "t")
    assert JobManager(engine).fail_jobs(OTHER_WORKER, [JobError(claimed, "x")], 1) == []
    assert _last_used(engine, "t") == enqueued_at
    JobManager(engine).fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    assert _last_used(engine, "t") > enqueued_at  # type: ignore[operator]


# -- partial success ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "results", [{"rows": [1, 2], "ok": True}, ["a", 1, None], "text", 42, 1.5, None]
)
def test_rule_success_WorkerReportsPartialSuccess(manager: JobManager, results: object) -> None:
    claimed = _claim_one(manager, {}, max_attempts=3)
    [failed] = manager.fail_jobs(WORKER, [JobError(claimed, "first try")], 1)
    assert failed.last_error == "first try"
    manager.reschedule_jobs([claimed.id], run_at=manager.now() - timedelta(seconds=1))
    [again] = manager.get_jobs(WORKER)
    partial = PartialSuccess(["fetch", "parse"], ["store"], "store", results)
    before = manager.now()
    state = manager.report_partial_success(WORKER, again, partial, 31)
    after = manager.now()
    assert state is not None
    # when-clear.WorkerReportsPartialSuccess.Job.locked_by/.locked_at; error cleared
    assert (state.status, state.locked_by, state.locked_at, state.last_error) == (
        "available",
        None,
        None,
        None,
    )
    assert state.attempts == 2
    assert before + 4000 * MS <= state.run_at <= after + 4400 * MS  # 1 s * 2**2 + jitter
    record = manager.job_history(claimed.id)[0]
    assert record.status == "partial_success"
    assert (record.completed_steps, record.failed_steps, record.retry_from_step) == (
        ["fetch", "parse"],
        ["store"],
        "store",
    )
    assert record.partial_results == results
    assert (record.execution_time_ms, record.error_message) == (31, None)
    assert record.completed_at is not None and before - MS <= record.completed_at <= after + MS


def test_rule_failure_WorkerReportsPartialSuccess_guards(manager: JobManager) -> None:
    """.1 not locked, .2 wrong worker, .4 unknown id, .5 no started history row."""
    partial = PartialSuccess(["a"], ["b"])
    unclaimed = manager.add_job("t", {})
    assert manager.report_partial_success(WORKER, unclaimed, partial, 1) is None
    [claimed] = manager.get_jobs(WORKER)
    assert manager.report_partial_success(OTHER_WORKER, claimed, partial, 1) is None
    unknown = dataclasses.replace(claimed, id=uuid.uuid4(), correlation_id=uuid.uuid4())
    assert manager.report_partial_success(WORKER, unknown, partial, 1) is None
    current = manager.get_job(claimed.id)
    assert current is not None and current.status == "locked"
    manager.force_unlock_jobs([WORKER])  # closes the started row as failed
    assert manager.report_partial_success(WORKER, claimed, partial, 1) is None
    assert [h.status for h in manager.job_history(claimed.id)] == ["failed"]


def test_rule_success_WorkerExhaustsJobWithPartialSuccess(manager: JobManager) -> None:
    manager.add_jobs(
        [
            JobSpec("t", {"n": 1}, queue_name="q", max_attempts=1),
            JobSpec("t", {"n": 2}, queue_name="q"),
        ]
    )
    [claimed] = manager.get_jobs(WORKER, batch_size=5)
    state = manager.report_partial_success(WORKER, claimed, PartialSuccess(["a"], ["b"]), 4)
    assert state is not None
    assert (state.status, state.locked_by, state.locked_at) == ("exhausted", None, None)
    assert state.last_error == "max-attempts reached on partial-success"
    assert manager.get_job(claimed.id) == state
    [record] = manager.job_history(claimed.id)
    assert (record.status, record.completed_steps, record.failed_steps) == (
        "partial_success",
        ["a"],
        ["b"],
    )
    # .5 already exhausted; .6 the queue is free again for the next job.
    assert manager.report_partial_success(WORKER, claimed, PartialSuccess([], []), 1) is None
    [second] = manager.get_jobs(OTHER_WORKER, batch_size=5)
    assert second.payload == {"n": 2}


def test_rule_success_RefreshTaskIdentifierOnPartialSuccess(
    manager: JobManager, engine: sa.Engine
) -> None:
    claimed = _claim_one(manager, {})
    enqueued_at = _last_used(engine, "t")
    impostor = JobManager(engine)
    assert impostor.report_partial_success(OTHER_WORKER, claimed, PartialSuccess([], []), 1) is None
    assert _last_used(engine, "t") == enqueued_at
    JobManager(engine).report_partial_success(WORKER, claimed, PartialSuccess([], []), 1)
    assert _last_used(engine, "t") > enqueued_at  # type: ignore[operator]


def test_mixed_outcomes_in_one_flush(manager: JobManager) -> None:
    """finish_jobs records complete, fail and partial success together, atomically."""
    from queuekit.repository import Outcome

    manager.add_jobs([JobSpec("t", {"n": i}) for i in range(3)])
    a, b, c = manager.get_jobs(WORKER, batch_size=3)
    finished = manager.finish_jobs(
        WORKER,
        [
            Outcome(a, "completed", 1),
            Outcome(b, "failed", 2, error="boom"),
            Outcome(c, "partial_success", 3, partial=PartialSuccess(["x"], [], None, {"r": 1})),
        ],
    )
    assert [f.job.id for f in finished] == [a.id, b.id, c.id]
    assert [manager.job_history(j.id)[0].status for j in (a, b, c)] == [
        "completed",
        "failed",
        "partial_success",
    ]
    assert manager.job_history(c.id)[0].partial_results == {"r": 1}
    assert manager.job_history(b.id)[0].execution_time_ms == 2
