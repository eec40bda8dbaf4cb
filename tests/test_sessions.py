"""Every foundation operation with ``session=`` an ORM Session, a Core Connection, or None.

Given a session or connection, queuekit works inside the caller's transaction
and never commits it: the caller's commit keeps everything, its rollback
leaves no trace (no job, no schema, no bucket, no history row).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from conformance import SESSION_KINDS, WORKER, caller_transaction, emptied, row_counts
from sqlalchemy.orm import Session

from queuekit import Job, JobError, JobManager, JobSpec, PartialSuccess
from queuekit.models import job_history, jobs

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.fixture
def engine(module_engine: sa.Engine) -> sa.Engine:
    """This module's migrated database of the parametrized dialect, emptied for each test."""
    return emptied(module_engine)


def _every_operation(manager: JobManager, session: Session | sa.Connection | None) -> list[Job]:
    """Call each operation once in ``session``; return the completed, failed and partial jobs."""
    task = manager.register_task("send", schema=SCHEMA, session=session)
    assert task.payload_schema == SCHEMA
    limit = manager.register_rate_limit("api", 10, "1 hour", session=session)
    assert limit.available_tokens == 10
    single = manager.add_job("send", {"n": 1}, rate_limit_key="api", priority=1, session=session)
    several = manager.add_jobs(
        [JobSpec("send", {"n": 2}, priority=2), JobSpec("send", {"n": 3}, priority=3)],
        session=session,
    )
    assert manager.get_job(single.id, session=session) == single
    claimed = manager.get_jobs(WORKER, batch_size=3, session=session)
    assert [job.id for job in claimed] == [single.id, several[0].id, several[1].id]
    assert manager.get_rate_limit("api", session=session).available_tokens == 9  # type: ignore[union-attr]
    done = manager.complete_jobs(WORKER, [claimed[0]], 5, session=session)
    assert [job.id for job in done] == [single.id]
    failed = manager.fail_jobs(WORKER, [JobError(claimed[1], "boom")], 6, session=session)
    assert [job.last_error for job in failed] == ["boom"]
    partial = manager.report_partial_success(
        WORKER, claimed[2], PartialSuccess(["a"], ["b"], "b", {"k": 1}), 7, session=session
    )
    assert partial is not None and partial.status == "available"
    assert manager.refill_rate_limits(session=session) == 0
    history = manager.job_history(single.id, session=session)
    assert [(h.status, h.execution_time_ms) for h in history] == [("completed", 5)]
    return [single, failed[0], partial]


@pytest.mark.parametrize("kind", SESSION_KINDS)
def test_every_operation_in_a_committed_transaction(
    manager: JobManager, engine: sa.Engine, kind: str
) -> None:
    with caller_transaction(engine, kind, commit=True) as session:
        completed, failed, partial = _every_operation(manager, session)
    # After the caller's commit, everything is visible to anyone.
    assert manager.get_job(completed.id) is None
    assert [h.status for h in manager.job_history(completed.id)] == ["completed"]
    assert manager.get_job(failed.id) == failed and failed.last_error == "boom"
    assert manager.get_job(partial.id) == partial
    assert manager.job_history(partial.id)[0].partial_results == {"k": 1}
    assert manager.get_rate_limit("api") is not None
    counts = row_counts(engine)
    assert counts["queuekit_jobs"] == 2
    assert counts["queuekit_job_history"] == 3
    assert manager.get_task("send") is not None


@pytest.mark.parametrize("kind", ["session", "connection"])
def test_every_operation_in_a_rolled_back_transaction_leaves_nothing(
    manager: JobManager, engine: sa.Engine, kind: str
) -> None:
    before = row_counts(engine)
    with caller_transaction(engine, kind, commit=False) as session:
        _every_operation(manager, session)
    assert row_counts(engine) == before
    assert manager.get_rate_limit("api") is None
    assert manager.get_task("send") is None
    # The rolled-back schema is not enforced: a payload breaking it is accepted.
    assert manager.add_job("send", {"n": "not a number"}).payload == {"n": "not a number"}


@pytest.mark.parametrize("kind", ["session", "connection"])
def test_enqueue_exists_if_and_only_if_the_caller_commits(
    manager: JobManager, engine: sa.Engine, kind: str
) -> None:
    with caller_transaction(engine, kind, commit=False) as session:
        gone = manager.add_job("mail", {"to": "a"}, session=session)
        assert manager.get_job(gone.id, session=session) is not None
    assert manager.get_job(gone.id) is None
    with caller_transaction(engine, kind, commit=True) as session:
        kept = manager.add_job("mail", {"to": "b"}, session=session)
    assert manager.get_job(kept.id) is not None
    with engine.connect() as conn:
        ids = list(conn.execute(sa.select(jobs.c.id)).scalars())
    assert ids == [kept.id]


def test_session_business_rows_and_job_share_one_transaction(
    manager: JobManager, engine: sa.Engine
) -> None:
    """A host row and a job written in one Session commit or vanish together."""
    host = sa.Table("host_orders", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    host.create(engine)
    try:
        _business_rows_and_job(manager, engine, host)
    finally:
        host.drop(engine)


def _business_rows_and_job(manager: JobManager, engine: sa.Engine, host: sa.Table) -> None:
    with Session(engine) as session:
        session.execute(host.insert().values(id=1))
        job = manager.add_job("ship", {"order": 1}, session=session)
        session.rollback()
    with Session(engine) as session:
        session.execute(host.insert().values(id=2))
        kept = manager.add_job("ship", {"order": 2}, session=session)
        session.commit()
    with engine.connect() as conn:
        assert list(conn.execute(sa.select(host.c.id)).scalars()) == [2]
    assert manager.get_job(job.id) is None
    assert manager.get_job(kept.id) is not None


@pytest.mark.parametrize("kind", ["session", "connection"])
def test_claim_rolled_back_by_the_caller_leaves_the_job_available(
    manager: JobManager, engine: sa.Engine, kind: str
) -> None:
    job = manager.add_job("mail", {})
    with caller_transaction(engine, kind, commit=False) as session:
        assert [j.id for j in manager.get_jobs(WORKER, session=session)] == [job.id]
    again = manager.get_job(job.id)
    assert again is not None and again.status == "available" and again.attempts == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(job_history)).scalar() == 0
    assert [j.id for j in manager.get_jobs(WORKER)] == [job.id]
