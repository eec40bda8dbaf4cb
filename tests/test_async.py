"""AsyncJobManager on SQLite (aiosqlite), PostgreSQL (psycopg async) and MariaDB (aiomysql).

Each test drives its coroutine with ``asyncio.run`` and creates (and
disposes) its async engine inside that event loop, since pooled async
connections belong to the loop that opened them.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import sys
import tomllib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from queuekit import (
    AsyncJobManager,
    InvalidArgumentError,
    JobError,
    JobManager,
    JobSpec,
    PartialSuccess,
    PayloadValidationError,
    SchemaNotMigratedError,
)
from queuekit.models import jobs
from queuekit.support import Support

T = TypeVar("T")
WORKER = "async-worker"
ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "mysql": "mysql+aiomysql"}


def async_url(engine: sa.Engine) -> str:
    """The async-driver URL of the database ``engine`` points at."""
    url = engine.url
    driver = ASYNC_DRIVERS.get(url.get_backend_name())
    if driver is not None:
        url = url.set(drivername=driver)
    # postgresql+psycopg serves both: create_async_engine picks psycopg's async mode.
    return url.render_as_string(hide_password=False)


def run(url: str, scenario: Callable[[AsyncEngine, AsyncJobManager], Awaitable[T]]) -> T:
    """Run ``scenario`` with a fresh async engine and manager in a new event loop."""

    async def main() -> T:
        engine = create_async_engine(url)
        try:
            return await scenario(engine, AsyncJobManager(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


@pytest.fixture
def manager(clean_manager: JobManager) -> JobManager:
    """A sync manager on an empty, migrated database of the parametrized dialect."""
    return clean_manager


@pytest.fixture
def url(manager: JobManager) -> str:
    """The async URL of that database."""
    return async_url(manager.engine)


def job_count(manager: JobManager) -> int:
    with manager.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())


# -- the caller's transaction ---------------------------------------------------------


def test_enqueue_in_async_session_that_rolls_back_leaves_no_job(
    manager: JobManager, url: str
) -> None:
    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> None:
        async with AsyncSession(engine) as session:
            job = await queue.add_job("mail", {"to": "a"}, queue_name="q", session=session)
            assert await queue.get_job(job.id, session=session) == job
            await session.rollback()
        assert await queue.get_job(job.id) is None

    run(url, scenario)
    assert job_count(manager) == 0
    assert manager.list_queues() == []


def test_enqueue_in_async_session_that_commits_keeps_the_job(manager: JobManager, url: str) -> None:
    # SQLite has one writer: a second transaction would wait for this one.
    concurrent_reader = manager.dialect.name != "sqlite"

    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> Any:
        async with AsyncSession(engine) as session, session.begin():
            job = await queue.add_job("mail", {"to": "a"}, session=session)
            if concurrent_reader:
                # Not visible outside the caller's transaction until it commits.
                assert await queue.list_jobs() == []
        return job

    job = run(url, scenario)
    assert manager.get_job(job.id) == job


def test_async_connection_transaction(manager: JobManager, url: str) -> None:
    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> Any:
        async with engine.connect() as conn:
            await queue.add_jobs([JobSpec("a", {}), JobSpec("b", {})], session=conn)
            await conn.rollback()
            kept = await queue.add_job("c", {}, session=conn)
            await conn.commit()
        return kept

    kept = run(url, scenario)
    assert [j.id for j in manager.list_jobs()] == [kept.id]


def test_argument_errors_leave_the_async_transaction_usable(manager: JobManager, url: str) -> None:
    manager.register_task("mail", schema={"type": "object", "required": ["to"]})

    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> Any:
        async with AsyncSession(engine) as session:
            first = await queue.add_job("mail", {"to": "x"}, session=session)
            with pytest.raises(PayloadValidationError, match="Invalid payload"):
                await queue.add_job("mail", {}, session=session)
            with pytest.raises(InvalidArgumentError):
                await queue.add_job("mail", {"to": "x"}, priority="high", session=session)  # type: ignore[arg-type]
            second = await queue.add_job("mail", {"to": "y"}, session=session)
            await session.commit()
        return first, second

    first, second = run(url, scenario)
    assert sorted(j.id for j in manager.list_jobs()) == sorted([first.id, second.id])


def test_session_must_be_async(manager: JobManager, url: str) -> None:
    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> None:
        with (
            Session(manager.engine) as sync_session,
            pytest.raises(InvalidArgumentError, match="AsyncSession"),
        ):
            await queue.add_job("mail", {}, session=sync_session)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="AsyncSession"):
            await queue.stats(session="nope")  # type: ignore[arg-type]

    run(url, scenario)
    assert job_count(manager) == 0


def test_async_manager_needs_an_async_engine(manager: JobManager) -> None:
    with pytest.raises(InvalidArgumentError, match="AsyncEngine"):
        AsyncJobManager(manager.engine)  # type: ignore[arg-type]


# -- every operation -----------------------------------------------------------------------


def test_whole_lifecycle_through_the_async_manager(manager: JobManager, url: str) -> None:
    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        await queue.register_task("mail", schema={"type": "object"})
        assert (await queue.get_task("mail")) is not None
        await queue.register_rate_limit("api", 5, "1 hour")
        assert (await queue.get_rate_limit("api")).available_tokens == 5  # type: ignore[union-attr]
        done = await queue.add_job("mail", {"n": 1}, queue_name="q", rate_limit_key="api")
        failing = await queue.add_job("sms", {"n": 2}, max_attempts=1)
        partial = await queue.add_job("push", {"n": 3}, max_attempts=2)
        released = await queue.add_job("late", {"n": 4})
        claimed = {j.task_identifier: j for j in await queue.get_jobs(WORKER, batch_size=10)}
        assert set(claimed) == {"mail", "sms", "push", "late"}
        assert len(await queue.heartbeat(WORKER, list(claimed.values()))) == 4
        assert [j.id for j in await queue.complete_jobs(WORKER, [claimed["mail"]], 5)] == [done.id]
        (exhausted,) = await queue.fail_jobs(WORKER, [JobError(claimed["sms"], "boom")], 5)
        assert exhausted.id == failing.id and exhausted.status == "exhausted"
        retried = await queue.report_partial_success(
            WORKER, claimed["push"], PartialSuccess(["a"], ["b"]), 5
        )
        assert retried is not None and retried.id == partial.id
        (back,) = await queue.release_jobs(WORKER, [claimed["late"]])
        assert back.id == released.id and back.attempts == 0
        assert [r.status for r in await queue.job_history(failing.id)] == ["failed"]
        assert len(await queue.query_history(limit=10)) == 3
        seen["stats"] = await queue.stats()
        seen["queues"] = await queue.list_queues()
        assert (await queue.now()).tzinfo is not None
        (replayed,) = await queue.replay_failed_jobs()
        assert replayed.job_key == str(failing.id)
        assert (await queue.reschedule_jobs([replayed.id], priority=3))[0].priority == 3
        assert len(await queue.permanently_fail_jobs([replayed.id], "stop")) == 1
        await queue.get_jobs(WORKER, task_identifiers=["late"])
        assert len(await queue.force_unlock_jobs([WORKER])) == 1
        assert await queue.force_unlock_queues([]) == []
        assert await queue.reset_locked_jobs(lock_timeout=0) == 0
        assert await queue.gc_job_queues() == 1
        assert await queue.gc_job_history() == 0
        assert await queue.gc_task_identifiers() == 0
        assert await queue.refill_rate_limits() == 0
        seen["listed"] = await queue.list_jobs(limit=10)
        return seen

    seen = run(url, scenario)
    assert seen["stats"].by_status == {"available": 2, "locked": 0, "exhausted": 1}
    assert [q.queue_name for q in seen["queues"]] == ["q"]
    assert sorted(j.id for j in seen["listed"]) == sorted(j.id for j in manager.list_jobs())


def test_concurrent_coroutines_claim_each_job_once(manager: JobManager, url: str) -> None:
    manager.add_jobs([JobSpec("mail", {"n": n}) for n in range(60)])
    manager.add_jobs([JobSpec("mail", {"n": n}, queue_name=f"q{n % 3}") for n in range(6)])

    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> list[Any]:
        async def claimer(index: int) -> list[Any]:
            mine: list[Any] = []
            while batch := await queue.get_jobs(f"worker-{index}", batch_size=4):
                mine += batch
                await queue.complete_jobs(f"worker-{index}", batch, 1)
            return mine

        results = await asyncio.gather(*(claimer(i) for i in range(6)))
        return [job for batch in results for job in batch]

    claimed = run(url, scenario)
    assert len(claimed) == 66
    assert len({j.id for j in claimed}) == 66
    assert job_count(manager) == 0


def test_unmigrated_database_is_refused(empty_engine: sa.Engine) -> None:
    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> None:
        with pytest.raises(SchemaNotMigratedError, match="queuekit db upgrade"):
            await queue.check_database()
        with pytest.raises(SchemaNotMigratedError):
            await queue.add_job("mail", {})

    run(async_url(empty_engine), scenario)
    assert sa.inspect(empty_engine).get_table_names() == []


# -- one set of statements ----------------------------------------------------------------


@contextmanager
def recorded(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL text of every statement ``engine`` sends while the block runs."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_async_and_sync_send_the_same_statements(manager: JobManager, url: str) -> None:
    def sync_round() -> None:
        manager.add_jobs([JobSpec("mail", {"n": 1}, queue_name="q"), JobSpec("sms", {})])
        claimed = manager.get_jobs(WORKER, batch_size=5)
        manager.complete_jobs(WORKER, claimed, 1)
        manager.stats()
        manager.reset_locked_jobs()

    with recorded(manager.engine) as sync_statements:
        sync_round()
    manager.gc_job_queues()

    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> list[str]:
        await queue.check_database()
        with recorded(engine.sync_engine) as statements:
            await queue.add_jobs([JobSpec("mail", {"n": 1}, queue_name="q"), JobSpec("sms", {})])
            claimed = await queue.get_jobs(WORKER, batch_size=5)
            await queue.complete_jobs(WORKER, claimed, 1)
            await queue.stats()
            await queue.reset_locked_jobs()
        return statements

    async_statements = run(url, scenario)

    def queries(statements: list[str]) -> list[str]:
        # aiomysql binds positionally (%s) where PyMySQL binds by name (%(x)s).
        return [re.sub(r"%\(\w+\)s", "%s", s) for s in statements if "queuekit_" in s]

    assert queries(async_statements) == queries(sync_statements)
    assert queries(sync_statements)


# -- SQLite preparation -----------------------------------------------------------------------


def test_async_engine_gets_the_sqlite_preparation(manager: JobManager, url: str) -> None:
    if manager.dialect.name != "sqlite":
        # The preparation is SQLite's; on the servers the check is that the
        # isolation level queuekit chose applies to the async driver as well.
        async def isolation(engine: AsyncEngine, queue: AsyncJobManager) -> Any:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: c.get_isolation_level())

        assert run(url, isolation)
        return

    async def scenario(engine: AsyncEngine, queue: AsyncJobManager) -> tuple[Any, ...]:
        await queue.check_database()
        with recorded(engine.sync_engine) as statements:
            await queue.add_job("mail", {})
            async with AsyncSession(engine) as session:
                await queue.add_job("mail", {}, session=session)
                await session.commit()
        async with engine.connect() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
            keys = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
        return mode, timeout, keys, statements

    mode, timeout, keys, statements = run(url, scenario)
    assert mode == "wal"
    assert timeout == 30_000
    assert keys == 1
    # queuekit's own transaction took the write lock up front, as on the sync
    # engine; the application's session began an ordinary deferred transaction.
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert statements.count("BEGIN") == 1


def test_every_public_method_has_an_async_twin() -> None:
    # The worker registry serves the (synchronous) Worker only.
    internal = {
        "check_database",
        "prepare_enqueue",
        "register_worker",
        "touch_worker",
        "remove_worker",
        "remove_dead_workers",
        *(name for name in vars(Support) if not name.startswith("_")),
    }
    public = {
        name
        for name, member in inspect.getmembers(JobManager, inspect.isfunction)
        if not name.startswith("_") and name not in internal
    }
    missing = []
    for name in sorted(public):
        twin = getattr(AsyncJobManager, name, None)
        if twin is None or not inspect.iscoroutinefunction(twin):
            missing.append(name)
            continue
        sync_params = list(inspect.signature(getattr(JobManager, name)).parameters)
        assert list(inspect.signature(twin).parameters) == sync_params, name
    assert missing == []


def test_cancel_pause_and_workers_through_the_async_manager(manager: JobManager, url: str) -> None:
    waiting = manager.add_job("mail", {})
    manager.add_job("report", {})
    manager.register_worker("async-listed", concurrency=2, heartbeat_interval=30)

    async def scenario(engine: AsyncEngine, async_manager: AsyncJobManager) -> None:
        async with AsyncSession(engine) as session, session.begin():
            cancelled = await async_manager.cancel_jobs([waiting.id], session=session)
            assert [job.id for job in cancelled] == [waiting.id]
        [paused] = await async_manager.pause_tasks(["report"])
        assert paused.paused_at is not None
        assert await async_manager.get_jobs(WORKER) == []
        [resumed] = await async_manager.resume_tasks(["report"])
        assert resumed.paused_at is None
        workers = await async_manager.list_workers()
        assert [w.worker_id for w in workers] == ["async-listed"]

    run(url, scenario)
    assert manager.get_job(waiting.id) is None
    assert [r.status for r in manager.job_history(waiting.id)] == ["cancelled"]
    assert [job.task_identifier for job in manager.get_jobs(WORKER)] == ["report"]


# -- installation ----------------------------------------------------------------------


def test_without_greenlet_the_async_manager_says_what_to_install(
    manager: JobManager, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLAlchemy 2.1 imports its asyncio module without greenlet and fails
    # only at the first query; queuekit refuses up front, naming the extras.
    engine = create_async_engine(url)
    monkeypatch.setitem(sys.modules, "greenlet", None)  # as if it were not installed
    with pytest.raises(ImportError, match=re.escape("install queuekit[postgresql-async]")):
        AsyncJobManager(engine)


def test_the_async_extras_install_greenlet() -> None:
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    async_extras = [name for name in extras if name.endswith("-async")]
    assert sorted(async_extras) == ["mysql-async", "postgresql-async", "sqlite-async"]
    for name in async_extras:
        assert any(requirement.startswith("greenlet") for requirement in extras[name]), name
