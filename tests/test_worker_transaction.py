"""``ctx.transaction()`` (SPEC §10): a task's writes and its job's completion commit together.

On every dialect, with thread and async tasks: a clean block completes the
job in its own transaction (history closed, named queue freed, the worker
records nothing more); a task raising inside rolls its writes back and fails
the attempt as usual; a lost lock rolls everything back and the task sees
``LockLostError``; a second block in one attempt and a ``PartialSuccess``
returned after a committed block are refused with clear errors. Crashes and
resets under many processes are in ``test_exactly_once_processes.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from queuekit import (
    Event,
    InvalidArgumentError,
    JobContext,
    JobManager,
    LockLostError,
    PartialSuccess,
    QueueKitError,
    Worker,
)

app_metadata = sa.MetaData()
receipts = sa.Table(
    "app_receipts",
    app_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("n", sa.Integer, nullable=False),
)
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+aiomysql"}


@pytest.fixture
def manager(clean_manager: JobManager) -> Iterator[JobManager]:
    """An empty queue, next to an empty application table."""
    engine = clean_manager.engine
    app_metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(receipts.delete())
    yield clean_manager


def drain(manager: JobManager, tasks: dict[str, Any], **options: Any) -> Worker:
    worker = Worker(manager, tasks, maintenance=False, poll_interval="0.05 seconds", **options)
    worker.drain()
    return worker


def rows(manager: JobManager) -> list[int]:
    with manager.engine.connect() as conn:
        return sorted(conn.execute(sa.select(receipts.c.n)).scalars())


def statuses(manager: JobManager, job_id: Any) -> list[str]:
    """The statuses of a job's attempts, first attempt first."""
    history = sorted(manager.job_history(job_id), key=lambda h: h.attempt_number)
    return [h.status for h in history]


def async_engine_for(manager: JobManager) -> Any:
    url = manager.engine.url
    driver = ASYNC_DRIVERS.get(url.get_backend_name())
    if driver is not None:
        url = url.set(drivername=driver)
    # NullPool: connections belong to the worker's event loop, never to the test's.
    return create_async_engine(url.render_as_string(hide_password=False), poolclass=NullPool)


def test_a_clean_block_completes_the_job_with_the_task_writes(manager: JobManager) -> None:
    job = manager.add_job("receipt", {"n": 1}, queue_name="orders")
    later = manager.add_job("receipt", {"n": 2}, queue_name="orders")

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        with ctx.transaction() as session:
            assert isinstance(session, Session)
            session.execute(receipts.insert().values(n=payload["n"]))
            # Inside the block the job is still locked: read through the block's session
            # (on SQLite a second transaction would wait for this one's write lock).
            current = manager.get_job(ctx.job.id, session=session)
            assert current is not None and current.status == "locked"
        assert ctx.transaction_state == "committed"

    events: list[Event] = []
    worker = Worker(manager, {"receipt": task}, maintenance=False, poll_interval="0.05 seconds")
    worker.on("*", events.append)
    stats = worker.drain()

    assert rows(manager) == [1, 2]
    assert (stats.claimed, stats.completed, stats.failed, stats.errors) == (2, 2, 0, 0)
    for added in (job, later):
        assert manager.get_job(added.id) is None
        assert statuses(manager, added.id) == ["completed"]
    (queue,) = manager.list_queues()
    assert queue.locked_at is None and queue.locked_by is None
    completed = [e for e in events if e.name == "job/completed"]
    assert sorted(e.data["job_id"] for e in completed) == sorted([job.id, later.id])
    assert not [e for e in events if e.name in ("job/lock-lost", "job/failed", "worker/error")]


def test_the_host_sessionmaker_and_its_events_are_used(manager: JobManager) -> None:
    manager.add_job("receipt", {"n": 7})
    factory = sessionmaker(bind=manager.engine, info={"app": "shop"})
    seen: list[str] = []
    event.listen(factory, "before_commit", lambda session: seen.append(session.info["app"]))

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        with ctx.transaction(session_factory=factory) as session:
            session.execute(receipts.insert().values(n=payload["n"]))

    drain(manager, {"receipt": task})
    assert seen == ["shop"]
    assert rows(manager) == [7]
    assert manager.list_jobs() == []


