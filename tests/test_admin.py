"""Admin operations: reschedule, permanently fail, force unlock, replay (seed §7.2, §7.7).

Every test runs on SQLite, PostgreSQL and MariaDB. Tests named after a seed
rule id (``rule-success.RescheduleJobs`` → ``test_rule_success_RescheduleJobs``)
prove that rule; the others prove where SPEC §4 goes beyond the seed.
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
    InvalidArgumentError,
    Job,
    JobError,
    JobManager,
    PayloadValidationError,
)
from queuekit.models import job_history, job_queues, jobs

WORKER = "worker-a"
OTHER = "worker-b"


@pytest.fixture
def manager(clean_manager: JobManager) -> JobManager:
    """An empty, migrated database per dialect (one database per module, emptied per test)."""
    return clean_manager


def claim_one(manager: JobManager, task: str, worker: str = WORKER) -> Job:
    """Claim exactly one job of ``task`` and return it."""
    claimed = manager.get_jobs(worker, task_identifiers=[task])
    assert len(claimed) == 1, claimed
    return claimed[0]


def exhaust(
    manager: JobManager, task: str, payload: dict[str, Any] | None = None, **opts: Any
) -> Job:
    """Enqueue a one-attempt job of ``task``, claim it and fail it: it ends exhausted."""
    job = manager.add_job(task, payload or {}, max_attempts=1, **opts)
    claimed = claim_one(manager, task)
    assert claimed.id == job.id
    failed = manager.fail_jobs(WORKER, [JobError(claimed, "boom")], 5)
    assert failed[0].status == "exhausted"
    return failed[0]


def job_rows(manager: JobManager) -> list[dict[str, Any]]:
    """Every job row, as plain dicts, in id order."""
    with manager.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(jobs).order_by(jobs.c.id))]


def history_rows(manager: JobManager) -> list[dict[str, Any]]:
    """Every history row, as plain dicts, in id order."""
    with manager.engine.connect() as conn:
        statement = sa.select(job_history).order_by(job_history.c.id)
        return [dict(r._mapping) for r in conn.execute(statement)]


def queue_rows(manager: JobManager) -> dict[str, dict[str, Any]]:
    """Every named queue row, by name."""
    with manager.engine.connect() as conn:
        return {r.queue_name: dict(r._mapping) for r in conn.execute(sa.select(job_queues))}


def snapshot(manager: JobManager) -> tuple[Any, ...]:
    """Everything an admin operation could change, to prove it changed nothing."""
    return job_rows(manager), history_rows(manager), queue_rows(manager)


# -- reschedule (§7.2) ------------------------------------------------------------


def test_rule_success_RescheduleJobs(manager: JobManager) -> None:
    first = manager.add_job("mail", {"n": 1})
    second = manager.add_job("mail", {"n": 2})
    later = datetime.now(UTC) + timedelta(hours=3)

    changed = manager.reschedule_jobs([first.id, second.id], run_at=later, priority=7)

    assert [j.id for j in changed] == [first.id, second.id]
    for job, before in zip(changed, (first, second), strict=True):
        assert abs(job.run_at - later) < timedelta(milliseconds=1)
        assert job.priority == 7
        assert job.max_attempts == before.max_attempts
        assert job.revision == before.revision + 1
    only_attempts = manager.reschedule_jobs([first.id], max_attempts=3)
    assert only_attempts[0].max_attempts == 3
    assert only_attempts[0].priority == 7
    assert only_attempts[0].revision == first.revision + 2
    stored = manager.get_job(first.id)
    assert stored is not None and stored.max_attempts == 3 and stored.priority == 7


def test_rule_success_RescheduleJobs_no_fields_changes_nothing(manager: JobManager) -> None:
    job = manager.add_job("mail", {})
    before = snapshot(manager)
    assert manager.reschedule_jobs([job.id]) == []
    assert snapshot(manager) == before


def test_rule_success_RescheduleJobs_unknown_ids_give_empty_result(manager: JobManager) -> None:
    job = manager.add_job("mail", {})
    before = snapshot(manager)
    assert manager.reschedule_jobs([uuid.uuid4()], priority=3) == []
    assert manager.reschedule_jobs([], priority=3) == []
    assert snapshot(manager) == before
    mixed = manager.reschedule_jobs([uuid.uuid4(), job.id], priority=3)
    assert [j.id for j in mixed] == [job.id]


def test_reschedule_moves_job_out_of_and_back_into_reach(manager: JobManager) -> None:
    job = manager.add_job("mail", {})
    manager.reschedule_jobs([job.id], run_at=datetime.now(UTC) + timedelta(hours=1))
    assert manager.get_jobs(WORKER) == []
    manager.reschedule_jobs([job.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
    assert [j.id for j in manager.get_jobs(WORKER)] == [job.id]


def test_reschedule_never_leaves_attempts_above_max_attempts(manager: JobManager) -> None:
    fresh = manager.add_job("mail", {}, max_attempts=5)
    tried = manager.add_job("once", {}, max_attempts=5)
    claimed = claim_one(manager, "once")
    manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    claimed = manager.get_jobs(WORKER, task_identifiers=["once"])
    assert claimed == []  # backoff: not yet due again
    manager.reschedule_jobs([tried.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "once"), "y")], 1)
    assert manager.get_job(tried.id).attempts == 2  # type: ignore[union-attr]
    before = snapshot(manager)

    with pytest.raises(InvalidArgumentError, match="max_attempts"):
        manager.reschedule_jobs([fresh.id, tried.id], max_attempts=1, priority=9)

    assert snapshot(manager) == before
    # Equal to attempts is allowed: the job is then exhausted, never over its bound.
    at_bound = manager.reschedule_jobs([tried.id], max_attempts=2)
    assert at_bound[0].attempts == at_bound[0].max_attempts == 2
    assert at_bound[0].status == "exhausted"


def test_reschedule_of_locked_job_keeps_its_claim(manager: JobManager) -> None:
    manager.add_job("mail", {}, max_attempts=3)
    claimed = claim_one(manager, "mail")
    moved = manager.reschedule_jobs([claimed.id], priority=4)
    assert moved[0].status == "locked"
    assert [j.id for j in manager.complete_jobs(WORKER, [claimed], 1)] == [claimed.id]


@pytest.mark.parametrize(
    ("job_ids", "options"),
    [
        ("not-a-list", {"priority": 1}),
        (["not-a-uuid"], {"priority": 1}),
        ([42], {"priority": 1}),
        (None, {"priority": 1}),
        ([uuid.uuid4()], {"run_at": datetime(2030, 1, 1)}),  # naive
        ([uuid.uuid4()], {"run_at": "tomorrow"}),
        ([uuid.uuid4()], {"priority": "high"}),
        ([uuid.uuid4()], {"priority": True}),
        ([uuid.uuid4()], {"max_attempts": 0}),
        ([uuid.uuid4()], {"max_attempts": 1.5}),
    ],
)
def test_reschedule_bad_input_raises_and_writes_nothing(
    manager: JobManager, job_ids: Any, options: dict[str, Any]
) -> None:
    manager.add_job("mail", {})
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        manager.reschedule_jobs(job_ids, **options)
    assert snapshot(manager) == before


# -- permanently fail (§7.7) ----------------------------------------------------------


def test_rule_success_PermanentlyFailJobs(manager: JobManager) -> None:
    queued = manager.add_job("mail", {}, queue_name="q1", max_attempts=4)
    plain = manager.add_job("mail", {}, max_attempts=4)
    running = claim_one(manager, "mail")
    assert running.id == queued.id
    assert queue_rows(manager)["q1"]["locked_by"] == WORKER

    failed = manager.permanently_fail_jobs([queued.id, plain.id, uuid.uuid4()], "operator gave up")

    assert sorted(j.id for j in failed) == sorted([queued.id, plain.id])
    for job in failed:
        assert job.status == "exhausted"
        assert job.attempts == job.max_attempts
        assert job.last_error == "operator gave up"
        assert job.locked_at is None and job.locked_by is None
    assert queue_rows(manager)["q1"]["locked_at"] is None
    assert manager.get_jobs(WORKER) == []


def test_rule_success_PermanentlyFailJobs_unknown_ids_give_empty_result(
    manager: JobManager,
) -> None:
    manager.add_job("mail", {})
    before = snapshot(manager)
    assert manager.permanently_fail_jobs([uuid.uuid4(), uuid.uuid4()], "why") == []
    assert manager.permanently_fail_jobs([], "why") == []
    assert snapshot(manager) == before


def test_transition_edge_Job_available_exhausted(manager: JobManager) -> None:
    job = manager.add_job("mail", {}, max_attempts=5)
    assert job.status == "available"
    (failed,) = manager.permanently_fail_jobs([job.id], "not wanted")
    assert failed.status == "exhausted"
    assert failed.attempts == 5
    assert failed.revision == job.revision + 1
    assert history_rows(manager) == []  # no attempt ran, so no history row


def test_permanently_fail_closes_the_running_attempt_with_the_reason(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="q", max_attempts=3)
    running = claim_one(manager, "mail")

    manager.permanently_fail_jobs([running.id], "poison message")

    (row,) = history_rows(manager)
    assert row["correlation_id"] == running.correlation_id
    assert row["status"] == "failed"
    assert row["error_message"] == "poison message"
    assert row["completed_at"] is not None
    # The worker no longer owns the attempt: its completion is ignored.
    assert manager.complete_jobs(WORKER, [running], 1) == []
    assert manager.get_job(running.id).status == "exhausted"  # type: ignore[union-attr]


@pytest.mark.parametrize("reason", ["", "   ", None, 42, ["why"]])
def test_permanently_fail_needs_a_reason(manager: JobManager, reason: Any) -> None:
    job = manager.add_job("mail", {})
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError, match="reason"):
        manager.permanently_fail_jobs([job.id], reason)
    assert snapshot(manager) == before


@pytest.mark.parametrize("job_ids", ["abc", [None], ["nope"], 7])
def test_permanently_fail_bad_ids(manager: JobManager, job_ids: Any) -> None:
    manager.add_job("mail", {})
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        manager.permanently_fail_jobs(job_ids, "why")
    assert snapshot(manager) == before


# -- force unlock jobs (§7.7) ---------------------------------------------------------


def test_rule_success_ForceUnlockJobs(manager: JobManager) -> None:
    manager.add_job("mail", {}, queue_name="q", max_attempts=3)
    manager.add_job("mail", {}, max_attempts=3)
    mine = manager.get_jobs(WORKER, batch_size=5)
    assert len(mine) == 2
    theirs = manager.add_job("sms", {}, max_attempts=3)
    assert claim_one(manager, "sms", OTHER).id == theirs.id

    unlocked = manager.force_unlock_jobs([WORKER])

    assert sorted(j.id for j in unlocked) == sorted(j.id for j in mine)
    assert all(j.status == "available" and j.locked_by is None for j in unlocked)
    assert manager.get_job(theirs.id).status == "locked"  # type: ignore[union-attr]
    assert queue_rows(manager)["q"]["locked_at"] is None
    reclaimed = manager.get_jobs("worker-c", batch_size=5)
    assert sorted(j.id for j in reclaimed) == sorted(j.id for j in mine)
    assert all(j.attempts == 2 for j in reclaimed)  # the lost attempt is not refunded


def test_rule_failure_ForceUnlockJobs_1_only_locked_jobs_are_affected(
    manager: JobManager,
) -> None:
    waiting = manager.add_job("mail", {}, run_at=datetime.now(UTC) + timedelta(hours=1))
    done = exhaust(manager, "dead")
    manager.add_job("mail", {}, max_attempts=3)
    running = claim_one(manager, "mail")
    before = {row["id"]: row for row in job_rows(manager)}

    unlocked = manager.force_unlock_jobs()

    assert [j.id for j in unlocked] == [running.id]
    after = {row["id"]: row for row in job_rows(manager)}
    assert after[waiting.id] == before[waiting.id]
    assert after[done.id] == before[done.id]


def test_force_unlock_jobs_empty_list_unlocks_nothing_none_unlocks_all(
    manager: JobManager,
) -> None:
    manager.add_job("mail", {}, queue_name="q", max_attempts=3)
    manager.add_job("sms", {}, max_attempts=3)
    claim_one(manager, "mail")
    claim_one(manager, "sms", OTHER)
    before = snapshot(manager)

    assert manager.force_unlock_jobs([]) == []
    assert manager.force_unlock_jobs(["nobody"]) == []
    assert snapshot(manager) == before

    assert len(manager.force_unlock_jobs(None)) == 2
    assert all(row["locked_at"] is None for row in job_rows(manager))
    assert all(q["locked_at"] is None for q in queue_rows(manager).values())


def test_force_unlock_closes_attempt_and_exhausts_at_last_attempt(manager: JobManager) -> None:
    last = manager.add_job("last", {}, max_attempts=1)
    more = manager.add_job("more", {}, max_attempts=2)
    claimed = manager.get_jobs(WORKER, batch_size=2)

    unlocked = {j.id: j for j in manager.force_unlock_jobs([WORKER])}

    assert unlocked[last.id].status == "exhausted"
    assert unlocked[more.id].status == "available"
    rows = {row["correlation_id"]: row for row in history_rows(manager)}
    for job in claimed:
        row = rows[job.correlation_id]
        assert row["status"] == "failed"
        assert row["error_message"] == "force unlocked"
        assert row["completed_at"] is not None
    assert manager.fail_jobs(WORKER, [JobError(j, "late") for j in claimed], 1) == []


@pytest.mark.parametrize("worker_ids", ["worker-a", [""], [None], [3], 5])
def test_force_unlock_jobs_bad_input(manager: JobManager, worker_ids: Any) -> None:
    manager.add_job("mail", {})
    claim_one(manager, "mail")
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        manager.force_unlock_jobs(worker_ids)
    assert snapshot(manager) == before


# -- force unlock queues (§7.7) -------------------------------------------------------


def _lock_queues(manager: JobManager, names: list[str]) -> dict[str, Job]:
    for name in names:
        manager.add_job("mail", {"queue": name}, queue_name=name, max_attempts=3)
    claimed = manager.get_jobs(WORKER, batch_size=len(names))
    assert sorted(j.queue_name or "" for j in claimed) == sorted(names)
    return {j.queue_name or "": j for j in claimed}


def test_rule_success_ForceUnlockQueues(manager: JobManager) -> None:
    _lock_queues(manager, ["q1", "q2"])
    manager.add_job("mail", {}, queue_name="idle")

    unlocked = manager.force_unlock_queues()

    assert isinstance(unlocked, list)
    assert sorted(q.queue_name for q in unlocked) == ["q1", "q2"]  # idle was not locked
    assert all(q.locked_at is None and q.locked_by is None for q in unlocked)
    assert all(q["locked_at"] is None for q in queue_rows(manager).values())


def test_rule_failure_ForceUnlockQueues_1_unnamed_queues_stay_locked(manager: JobManager) -> None:
    running = _lock_queues(manager, ["q1", "q2"])

    unlocked = manager.force_unlock_queues(["q1", "idle-or-unknown"])

    assert [q.queue_name for q in unlocked] == ["q1"]
    queues = queue_rows(manager)
    assert queues["q1"]["locked_at"] is None
    assert queues["q2"]["locked_by"] == WORKER
    assert manager.get_job(running["q2"].id).status == "locked"  # type: ignore[union-attr]


def test_force_unlock_queues_unlocks_the_job_still_running_in_it(manager: JobManager) -> None:
    running = _lock_queues(manager, ["q1"])["q1"]
    manager.add_job("mail", {"second": True}, queue_name="q1", max_attempts=3)

    manager.force_unlock_queues(["q1"])

    freed = manager.get_job(running.id)
    assert freed is not None and freed.status == "available"
    (row,) = [r for r in history_rows(manager) if r["correlation_id"] == running.correlation_id]
    assert row["status"] == "failed" and row["error_message"] == "force unlocked"
    # The queue serialises again: one job claimable, never two at once.
    again = manager.get_jobs(OTHER, batch_size=5)
    assert len(again) == 1
    assert manager.complete_jobs(WORKER, [running], 1) == []


def test_force_unlock_queues_empty_list_unlocks_nothing(manager: JobManager) -> None:
    _lock_queues(manager, ["q1"])
    before = snapshot(manager)
    assert manager.force_unlock_queues([]) == []
    assert snapshot(manager) == before


def test_force_unlock_queues_returns_only_queues_it_unlocked(manager: JobManager) -> None:
    _lock_queues(manager, ["q1"])
    manager.add_job("mail", {}, queue_name="q2")
    assert [q.queue_name for q in manager.force_unlock_queues(["q1", "q2"])] == ["q1"]
    assert manager.force_unlock_queues(["q1", "q2"]) == []


@pytest.mark.parametrize("names", ["q1", [""], [None], [1]])
def test_force_unlock_queues_bad_input(manager: JobManager, names: Any) -> None:
    _lock_queues(manager, ["q1"])
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError):
        manager.force_unlock_queues(names)
    assert snapshot(manager) == before


# -- replay (§7.7, SPEC §4) -------------------------------------------------------------


def test_rule_success_ReplayFailedJobs(manager: JobManager) -> None:
    start = manager.now()
    mail = exhaust(manager, "mail", {"to": "a@example.com"})
    exhaust(manager, "sms", {"to": "+1"})
    end = manager.now()

    replayed = manager.replay_failed_jobs(from_time=start, to_time=end, task_identifier="mail")

    assert len(replayed) == 1
    (job,) = replayed
    assert job.id != mail.id
    assert job.task_identifier == "mail"
    assert job.payload == {"to": "a@example.com"}
    assert "replay" in job.flags
    assert job.status == "available"
    assert job.attempts == 0
    assert [j.id for j in manager.get_jobs(WORKER, task_identifiers=["mail"])] == [job.id]


def test_rule_entity_creation_ReplayFailedJobs_1(manager: JobManager) -> None:
    original = exhaust(manager, "mail")
    (job,) = manager.replay_failed_jobs()
    assert job.job_key == str(original.id)
    assert job.job_key_mode == "replace"


def test_replay_keeps_queue_priority_flags_and_rate_limit_key(manager: JobManager) -> None:
    manager.register_rate_limit("api", 10, "1 hour")
    original = exhaust(
        manager,
        "mail",
        {"n": 1},
        queue_name="billing",
        priority=-3,
        flags=["urgent"],
        rate_limit_key="api",
    )
    (job,) = manager.replay_failed_jobs(max_attempts=4)
    assert job.queue_name == "billing"
    assert job.priority == -3
    assert set(job.flags) == {"urgent", "replay"}
    assert job.rate_limit_key == "api"
    assert job.max_attempts == 4
    assert original.rate_limit_key == "api"


def test_replay_max_attempts_defaults_to_25(manager: JobManager) -> None:
    exhaust(manager, "mail")
    (job,) = manager.replay_failed_jobs(max_attempts=None)
    assert job.max_attempts == 25


def test_replay_only_final_failures(manager: JobManager) -> None:
    retrying = manager.add_job("retrying", {}, max_attempts=3)
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "retrying"), "x")], 1)
    recovered = manager.add_job("recovered", {}, max_attempts=3)
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "recovered"), "x")], 1)
    manager.reschedule_jobs([recovered.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
    manager.complete_jobs(WORKER, [claim_one(manager, "recovered")], 1)
    running = manager.add_job("running", {}, max_attempts=3)
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "running"), "x")], 1)
    manager.reschedule_jobs([running.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
    claim_one(manager, "running")  # second attempt still in progress
    # A job that failed once and was then replaced through its key is gone:
    # its final outcome is that failure.
    gone = manager.add_job("gone", {"v": 1}, job_key="k", max_attempts=3)
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "gone"), "x")], 1)
    manager.add_job("gone-successor", {"v": 2}, job_key="k")
    assert manager.get_job(gone.id) is None
    dead = exhaust(manager, "dead")

    replayed = manager.replay_failed_jobs()

    assert sorted(j.job_key or "" for j in replayed) == sorted([str(gone.id), str(dead.id)])
    assert retrying.id not in {uuid.UUID(j.job_key or "") for j in replayed}


def test_replay_window_applies_to_the_latest_failed_attempt(
    manager: JobManager, clock: MovableClock
) -> None:
    job = manager.add_job("mail", {}, max_attempts=2)
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "mail"), "first")], 1)
    clock.advance()
    manager.reschedule_jobs([job.id], run_at=datetime.now(UTC) - timedelta(seconds=1))
    manager.fail_jobs(WORKER, [JobError(claim_one(manager, "mail"), "second")], 1)
    first, second = sorted(manager.job_history(job.id), key=lambda r: r.attempt_number)
    assert first.started_at is not None and second.started_at is not None
    assert first.started_at < second.started_at

    assert manager.replay_failed_jobs(from_time=first.started_at, to_time=first.started_at) == []
    assert manager.replay_failed_jobs(to_time=second.started_at - timedelta(microseconds=1)) == []
    assert manager.replay_failed_jobs(from_time=second.started_at + timedelta(seconds=1)) == []
    (replayed,) = manager.replay_failed_jobs(from_time=second.started_at, to_time=second.started_at)
    assert replayed.job_key == str(job.id)


def test_replay_without_window_replays_every_final_failure(manager: JobManager) -> None:
    originals = [exhaust(manager, f"task-{n}") for n in range(3)]
    replayed = manager.replay_failed_jobs()
    assert sorted(j.job_key or "" for j in replayed) == sorted(str(j.id) for j in originals)


def test_replay_twice_replaces_rather_than_duplicates(manager: JobManager) -> None:
    exhaust(manager, "mail")
    (first,) = manager.replay_failed_jobs()
    (second,) = manager.replay_failed_jobs()
    assert first.job_key == second.job_key
    live = manager.list_jobs(task_identifier="mail", status="available")
    assert [j.id for j in live] == [second.id]


def test_replay_validates_against_the_current_schema_atomically(manager: JobManager) -> None:
    exhaust(manager, "mail", {"to": "a@example.com"})
    exhaust(manager, "mail", {"to": 42})
    manager.register_task(
        "mail", schema={"type": "object", "properties": {"to": {"type": "string"}}}
    )
    before = snapshot(manager)

    with pytest.raises(PayloadValidationError, match="Invalid payload") as caught:
        manager.replay_failed_jobs()

    assert caught.value.errors[0]["path"] == "$.to"
    assert snapshot(manager) == before


def test_replay_window_bad_input(manager: JobManager) -> None:
    exhaust(manager, "mail")
    now = datetime.now(UTC)
    before = snapshot(manager)
    with pytest.raises(InvalidArgumentError, match="from_time"):
        manager.replay_failed_jobs(from_time=now, to_time=now - timedelta(seconds=1))
    with pytest.raises(InvalidArgumentError):
        manager.replay_failed_jobs(from_time=datetime(2020, 1, 1))
    with pytest.raises(InvalidArgumentError):
        manager.replay_failed_jobs(to_time="yesterday")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        manager.replay_failed_jobs(max_attempts=0)
    with pytest.raises(InvalidArgumentError):
        manager.replay_failed_jobs(task_identifier="")
    assert snapshot(manager) == before


# -- the caller's transaction -----------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    ["reschedule", "permanently_fail", "force_unlock_jobs", "force_unlock_queues", "replay"],
)
def test_admin_operations_join_the_callers_transaction(manager: JobManager, operation: str) -> None:
    exhaust(manager, "dead")
    manager.add_job("mail", {}, queue_name="q", max_attempts=3)
    running = claim_one(manager, "mail")
    before = snapshot(manager)

    def run(session: Session) -> list[Any]:
        if operation == "reschedule":
            return manager.reschedule_jobs([running.id], priority=5, session=session)
        if operation == "permanently_fail":
            return manager.permanently_fail_jobs([running.id], "no", session=session)
        if operation == "force_unlock_jobs":
            return manager.force_unlock_jobs(None, session=session)
        if operation == "force_unlock_queues":
            return manager.force_unlock_queues(None, session=session)
        return manager.replay_failed_jobs(session=session)

    with Session(manager.engine) as session:
        assert run(session) != []
        session.rollback()
    assert snapshot(manager) == before

    with Session(manager.engine) as session:
        assert run(session) != []
        session.commit()
    assert snapshot(manager) != before
