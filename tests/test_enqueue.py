"""Enqueue conformance (reference §7.1) with the job-key fixes of SPEC §4 (W4, W5).

Test names carry the reference rule ids (``rule-success.AddJobReplace`` →
``test_rule_success_AddJobReplace``).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from conformance import WORKER, emptied, row_counts, snapshot
from sqlalchemy.orm import Session

from queuekit import (
    JobError,
    JobKeyError,
    JobManager,
    JobSpec,
    PayloadValidationError,
    TransientDatabaseError,
    UnknownRateLimitError,
)
from queuekit.models import jobs

MODES = ("replace", "preserve_run_at", "unsafe_dedupe")


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _live_jobs_with_key(engine: sa.Engine, key: str) -> list[uuid.UUID]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(jobs.c.id).where(jobs.c.job_key == key)).scalars())


# -- rule-success.AddJob and its entity creation -------------------------------------------


def test_rule_success_AddJob(manager: JobManager) -> None:
    manager.register_rate_limit("smtp", 5, "1 minute")
    run_at = datetime.now(UTC) + timedelta(hours=1)
    job = manager.add_job(
        "send_email",
        {"to": "a@example.com", "n": [1, 2]},
        queue_name="mail",
        run_at=run_at,
        priority=-3,
        max_attempts=4,
        flags=["slow", "external"],
        rate_limit_key="smtp",
    )
    assert job.task_identifier == "send_email"
    assert job.payload == {"to": "a@example.com", "n": [1, 2]}
    assert job.queue_name == "mail"
    assert abs(job.run_at - run_at) < timedelta(milliseconds=1)
    assert (job.priority, job.max_attempts, job.flags) == (-3, 4, ("slow", "external"))
    assert job.rate_limit_key == "smtp"
    assert job.job_key is None and job.job_key_mode is None
    assert manager.get_job(job.id) == job
    plain = manager.add_job("send_email", {})
    assert plain.rate_limit_key is None


def test_rule_entity_creation_AddJob_1(manager: JobManager) -> None:
    before = manager.now()
    job = manager.add_job("task", None)
    after = manager.now()
    assert isinstance(job.id, uuid.UUID) and job.id.version == 7
    assert job.payload == {}
    assert (job.priority, job.max_attempts, job.attempts, job.revision) == (0, 25, 0, 0)
    assert job.status == "available" and job.locked_at is None and job.locked_by is None
    assert job.last_error is None and job.correlation_id is None and job.flags == ()
    for moment in (job.run_at, job.created_at, job.updated_at):
        assert moment.tzinfo is not None
        assert before - timedelta(milliseconds=1) <= moment <= after + timedelta(milliseconds=1)
    later = manager.add_job("task", None)
    assert later.id > job.id  # UUIDv7: time-ordered


def test_rule_failure_AddJob_1(manager: JobManager) -> None:
    """Keyless enqueue is the plain rule; the minimal call (task + {}) succeeds, twice."""
    first = manager.add_job("minimal", {})
    second = manager.add_job("minimal", {})
    assert first.id != second.id
    assert first.job_key is None and second.job_key is None


@pytest.mark.parametrize("mode", [None, *MODES])
def test_rule_failure_AddJob_2_unknown_rate_limit_key_rejected_in_every_mode(
    manager: JobManager, engine: sa.Engine, mode: str | None
) -> None:
    """AddJob.2, AddJobReplace.3, AddJobPreserveRunAt.3, AddJobUnsafeDedupe.3."""
    key = None if mode is None else "k1"
    if key is not None:
        manager.add_job("task", {}, job_key=key, job_key_mode=mode)
    before = snapshot(engine)
    with pytest.raises(UnknownRateLimitError, match="register_rate_limit"):
        manager.add_job("task", {"x": 1}, job_key=key, job_key_mode=mode, rate_limit_key="nope")
    assert snapshot(engine) == before


# -- replace ------------------------------------------------------------------------------------


def test_rule_success_AddJobReplace(manager: JobManager, engine: sa.Engine) -> None:
    old = manager.add_job("first", {"v": 1}, job_key="k", job_key_mode="replace")
    new = manager.add_job("second", {"v": 2}, job_key="k", job_key_mode="replace")
    assert new.id != old.id
    assert (new.task_identifier, new.payload, new.job_key, new.job_key_mode) == (
        "second",
        {"v": 2},
        "k",
        "replace",
    )
    assert manager.get_job(old.id) is None
    assert _live_jobs_with_key(engine, "k") == [new.id]


def test_rule_entity_creation_AddJobReplace_1(manager: JobManager) -> None:
    old = manager.add_job("t", {"v": 1}, job_key="k", max_attempts=3)
    [claimed] = manager.get_jobs(WORKER)
    manager.fail_jobs(WORKER, [JobError(claimed, "x")], 1)
    failed = manager.get_job(old.id)
    assert failed is not None and failed.attempts == 1 and failed.revision == 2
    new = manager.add_job("t", {"v": 2}, job_key="k")
    assert new.id != old.id
    assert (new.attempts, new.revision, new.last_error, new.status) == (0, 0, None, "available")
    assert new.created_at >= failed.created_at


@pytest.mark.parametrize("mode", MODES)
def test_rule_failure_mode_without_key_raises(
    manager: JobManager, engine: sa.Engine, mode: str
) -> None:
    """AddJobReplace.1, AddJobPreserveRunAt.1, AddJobUnsafeDedupe.1."""
    before = row_counts(engine)
    with pytest.raises(JobKeyError, match="job-key is required when job-key-mode is set"):
        manager.add_job("t", {}, job_key_mode=mode)
    assert row_counts(engine) == before


def test_rule_failure_AddJobReplace_2(manager: JobManager) -> None:
    """Replace does not fire under other modes: two unsafe_dedupe adds keep the first id."""
    first = manager.add_job("t", {"v": 1}, job_key="k", job_key_mode="unsafe_dedupe")
    second = manager.add_job("t", {"v": 2}, job_key="k", job_key_mode="unsafe_dedupe")
    assert second == first
    assert second.payload == {"v": 1}


def test_job_key_without_mode_defaults_to_replace(manager: JobManager) -> None:
    first = manager.add_job("t", {"v": 1}, job_key="k")
    second = manager.add_job("t", {"v": 2}, job_key="k")
    assert first.job_key_mode == "replace" and second.job_key_mode == "replace"
    assert second.id != first.id and second.payload == {"v": 2}
    assert manager.get_job(first.id) is None


# -- preserve_run_at ----------------------------------------------------------------------


def test_rule_success_AddJobPreserveRunAt(manager: JobManager) -> None:
    manager.register_rate_limit("r", 1, "1 minute")
    run_at = datetime.now(UTC) + timedelta(hours=2)
    created = manager.add_job(
        "first", {"v": 1}, run_at=run_at, job_key="k", job_key_mode="preserve_run_at"
    )
    assert created.job_key_mode == "preserve_run_at"
    assert abs(created.run_at - run_at) < timedelta(milliseconds=1)
    updated = manager.add_job(
        "second",
        {"v": 2},
        run_at=run_at + timedelta(days=1),
        queue_name="q",
        priority=7,
        max_attempts=9,
        flags=["f"],
        rate_limit_key="r",
        job_key="k",
        job_key_mode="preserve_run_at",
    )
    assert updated.id == created.id
    assert updated.run_at == created.run_at
    assert (updated.task_identifier, updated.payload, updated.queue_name) == (
        "second",
        {"v": 2},
        "q",
    )
    assert (updated.priority, updated.max_attempts, updated.flags) == (7, 9, ("f",))
    assert updated.rate_limit_key == "r"
    assert updated.revision == created.revision + 1
    assert updated.attempts == 0 and updated.job_key == "k"


def test_rule_failure_AddJobPreserveRunAt_2(manager: JobManager) -> None:
    """The run_at-preserving update only happens in preserve_run_at mode."""
    first_run = datetime.now(UTC) + timedelta(hours=1)
    second_run = first_run + timedelta(hours=1)
    first = manager.add_job("t", {}, run_at=first_run, job_key="k", job_key_mode="preserve_run_at")
    replaced = manager.add_job("t", {}, run_at=second_run, job_key="k", job_key_mode="replace")
    assert replaced.id != first.id
    assert abs(replaced.run_at - second_run) < timedelta(milliseconds=1)


# -- unsafe_dedupe ------------------------------------------------------------------------


def test_rule_success_AddJobUnsafeDedupe(manager: JobManager) -> None:
    created = manager.add_job("first", {"v": 1}, job_key="k", job_key_mode="unsafe_dedupe")
    assert created.job_key == "k" and created.job_key_mode == "unsafe_dedupe"
    again = manager.add_job(
        "second", {"v": 2}, priority=5, job_key="k", job_key_mode="unsafe_dedupe"
    )
    assert again == created
    assert manager.get_job(created.id) == created


def test_rule_failure_AddJobUnsafeDedupe_2(manager: JobManager) -> None:
    """Dedupe only fires in unsafe_dedupe mode: a replace afterwards makes a new job."""
    first = manager.add_job("t", {"v": 1}, job_key="k", job_key_mode="unsafe_dedupe")
    preserved = manager.add_job("t", {"v": 2}, job_key="k", job_key_mode="preserve_run_at")
    assert preserved.id == first.id and preserved.payload == {"v": 2}
    replaced = manager.add_job("t", {"v": 3}, job_key="k", job_key_mode="replace")
    assert replaced.id != first.id and replaced.payload == {"v": 3}


# -- add_jobs -----------------------------------------------------------------------------


def test_rule_success_AddJobs(manager: JobManager, engine: sa.Engine) -> None:
    specs = [JobSpec(f"task{i % 3}", {"i": i}, priority=i % 2) for i in range(25)]
    added = manager.add_jobs(specs)
    assert [job.payload["i"] for job in added] == list(range(25))
    assert [job.task_identifier for job in added] == [s.task_identifier for s in specs]
    assert len({job.id for job in added}) == 25
    assert row_counts(engine)["queuekit_jobs"] == 25
    assert manager.add_jobs([]) == []


def test_rule_success_AddJobs_invalid_payload_inserts_nothing(
    manager: JobManager, engine: sa.Engine
) -> None:
    manager.register_task("strict", schema={"type": "object", "required": ["to"]})
    before = snapshot(engine)
    specs = [JobSpec("strict", {"to": "a"}), JobSpec("free", {}), JobSpec("strict", {"cc": "b"})]
    with pytest.raises(PayloadValidationError, match=r"^Invalid payload") as caught:
        manager.add_jobs(specs)
    assert caught.value.task_identifier == "strict"
    assert caught.value.payload == {"cc": "b"}
    assert caught.value.errors == [{"path": "$", "message": "'to' is a required property"}]
    assert snapshot(engine) == before


def test_invariant_UniqueJobKey(manager: JobManager, engine: sa.Engine) -> None:
    manager.add_job("t", {"v": 1}, job_key="k", job_key_mode="replace")
    manager.add_job("t", {"v": 2}, job_key="k", job_key_mode="replace")
    deduped = manager.add_job("t", {"v": 3}, job_key="k", job_key_mode="unsafe_dedupe")
    assert _live_jobs_with_key(engine, "k") == [deduped.id]
    assert deduped.payload == {"v": 2}
    one = manager.add_job("t", {}, job_key="d", job_key_mode="unsafe_dedupe")
    two = manager.add_job("t", {}, job_key="d", job_key_mode="unsafe_dedupe")
    assert one.id == two.id
    assert _live_jobs_with_key(engine, "d") == [one.id]


def test_enum_comparable_JobKeyMode(manager: JobManager) -> None:
    for mode in MODES:
        job = manager.add_job("t", {}, job_key=f"key-{mode}", job_key_mode=mode)
        assert job.job_key_mode == mode
        stored = manager.get_job(job.id)
        assert stored is not None and stored.job_key_mode == mode
    hyphenated = manager.add_job("t", {}, job_key="h", job_key_mode="unsafe-dedupe")
    assert hyphenated.job_key_mode == "unsafe_dedupe"


def test_payload_schema_checked_and_tasks_without_schema_pass(manager: JobManager) -> None:
    manager.register_task(
        "email", schema={"type": "object", "properties": {"to": {"type": "string"}}}
    )
    with pytest.raises(PayloadValidationError, match=r"^Invalid payload") as caught:
        manager.add_job("email", {"to": 5})
    assert caught.value.errors == [{"path": "$.to", "message": "5 is not of type 'string'"}]
    assert manager.add_job("email", {"to": "x"}).payload == {"to": "x"}
    assert manager.add_job("no_schema", {"any": {"thing": [1, None]}}).payload == {
        "any": {"thing": [1, None]}
    }
    manager.register_task("email", schema=None)
    assert manager.add_job("email", {"to": 5}).payload == {"to": 5}


def test_schema_formats_are_enforced_unless_switched_off(manager: JobManager) -> None:
    schema = {
        "type": "object",
        "properties": {"to": {"type": "string", "format": "email"}, "on": {"format": "date"}},
    }
    manager.register_task("email", schema=schema)
    with pytest.raises(PayloadValidationError) as caught:
        manager.add_jobs(
            [
                JobSpec("email", {"to": "ada@example.com", "on": "2026-02-30"}),
                JobSpec("email", {"to": "not an address"}),
            ]
        )
    assert caught.value.errors == [{"path": "$.on", "message": "'2026-02-30' is not a 'date'"}]
    with pytest.raises(PayloadValidationError, match="is not a 'email'"):
        manager.add_job("email", {"to": "not an address"})
    assert manager.list_jobs() == []
    assert manager.add_job("email", {"to": "ada@example.com", "on": "2026-02-28"})

    lenient = JobManager(manager.engine, validate_formats=False)
    assert lenient.add_job("email", {"to": "not an address"}).payload == {"to": "not an address"}
    lenient.register_task("email", schema=schema)
    assert lenient.add_job("email", {"on": "2026-02-30"}).payload == {"on": "2026-02-30"}


# -- W4: a key held by a running job ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["replace", "preserve_run_at"])
def test_W4_replacing_a_running_job_detaches_its_key_and_keeps_it_running(
    manager: JobManager, engine: sa.Engine, mode: str
) -> None:
    manager.add_job("t", {"v": 1}, job_key="k", queue_name="q", job_key_mode=mode)
    [running] = manager.get_jobs(WORKER)
    later = datetime.now(UTC) + timedelta(minutes=5)
    new = manager.add_job(
        "t", {"v": 2}, job_key="k", queue_name="q", run_at=later, job_key_mode=mode
    )
    assert new.id != running.id
    assert (new.job_key, new.payload, new.status) == ("k", {"v": 2}, "available")
    assert abs(new.run_at - later) < timedelta(milliseconds=1)
    still = manager.get_job(running.id)
    assert still is not None
    assert (still.status, still.locked_by, still.job_key) == ("locked", WORKER, None)
    assert _live_jobs_with_key(engine, "k") == [new.id]
    # Its named queue stays held by the running job.
    [queue] = manager.list_queues()
    assert queue.locked_by == WORKER
    # A failure exhausts it instead of retrying; the queue is then free again.
    [failed] = manager.fail_jobs(WORKER, [JobError(running, "late failure")], 3)
    assert failed.status == "exhausted" and failed.job_key is None
    assert manager.list_queues()[0].locked_at is None
    assert manager.get_jobs(WORKER) == []  # the new job waits for its run_at


def test_W4_replaced_running_job_can_still_complete(manager: JobManager) -> None:
    manager.add_job("t", {"v": 1}, job_key="k", queue_name="q")
    [running] = manager.get_jobs(WORKER)
    new = manager.add_job("t", {"v": 2}, job_key="k", queue_name="q")
    assert manager.get_jobs("other-worker") == []  # queue held by the running job
    done = manager.complete_jobs(WORKER, [running], 9)
    assert [job.id for job in done] == [running.id]
    assert manager.get_job(running.id) is None
    assert [(h.status, h.execution_time_ms) for h in manager.job_history(running.id)] == [
        ("completed", 9)
    ]
    [next_job] = manager.get_jobs("other-worker")
    assert next_job.id == new.id


def test_W4_unsafe_dedupe_on_a_running_job_returns_it_unchanged(manager: JobManager) -> None:
    manager.add_job("t", {"v": 1}, job_key="k", job_key_mode="unsafe_dedupe")
    [running] = manager.get_jobs(WORKER)
    again = manager.add_job("t", {"v": 2}, job_key="k", job_key_mode="unsafe_dedupe")
    assert again.id == running.id
    assert (again.status, again.payload, again.job_key, again.attempts) == (
        "locked",
        {"v": 1},
        "k",
        1,
    )
    assert manager.get_job(running.id) == again


# -- W5: an exhausted job with the key counts as absent ------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_W5_exhausted_job_with_key_counts_as_absent(
    manager: JobManager, engine: sa.Engine, mode: str
) -> None:
    dead = manager.add_job("t", {"v": 1}, job_key="k", job_key_mode=mode, max_attempts=1)
    [claimed] = manager.get_jobs(WORKER)
    [exhausted] = manager.fail_jobs(WORKER, [JobError(claimed, "dead")], 1)
    assert exhausted.status == "exhausted"
    fresh = manager.add_job("t", {"v": 2}, job_key="k", job_key_mode=mode)
    assert fresh.id != dead.id
    assert (fresh.status, fresh.attempts, fresh.payload, fresh.job_key) == (
        "available",
        0,
        {"v": 2},
        "k",
    )
    kept = manager.get_job(dead.id)
    assert kept is not None
    assert (kept.status, kept.job_key, kept.last_error) == ("exhausted", None, "dead")
    assert [h.status for h in manager.job_history(dead.id)] == ["failed"]
    assert _live_jobs_with_key(engine, "k") == [fresh.id]
    [claimed_fresh] = manager.get_jobs(WORKER)
    assert claimed_fresh.id == fresh.id


# -- several requests for one key in one add_jobs call --------------------------------------


def test_add_jobs_same_key_twice_in_one_batch(manager: JobManager, engine: sa.Engine) -> None:
    replaced = manager.add_jobs(
        [JobSpec("t", {"v": 1}, job_key="r"), JobSpec("t", {"v": 2}, job_key="r")]
    )
    assert [job.payload for job in replaced] == [{"v": 1}, {"v": 2}]
    assert replaced[0].id != replaced[1].id
    assert _live_jobs_with_key(engine, "r") == [replaced[1].id]

    deduped = manager.add_jobs(
        [
            JobSpec("t", {"v": 1}, job_key="d", job_key_mode="unsafe_dedupe"),
            JobSpec("t", {"v": 2}, job_key="d", job_key_mode="unsafe_dedupe"),
        ]
    )
    assert deduped[0] == deduped[1] and deduped[0].payload == {"v": 1}

    first_run = datetime.now(UTC) + timedelta(hours=1)
    preserved = manager.add_jobs(
        [
            JobSpec("t", {"v": 1}, job_key="p", run_at=first_run),
            JobSpec(
                "t",
                {"v": 2},
                job_key="p",
                job_key_mode="preserve_run_at",
                run_at=first_run + timedelta(hours=3),
            ),
        ]
    )
    assert preserved[0].id == preserved[1].id
    stored = manager.get_job(preserved[1].id)
    assert stored is not None and stored.payload == {"v": 2}
    assert abs(stored.run_at - first_run) < timedelta(milliseconds=1)
    assert row_counts(engine)["queuekit_jobs"] == 3


@pytest.mark.parametrize(
    "modes",
    [
        ("unsafe_dedupe", "replace"),
        ("preserve_run_at", "replace"),
        ("replace", "unsafe_dedupe"),
        ("preserve_run_at", "unsafe_dedupe"),
    ],
)
def test_add_jobs_same_key_in_one_batch_against_an_existing_job(
    manager: JobManager, engine: sa.Engine, modes: tuple[str, str]
) -> None:
    existing = manager.add_job("t", {"v": 0}, job_key="k")
    first, second = manager.add_jobs(
        [
            JobSpec("t", {"v": 1}, job_key="k", job_key_mode=modes[0]),
            JobSpec("t", {"v": 2}, job_key="k", job_key_mode=modes[1]),
        ]
    )
    [live] = _live_jobs_with_key(engine, "k")
    assert second.id == live
    stored = manager.get_job(live)
    assert stored is not None
    expected_payload = {"v": 2} if modes[1] == "replace" else second.payload
    assert stored.payload == expected_payload
    if modes[0] == "unsafe_dedupe":
        assert first.id == existing.id and first.payload == {"v": 0}
    if modes[0] == "preserve_run_at":
        assert first.id == existing.id and first.payload == {"v": 1}
        assert first.revision == existing.revision + 1
    if modes == ("replace", "unsafe_dedupe"):
        assert first.id == second.id != existing.id and second.payload == {"v": 1}
    assert row_counts(engine)["queuekit_jobs"] == 1


# -- concurrent enqueues of one key -----------------------------------------------------


@pytest.mark.parametrize("mode", ["replace", "unsafe_dedupe", "preserve_run_at"])
def test_concurrent_same_key_enqueues_never_raise_and_leave_one_job(
    manager: JobManager, engine: sa.Engine, mode: str
) -> None:
    threads_count, rounds = 6, 8
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def enqueue(thread: int) -> None:
        try:
            barrier.wait()
            for round_number in range(rounds):
                manager.add_job(
                    "t", {"thread": thread, "round": round_number}, job_key="hot", job_key_mode=mode
                )
                manager.add_jobs(
                    [
                        JobSpec("t", {"batch": thread}, job_key="hot", job_key_mode=mode),
                        JobSpec("t", {}, job_key=f"own-{thread}-{round_number}"),
                    ]
                )
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=enqueue, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(_live_jobs_with_key(engine, "hot")) == 1
    assert row_counts(engine)["queuekit_jobs"] == 1 + threads_count * rounds


def test_register_task_takes_effect_for_its_manager_and_uncached_ones(
    manager: JobManager, engine: sa.Engine
) -> None:
    other = JobManager(engine, schema_cache_ttl=0)
    assert other.add_job("mail", {"to": 1}).payload == {"to": 1}
    task = manager.register_task("mail", schema={"properties": {"to": {"type": "string"}}})
    assert task.identifier == "mail"
    assert task.payload_schema == {"properties": {"to": {"type": "string"}}}
    assert task.created_at <= task.last_used
    for enqueuer in (manager, other):
        with pytest.raises(PayloadValidationError):
            enqueuer.add_job("mail", {"to": 1})
    removed = manager.register_task("mail", schema=None)
    assert removed.payload_schema is None
    assert other.add_job("mail", {"to": 2}).payload == {"to": 2}
    assert manager.add_job("mail", {"to": 3}).payload == {"to": 3}


def test_schema_registered_in_a_session_applies_inside_it(
    manager: JobManager, engine: sa.Engine
) -> None:
    with Session(engine) as session:
        manager.register_task("mail", schema={"required": ["to"]}, session=session)
        with pytest.raises(PayloadValidationError):
            manager.add_job("mail", {}, session=session)
        kept = manager.add_job("mail", {"to": "a"}, session=session)
        session.commit()
    assert manager.get_job(kept.id) is not None
    with pytest.raises(PayloadValidationError):
        manager.add_job("mail", {})
    assert row_counts(engine)["queuekit_jobs"] == 1


def test_reading_unknown_jobs(manager: JobManager) -> None:
    unknown = uuid.uuid4()
    assert manager.get_job(unknown) is None
    assert manager.job_history(unknown) == []
    assert manager.get_job(str(unknown)) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["replace", "unsafe_dedupe"])
def test_concurrent_same_key_enqueues_in_caller_transactions(
    manager: JobManager, engine: sa.Engine, mode: str
) -> None:
    """Each caller adds the hot key twice in its own transaction; one live job remains.

    On MySQL/MariaDB, InnoDB may still pick a rare deadlock victim among
    callers' transactions (queuekit retries only its own transactions): the
    caller sees TransientDatabaseError and retries, as InnoDB asks. Nothing
    else may escape, and on the other dialects nothing escapes at all. On
    SQLite the callers' transactions, deferred by default, would fail at once
    with "database is locked" when another caller wrote between their read
    and their write; callers that enqueue under such contention ask for
    BEGIN IMMEDIATE with the documented execution option, as done here.
    """
    threads_count, rounds = 4, 6
    unexpected: list[BaseException] = []
    transient: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def enqueue(thread: int) -> None:
        barrier.wait()
        for round_number in range(rounds):
            for _ in range(10):
                try:
                    with engine.connect() as conn:
                        conn.execution_options(queuekit_own_transaction=True)
                        conn.begin()
                        manager.add_job(
                            "t", {"t": thread}, job_key="hot", job_key_mode=mode, session=conn
                        )
                        manager.add_jobs(
                            [
                                JobSpec("t", {}, job_key="hot", job_key_mode=mode),
                                JobSpec("t", {}, job_key=f"own-{thread}-{round_number}"),
                            ],
                            session=conn,
                        )
                        conn.commit()
                    break
                except TransientDatabaseError as error:
                    transient.append(error)
                except BaseException as error:
                    unexpected.append(error)
                    return

    workers = [threading.Thread(target=enqueue, args=(i,)) for i in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert unexpected == []
    if engine.dialect.name != "mysql":
        assert transient == []
    assert len(_live_jobs_with_key(engine, "hot")) == 1
    assert row_counts(engine)["queuekit_jobs"] == 1 + threads_count * rounds


def test_bulk_enqueue_returns_the_stored_jobs(manager: JobManager) -> None:
    # Large keyless batches take the dialect's bulk-load path where it has one
    # (COPY on PostgreSQL); what comes back must be exactly what was stored.
    run_at = manager.now() + timedelta(hours=1)
    specs = [
        JobSpec(
            "bulk",
            {
                "n": n,
                "text": "é'; --",
                # COPY's own escapes (tab, newline, backslash), and on every other
                # job an "e+" that is text, not a number's exponent.
                "raw": 'a\tb\nc\\d "q" \\N \u2603' + (" e+1" if n % 2 else ""),
                "nested": {"list": [1, 2.5, None, True]},
            },
            queue_name="q" if n % 3 == 0 else None,
            run_at=run_at if n % 2 else None,
            priority=n % 5,
            max_attempts=1 + n % 4,
            flags=("a", "b") if n % 4 == 0 else (),
        )
        for n in range(500)
    ]
    added = manager.add_jobs(specs)
    assert [job.payload["n"] for job in added] == list(range(500))
    for job in added:
        assert manager.get_job(job.id) == job
    assert {job.created_at for job in added} == {added[0].created_at}
    assert all(job.run_at == (run_at if n % 2 else job.created_at) for n, job in enumerate(added))