def test_raising_inside_the_block_rolls_back_and_fails_the_attempt(manager: JobManager) -> None:
    job = manager.add_job("receipt", {"n": 3}, max_attempts=2)

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        with ctx.transaction() as session:
            session.execute(receipts.insert().values(n=payload["n"]))
            raise RuntimeError("card declined")

    worker = drain(manager, {"receipt": task})
    assert rows(manager) == []
    assert worker.stats.failed == 1 and worker.stats.completed == 0
    current = manager.get_job(job.id)
    assert current is not None and current.attempts == 1 and current.status == "available"
    (record,) = manager.job_history(job.id)
    assert record.status == "failed" and record.error_message == "card declined"


def take_the_lock_away(manager: JobManager) -> None:
    """What maintenance or an operator does: reset the running job's lock."""
    assert manager.reset_locked_jobs(lock_timeout=0) == 1


def test_a_lost_lock_rolls_everything_back_and_the_job_runs_again(manager: JobManager) -> None:
    job = manager.add_job("receipt", {"n": 4})
    # SQLite has one writer: another transaction cannot reset the lock while the block
    # holds the write lock, so there the lock is taken before the block begins.
    single_writer = manager.engine.dialect.name == "sqlite"
    seen: list[BaseException] = []

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        try:
            if ctx.job.attempts == 1 and single_writer:
                take_the_lock_away(manager)
            with ctx.transaction() as session:
                session.execute(receipts.insert().values(n=payload["n"]))
                session.flush()
                if ctx.job.attempts == 1 and not single_writer:
                    take_the_lock_away(manager)
        except LockLostError as error:
            seen.append(error)
            raise

    events: list[Event] = []
    worker = Worker(manager, {"receipt": task}, maintenance=False, poll_interval="0.05 seconds")
    worker.on("*", events.append)
    worker.drain()
    (error,) = seen
    assert isinstance(error, QueueKitError) and str(job.id) in str(error)
    assert [e.name for e in events if e.name == "job/lock-lost"] == ["job/lock-lost"]

    # The reset made the job available again; the next drain runs it under a new claim.
    worker.drain()
    assert rows(manager) == [4]
    assert manager.list_jobs() == []
    assert statuses(manager, job.id) == ["failed", "completed"]
    first = min(manager.job_history(job.id), key=lambda h: h.attempt_number)
    assert first.error_message == "lock expired"


def test_an_attempt_the_worker_gave_up_cannot_commit(manager: JobManager) -> None:
    job = manager.add_job("receipt", {"n": 5}, max_attempts=1)
    seen: list[BaseException] = []

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        try:
            with ctx.transaction() as session:
                session.execute(receipts.insert().values(n=payload["n"]))
                ctx.cancelled.wait(5)  # the job_timeout fails the attempt meanwhile
        except LockLostError as error:
            seen.append(error)

    worker = drain(manager, {"receipt": task}, job_timeout="0.3 seconds")
    assert len(seen) == 1 and "gave this attempt up" in str(seen[0])
    assert rows(manager) == []
    assert worker.stats.timed_out == 1 and worker.stats.completed == 0
    assert statuses(manager, job.id) == ["failed"]


def test_a_second_block_in_one_attempt_is_refused(manager: JobManager) -> None:
    job = manager.add_job("receipt", {"n": 6})
    seen: list[BaseException] = []

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        with ctx.transaction() as session:
            session.execute(receipts.insert().values(n=payload["n"]))
        try:
            with ctx.transaction() as session:
                session.execute(receipts.insert().values(n=payload["n"]))
        except InvalidArgumentError as error:
            seen.append(error)

    worker = drain(manager, {"receipt": task})
    (error,) = seen
    assert "already used in this attempt" in str(error) and "(committed)" in str(error)
    assert rows(manager) == [6]
    assert worker.stats.completed == 1
    assert statuses(manager, job.id) == ["completed"]


