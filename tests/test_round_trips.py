"""Speed by counting: bulk writes and batch claims/outcomes use few, constant statements.

Statements are counted with a ``before_cursor_execute`` listener on a real
database of each dialect (a multi-row INSERT batch counts as one), never timed.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import WORKER, counting, emptied

from queuekit import JobError, JobManager, JobSpec, PartialSuccess
from queuekit.repository import Outcome

BATCHES = (1, 10, 50)
#: The worker's claim arguments (``Worker`` checks them when it is made).
WORKER_CLAIM: dict[str, Any] = {
    "task_identifiers": None,
    "forbidden_flags": None,
    "history_retention": "1 day",
    "max_queued": None,
}
#: Statements of one claim at most, by the jobs it meets and the dialect (MariaDB
#: has no UPDATE ... RETURNING; SQLite opens its write transaction with a statement).
CLAIM_STATEMENTS = {
    "plain": {"postgresql": 1, "sqlite": 4, "mysql": 5},
    "queues_and_keys": {"postgresql": 5, "sqlite": 8, "mysql": 9},
}


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def test_add_jobs_is_a_bulk_write(manager: JobManager, engine: sa.Engine) -> None:
    manager.register_rate_limit("api", 10, "1 minute")
    specs = [
        JobSpec(
            f"task{i % 4}",
            {"i": i},
            queue_name=f"q{i % 50}" if i % 3 == 0 else None,
            flags=("a",) if i % 2 else (),
            rate_limit_key="api" if i % 7 == 0 else None,
        )
        for i in range(10_000)
    ]
    with counting(engine) as counter:
        added = manager.add_jobs(specs)
    assert len(added) == 10_000
    assert [job.payload["i"] for job in added[:3]] == [0, 1, 2]
    assert added[-1].payload == {"i": 9999}
    # About five statements per thousand jobs at most, never one per job.
    assert counter.count <= 50, counter.statements[:20]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM queuekit_jobs")).scalar() == 10_000


def test_add_jobs_with_keys_is_a_bulk_write(manager: JobManager, engine: sa.Engine) -> None:
    manager.add_jobs([JobSpec("t", {"old": i}, job_key=f"k{i}") for i in range(0, 3000, 2)])
    modes = ("replace", "preserve_run_at", "unsafe_dedupe")
    specs = [
        JobSpec("t", {"new": i}, job_key=f"k{i}", job_key_mode=modes[i % 3]) for i in range(3000)
    ]
    with counting(engine) as counter:
        added = manager.add_jobs(specs)
    assert len(added) == 3000
    assert counter.count <= 30, counter.statements[:20]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM queuekit_jobs")).scalar() == 3000


@pytest.mark.parametrize("shape", ["plain", "queues_and_keys"])
def test_claim_statement_count_does_not_depend_on_batch_size(
    manager: JobManager, engine: sa.Engine, shape: str
) -> None:
    manager.register_rate_limit("api", 1000, "1 hour")
    keyed = shape == "queues_and_keys"
    manager.add_jobs(
        [
            JobSpec(
                "t",
                {"i": i},
                queue_name=f"q{i}" if keyed else None,
                rate_limit_key="api" if keyed else None,
            )
            for i in range(sum(BATCHES) + 20)
        ]
    )
    counts = []
    for size in BATCHES:
        with counting(engine) as counter:
            claimed = manager.get_jobs(WORKER, batch_size=size)
        assert len(claimed) == size
        counts.append(counter.count)
    assert len(set(counts)) == 1, dict(zip(BATCHES, counts, strict=True))
    assert counts[0] <= CLAIM_STATEMENTS[shape][engine.dialect.name], counts


@pytest.mark.parametrize("outcome", ["complete", "fail", "mixed"])
def test_outcome_statement_count_does_not_depend_on_batch_size(
    manager: JobManager, engine: sa.Engine, outcome: str
) -> None:
    # A mixed flush needs three jobs to hold all three kinds of outcome.
    sizes = (3, 10, 50) if outcome == "mixed" else BATCHES
    manager.add_jobs([JobSpec("t", {"i": i}, queue_name=f"q{i}") for i in range(sum(sizes))])
    counts = []
    for size in sizes:
        claimed = manager.get_jobs(WORKER, batch_size=size)
        assert len(claimed) == size
        with counting(engine) as counter:
            if outcome == "complete":
                finished: list[object] = list(manager.complete_jobs(WORKER, claimed, 5))
            elif outcome == "fail":
                errors = [
                    JobError(job, f"e{n}" if n % 2 else None) for n, job in enumerate(claimed)
                ]
                finished = list(manager.fail_jobs(WORKER, errors, 5))
            else:
                kinds = ("completed", "failed", "partial_success")
                finished = list(
                    manager.finish_jobs(
                        WORKER,
                        [
                            Outcome(
                                job,
                                kinds[n % 3],
                                n,
                                error="boom" if n % 3 == 1 else None,
                                partial=PartialSuccess(["a"], [], None, {"n": n})
                                if n % 3 == 2
                                else None,
                            )
                            for n, job in enumerate(claimed)
                        ],
                    )
                )
        assert len(finished) == size
        counts.append(counter.count)
    assert len(set(counts)) == 1, dict(zip(sizes, counts, strict=True))


# Data-modifying CTEs and array parameters are PostgreSQL's: these run there only.
@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("queued", [False, True])
def test_a_flush_of_completions_is_one_statement_on_postgresql(
    manager: JobManager, engine: sa.Engine, queued: bool
) -> None:
    manager.add_jobs(
        [JobSpec("t", {"i": i}, queue_name=f"q{i}" if queued else None) for i in range(80)]
    )
    manager.complete_jobs(WORKER, manager.get_jobs(WORKER, batch_size=1), 5)  # touches "t"
    texts = set()
    for size in BATCHES:
        claimed = manager.get_jobs(WORKER, batch_size=size)
        with counting(engine) as counter:
            # Execution times that differ per job travel as parameters too.
            finished = manager.finish_jobs(
                WORKER, [Outcome(job, "completed", n) for n, job in enumerate(claimed)]
            )
        assert len(finished) == size
        assert counter.count == 1, counter.statements
        texts.update(counter.statements)
    # The ids and times are sent as arrays: one statement text, prepared once.
    assert len(texts) == 1, texts
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT COUNT(*) FROM queuekit_jobs")).scalar()
        open_rows = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_history WHERE status = 'started'")
        ).scalar()
        held = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_queues WHERE locked_at IS NOT NULL")
        ).scalar()
    assert (left, open_rows, held) == (80 - 1 - sum(BATCHES), 0, 0)


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_claim_statements_keep_one_text_on_postgresql(
    manager: JobManager, engine: sa.Engine
) -> None:
    manager.add_jobs([JobSpec("t", {"i": i}) for i in range(sum(BATCHES))])
    texts: list[set[str]] = []
    for size in BATCHES:
        with counting(engine) as counter:
            claimed = manager.get_jobs(WORKER, batch_size=size)
        assert len(claimed) == size
        texts.append(set(counter.statements))
    # The locked ids are one array parameter, whatever their number.
    assert texts[0] == texts[1] == texts[2], texts


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_a_claim_of_plain_jobs_is_one_statement_on_postgresql(
    manager: JobManager, engine: sa.Engine
) -> None:
    manager.add_jobs([JobSpec("t", {"i": i}, priority=i % 3) for i in range(sum(BATCHES) + 5)])
    claimed_ids = []
    for size in BATCHES:
        with counting(engine) as counter:
            claimed = manager.get_jobs(WORKER, batch_size=size)
        assert len(claimed) == size
        assert counter.count == 1, counter.statements
        # In claim order: priority, run_at, id.
        order = [(job.priority, job.run_at, job.id) for job in claimed]
        assert order == sorted(order)
        assert all(job.correlation_id is not None and job.attempts == 1 for job in claimed)
        claimed_ids += [job.id for job in claimed]
    assert len(set(claimed_ids)) == sum(BATCHES)
    with engine.connect() as conn:
        opened = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_history WHERE status = 'started'")
        ).scalar()
        locked = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_jobs WHERE locked_by = :w"), {"w": WORKER}
        ).scalar()
    assert (opened, locked) == (sum(BATCHES), sum(BATCHES))


def _autocommit_listener(engine: sa.Engine, seen: list[bool]) -> Any:
    """Record, per statement, whether its connection was in autocommit (no BEGIN, no COMMIT)."""

    def listener(conn: sa.Connection, *_: Any) -> None:
        if engine.dialect.name == "postgresql":  # psycopg's own flag
            seen.append(bool(conn.connection.dbapi_connection.autocommit))  # type: ignore[union-attr]
        else:
            seen.append(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")

    sa.event.listen(engine, "before_cursor_execute", listener)
    return listener


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_the_worker_claim_of_plain_jobs_is_one_round_trip_on_postgresql(
    manager: JobManager, engine: sa.Engine
) -> None:
    """One statement in autocommit: psycopg sends neither BEGIN nor COMMIT around it."""
    manager.add_jobs([JobSpec("t", {"i": i}, priority=i % 3) for i in range(sum(BATCHES))])
    autocommit: list[bool] = []
    listener = _autocommit_listener(engine, autocommit)
    claimed_ids = []
    try:
        for size in BATCHES:
            with counting(engine) as counter:
                claimed = manager.claim_for_worker(WORKER, **WORKER_CLAIM, batch_size=size)
            assert len(claimed) == size
            assert counter.count == 1, counter.statements
            order = [(job.priority, job.run_at, job.id) for job in claimed]
            assert order == sorted(order)
            claimed_ids += [job.id for job in claimed]
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert autocommit == [True] * len(BATCHES)
    assert len(set(claimed_ids)) == sum(BATCHES)
    with engine.connect() as conn:
        opened = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_history WHERE status = 'started'")
        ).scalar()
        locked = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_jobs WHERE locked_by = :w"), {"w": WORKER}
        ).scalar()
    assert (opened, locked) == (sum(BATCHES), sum(BATCHES))


def test_the_worker_claim_meeting_named_queues_and_keys_takes_what_it_may(
    manager: JobManager, engine: sa.Engine
) -> None:
    """Where a candidate needs the claim's rounds, the worker's claim is ``get_jobs``'s.

    On PostgreSQL the one-statement attempt writes nothing then, the next
    claim with the same filters goes to the transaction directly, and the one
    after a claim of plain jobs only tries the single statement again.
    """
    manager.register_rate_limit("api", 2, "1 hour")
    specs = []
    for i in range(12):
        queue = ("qa", "qb")[i % 2] if i % 3 == 0 else None
        key = "api" if i % 3 == 1 else None
        specs.append(JobSpec("t", {"i": i}, queue_name=queue, rate_limit_key=key))
    manager.add_jobs(specs)
    autocommit: list[bool] = []
    listener = _autocommit_listener(engine, autocommit)
    try:
        first = manager.claim_for_worker(WORKER, **WORKER_CLAIM, batch_size=20)
        on_pg = engine.dialect.name == "postgresql"
        assert autocommit[:1] == [on_pg] and not any(autocommit[1:])
        taken = sorted(job.payload["i"] for job in first)
        assert [i for i in taken if i % 3 == 2] == [i for i in range(12) if i % 3 == 2]
        assert sorted(job.queue_name for job in first if job.queue_name) == ["qa", "qb"]
        assert len([job for job in first if job.rate_limit_key]) == 2
        manager.add_jobs([JobSpec("t", {"i": 100 + i}) for i in range(3)])
        del autocommit[:]
        second = manager.claim_for_worker(WORKER, **WORKER_CLAIM, batch_size=20)
        assert sorted(job.payload["i"] for job in second) == [100, 101, 102]
        assert not any(autocommit)  # straight to the transaction
        manager.add_jobs([JobSpec("t", {"i": 200})])
        del autocommit[:]
        [third] = manager.claim_for_worker(WORKER, **WORKER_CLAIM, batch_size=20)
        assert third.payload["i"] == 200
        assert autocommit == [True] if on_pg else not any(autocommit), autocommit
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    with engine.connect() as conn:
        opened = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_history WHERE status = 'started'")
        ).scalar()
    assert opened == len(first) + len(second) + 1


def test_a_claim_meeting_named_queues_and_keys_takes_what_it_may(
    manager: JobManager, engine: sa.Engine
) -> None:
    # Plain jobs between jobs of two queues and jobs of a two-token key: the
    # claim takes every plain job, one job per queue and two of the key.
    manager.register_rate_limit("api", 2, "1 hour")
    specs = []
    for i in range(12):
        queue = ("qa", "qb")[i % 2] if i % 3 == 0 else None
        key = "api" if i % 3 == 1 else None
        specs.append(JobSpec("t", {"i": i}, queue_name=queue, rate_limit_key=key))
    manager.add_jobs(specs)
    with counting(engine) as counter:
        claimed = manager.get_jobs(WORKER, batch_size=20)
    taken = sorted(job.payload["i"] for job in claimed)
    plain = [i for i in range(12) if i % 3 == 2]
    assert [i for i in taken if i % 3 == 2] == plain
    assert sorted(job.queue_name for job in claimed if job.queue_name) == ["qa", "qb"]
    assert len([job for job in claimed if job.rate_limit_key]) == 2
    assert counter.count <= CLAIM_STATEMENTS["queues_and_keys"][engine.dialect.name], (
        counter.statements
    )
    order = [(job.priority, job.run_at, job.id) for job in claimed]
    assert order == sorted(order)


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
@pytest.mark.parametrize("queued", [False, True])
def test_a_flush_of_failures_is_one_statement_on_postgresql(
    manager: JobManager, engine: sa.Engine, queued: bool
) -> None:
    # Every third job is at its last attempt; the failures differ per job.
    manager.add_jobs(
        [
            JobSpec(
                "t",
                {"i": i},
                queue_name=f"q{i}" if queued else None,
                max_attempts=1 if i % 3 == 0 else 5,
            )
            for i in range(sum(BATCHES) + 1)
        ]
    )
    manager.complete_jobs(WORKER, manager.get_jobs(WORKER, batch_size=1), 5)  # touches "t"
    texts = set()
    exhausted = 0
    for size in BATCHES:
        claimed = manager.get_jobs(WORKER, batch_size=size)
        outcomes = [
            Outcome(job, "failed", n, error=ValueError(f"bad {n}"), exhaust=n == 1)
            for n, job in enumerate(claimed)
        ]
        # A duplicate and a claim that is not (or no longer) ours change nothing.
        stranger = dataclasses.replace(claimed[0], correlation_id=uuid.uuid4())
        with counting(engine) as counter:
            finished = manager.finish_jobs(
                WORKER, [*outcomes, outcomes[0], Outcome(stranger, "failed", 0, error="no")]
            )
        assert counter.count == 1, counter.statements
        texts.update(counter.statements)
        assert [f.outcome for f in finished] == outcomes
        for f in finished:
            assert f.job.locked_by is None and f.job.attempts == (
                f.job.max_attempts if f.exhausted else 1
            )
            assert f.job.last_error == f"bad {f.outcome.execution_time_ms}"
            assert f.exhausted == (f.job.max_attempts == 1 or f.outcome.exhaust)
        exhausted += sum(f.exhausted for f in finished)
    assert len(texts) == 1, texts
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT status, execution_time_ms, error_message, error_stack "
                "FROM queuekit_job_history WHERE status <> 'completed'"
            )
        ).all()
        held = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_queues WHERE locked_at IS NOT NULL")
        ).scalar()
        locked = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_jobs WHERE locked_at IS NOT NULL")
        ).scalar()
    assert len(rows) == sum(BATCHES)
    assert all(r.status == "failed" for r in rows)
    assert all(r.error_message == f"bad {r.execution_time_ms}" for r in rows)
    assert all("ValueError" in r.error_stack for r in rows)
    assert (held, locked) == (0, 0)
    assert exhausted == len(manager.list_jobs(status="exhausted", limit=1000)) > 0


def test_a_keyed_pair_of_takes_new_pairs_as_parameters(
    manager: JobManager, engine: sa.Engine
) -> None:
    """A statement built once with ``pair_of(..., key=...)`` matches the pairs it is given."""
    from queuekit.models import jobs

    manager.add_jobs([JobSpec("t", {"i": i}) for i in range(3)])
    claimed = manager.get_jobs(WORKER, batch_size=3)
    dialect = manager.dialect
    statement = sa.select(jobs.c.id).where(
        dialect.pair_of(jobs.c.id, jobs.c.correlation_id, [], key="pairs")
    )
    pairs = [(job.id, job.correlation_id) for job in claimed]
    with engine.connect() as conn:
        for chosen in (pairs[:1], pairs[1:], [(pairs[0][0], pairs[1][1])], pairs):
            found = conn.execute(statement, dialect.pair_values("pairs", chosen)).scalars()
            # A job's id with another claim's correlation id matches nothing.
            expected = {i for i, c in chosen if (i, c) in pairs}
            assert set(found) == expected


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_a_claim_of_named_queue_jobs_is_one_statement_on_postgresql(
    manager: JobManager, engine: sa.Engine
) -> None:
    # Two jobs in each of four queues, one queue held by another worker: the
    # candidates, their free queues and the lock of one job per queue in one statement.
    manager.add_jobs([JobSpec("t", {"i": i}, queue_name=f"q{i % 4}") for i in range(8)])
    [held] = manager.get_jobs("other", batch_size=1)
    with counting(engine) as counter:
        claimed = manager.get_jobs(WORKER, batch_size=3)
    assert counter.count == 1, counter.statements
    assert sorted(job.queue_name for job in claimed) == sorted(  # type: ignore[type-var]
        {f"q{i}" for i in range(4)} - {held.queue_name}
    )
    with engine.connect() as conn:
        holders = dict(
            conn.execute(sa.text("SELECT queue_name, locked_by FROM queuekit_job_queues")).all()
        )
    assert holders == {job.queue_name: WORKER for job in claimed} | {held.queue_name: "other"}


@pytest.mark.parametrize("module_engine", ["postgresql"], indirect=True)
def test_a_settle_that_hands_a_queue_on_is_two_statements_on_postgresql(
    manager: JobManager, engine: sa.Engine
) -> None:
    # The outcome (one statement), then the claim with its queue locks and
    # history rows (one); the commit is not a statement.
    manager.add_jobs([JobSpec("t", {"i": i}, queue_name=f"q{i % 2}") for i in range(6)])
    claimed = manager.get_jobs(WORKER, batch_size=2)
    for _ in range(2):
        with counting(engine) as counter:
            finished, handed = manager.finish_and_claim(
                WORKER,
                [Outcome(job, "completed", 1) for job in claimed],
                slots=len(claimed),
                task_identifiers=None,
                forbidden_flags=None,
                history_retention="1 day",
            )
        assert len(finished) == 2
        assert sorted(job.queue_name for job in handed) == ["q0", "q1"]  # type: ignore[type-var]
        assert counter.count == 2, counter.statements
        claimed = handed
