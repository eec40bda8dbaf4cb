"""SQLite: queuekit's own transaction never waits for a write lock its own thread holds.

SQLite has one writer at a time. When the application's Session in this
thread has written (and so holds the write lock) and then calls a queuekit
method without ``session=``, queuekit's own transaction could only wait for
that lock until the busy timeout, five times over, and fail. It refuses at
once instead, saying to pass ``session=``.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from queuekit import AsyncJobManager, InvalidArgumentError, JobManager, migrations
from queuekit.models import jobs


@pytest.fixture
def sqlite_manager(tmp_path: Path) -> JobManager:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'own-lock.db'}")
    migrations.upgrade(engine)
    return JobManager(engine)


def count_jobs(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one())


@pytest.mark.timeout(60)
def test_own_transaction_under_the_threads_write_lock_fails_at_once(
    sqlite_manager: JobManager,
) -> None:
    manager = sqlite_manager
    with Session(manager.engine) as session:
        manager.add_job("mail", {"n": 1}, session=session)  # this transaction now writes
        with pytest.raises(InvalidArgumentError, match="pass session="):
            manager.add_job("mail", {"n": 2})
        with pytest.raises(InvalidArgumentError, match="pass session="):
            manager.get_jobs("worker-a")
        # The caller's transaction is untouched and still usable.
        manager.add_job("mail", {"n": 3}, session=session)
        session.commit()
    assert count_jobs(manager.engine) == 2
    assert manager.add_job("mail", {"n": 4}).task_identifier == "mail"


@pytest.mark.timeout(60)
def test_a_connection_that_wrote_counts_as_well(sqlite_manager: JobManager) -> None:
    manager = sqlite_manager
    with manager.engine.connect() as conn:
        conn.execute(
            sa.insert(jobs).values(
                id=uuid.uuid4(),
                task_identifier="x",
                payload={},
                run_at=sa.func.now(),
                created_at=sa.func.now(),
                updated_at=sa.func.now(),
                flags=[],
            )
        )
        with pytest.raises(InvalidArgumentError, match="pass session="):
            manager.add_job("mail", {})
        conn.rollback()
    assert manager.add_job("mail", {}).task_identifier == "mail"


@pytest.mark.timeout(60)
def test_a_writer_in_another_thread_is_waited_for(sqlite_manager: JobManager) -> None:
    manager = sqlite_manager
    writing = threading.Event()
    done = threading.Event()

    def other_thread() -> None:
        with Session(manager.engine) as session:
            manager.add_job("mail", {"from": "other"}, session=session)
            writing.set()
            done.wait(0.5)
            session.commit()

    thread = threading.Thread(target=other_thread)
    thread.start()
    assert writing.wait(10)
    manager.add_job("mail", {"from": "here"})
    done.set()
    thread.join(10)
    assert count_jobs(manager.engine) == 2


@pytest.mark.timeout(60)
def test_async_session_holding_the_lock_fails_at_once(sqlite_manager: JobManager) -> None:
    """The event loop would freeze on the lock: the async manager refuses at once too."""
    url = sqlite_manager.engine.url.set(drivername="sqlite+aiosqlite")

    async def scenario() -> None:
        engine = create_async_engine(url)
        manager = AsyncJobManager(engine)
        try:
            async with AsyncSession(engine) as session:
                await manager.add_job("mail", {"n": 1}, session=session)
                with pytest.raises(InvalidArgumentError, match="pass session="):
                    await manager.add_job("mail", {"n": 2})
                await session.commit()
            assert (await manager.add_job("mail", {"n": 3})).task_identifier == "mail"
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert count_jobs(sqlite_manager.engine) == 2