def test_partial_success_after_a_committed_block_is_refused_and_logged(
    manager: JobManager, caplog: pytest.LogCaptureFixture
) -> None:
    job = manager.add_job("receipt", {"n": 8})

    def task(payload: dict[str, Any], ctx: JobContext) -> PartialSuccess:
        with ctx.transaction() as session:
            session.execute(receipts.insert().values(n=payload["n"]))
        return PartialSuccess(["a"], ["b"])

    with caplog.at_level(logging.ERROR, logger="queuekit.worker"):
        worker = drain(manager, {"receipt": task})
    assert rows(manager) == [8]
    assert (worker.stats.completed, worker.stats.partial_success) == (1, 0)
    assert statuses(manager, job.id) == ["completed"]
    refused = [r for r in caplog.records if "returned a PartialSuccess" in r.getMessage()]
    assert len(refused) == 1 and "stays completed" in refused[0].getMessage()


def test_bad_factories_are_refused_before_anything_is_written(manager: JobManager) -> None:
    manager.add_job("receipt", {"n": 9})
    errors: list[BaseException] = []
    elsewhere = sa.create_engine(
        "sqlite://"
        if manager.engine.dialect.name != "sqlite"
        else "postgresql+psycopg://nowhere/db"
    )
    factories: list[Any] = [42, lambda: "not a session", sessionmaker(bind=elsewhere)]

    def task(payload: dict[str, Any], ctx: JobContext) -> None:
        for factory in factories:
            try:
                with ctx.transaction(session_factory=factory) as session:  # type: ignore[arg-type]
                    session.execute(receipts.insert().values(n=payload["n"]))
            except InvalidArgumentError as error:
                errors.append(error)
            assert ctx.transaction_state == "unused"  # a refused block is not a use

    worker = drain(manager, {"receipt": task})
    assert len(errors) == 3
    assert "session_factory must be" in str(errors[0])
    assert "must return a sqlalchemy.orm.Session" in str(errors[1])
    assert "but the job lives in" in str(errors[2])
    assert rows(manager) == []
    assert worker.stats.completed == 1  # the task returned normally: completed by the worker


def test_async_tasks_use_async_with_and_an_async_sessionmaker(manager: JobManager) -> None:
    async_engine = async_engine_for(manager)
    factory = async_sessionmaker(async_engine)
    jobs = [manager.add_job("areceipt", {"n": n}, queue_name="q") for n in range(3)]
    refused: list[BaseException] = []

    async def areceipt(payload: dict[str, Any], ctx: JobContext) -> None:
        try:
            with ctx.transaction():  # a plain 'with' would block the loop
                pass
        except InvalidArgumentError as error:
            refused.append(error)
        try:
            async with ctx.transaction():  # no factory: the worker's engine is sync
                pass
        except InvalidArgumentError as error:
            refused.append(error)
        async with ctx.transaction(session_factory=factory) as session:
            assert isinstance(session, AsyncSession)
            await session.execute(receipts.insert().values(n=payload["n"]))
            await asyncio.sleep(0)

    seen: list[BaseException] = []

    single_writer = manager.engine.dialect.name == "sqlite"

    async def alost(payload: dict[str, Any], ctx: JobContext) -> None:
        try:
            if ctx.job.attempts == 1 and single_writer:
                await asyncio.to_thread(take_the_lock_away, manager)
            async with ctx.transaction(session_factory=factory) as session:
                await session.execute(receipts.insert().values(n=payload["n"]))
                if ctx.job.attempts == 1 and not single_writer:
                    await asyncio.to_thread(take_the_lock_away, manager)
        except BaseException as error:
            seen.append(error)
            raise

    try:
        worker = drain(manager, {"areceipt": areceipt, "alost": alost}, concurrency=2)
        lost = manager.add_job("alost", {"n": 10})
        worker.drain()
        assert len(seen) == 1, seen
        assert isinstance(seen[0], LockLostError), repr(seen[0])
        worker.drain()
    finally:
        asyncio.run(async_engine.dispose())
    assert rows(manager) == [0, 1, 2, 10]
    assert len(refused) == 2 * len(jobs)
    assert "async with" in str(refused[0]) and "session_factory" in str(refused[1])
    for job in jobs:
        assert statuses(manager, job.id) == ["completed"]
    assert statuses(manager, lost.id) == ["failed", "completed"]
    assert manager.list_jobs() == []
    assert worker.stats.completed == 4 and worker.stats.failed == 0
