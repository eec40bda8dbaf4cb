"""Per-dialect set-up that queuekit applies to the transactions it opens itself."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
import sqlalchemy as sa

from queuekit import JobManager
from queuekit.models import job_queues


@pytest.mark.parametrize("dialect", ["mariadb"])
def test_own_transactions_on_mysql_run_read_committed(dialect: str, manager: JobManager) -> None:
    # Claims rely on READ COMMITTED there: REPEATABLE READ keeps locks on every
    # row scanned. The level is set for queuekit's own transactions only.
    def sees_other_commits(conn: sa.Connection) -> bool:
        count = sa.select(sa.func.count()).select_from(job_queues)
        before = conn.execute(count).scalar_one()
        with manager.engine.begin() as other:
            other.execute(
                job_queues.insert().values(
                    queue_name=uuid.uuid4().hex, created_at=sa.func.now(), updated_at=sa.func.now()
                )
            )
        return bool(conn.execute(count).scalar_one() != before)

    assert manager.transactions.run(None, sees_other_commits)  # READ COMMITTED
    with manager.engine.begin() as conn:  # the application's transactions keep their level
        assert not sees_other_commits(conn)  # REPEATABLE READ, the server default


def _locked_out(engine: sa.Engine) -> bool:
    """Whether a fresh connection, not waiting at all, fails to take SQLite's write lock."""
    with engine.connect() as probe:
        driver = probe.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA busy_timeout = 0")
        try:
            driver.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error)
            return True
        driver.execute("ROLLBACK")
        return False


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_own_transactions_on_sqlite_take_the_write_lock_at_once(
    dialect: str, manager: JobManager
) -> None:
    # queuekit's own transactions begin IMMEDIATE: the write lock is held
    # before their first statement, so writers queue on the busy timeout.
    with manager.transactions.begin():
        assert _locked_out(manager.engine)
    assert not _locked_out(manager.engine)


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_application_transactions_on_sqlite_stay_deferred(
    dialect: str, manager: JobManager
) -> None:
    engine = manager.engine
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE app_orders (id INTEGER PRIMARY KEY)")
    with engine.connect() as writer, engine.connect() as reader:
        # The reader must not wait at all: a deferred transaction under WAL.
        driver = reader.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA busy_timeout = 0")
        writer.exec_driver_sql("INSERT INTO app_orders (id) VALUES (1)")  # holds the write lock
        with reader.begin():
            count = reader.exec_driver_sql("SELECT count(*) FROM app_orders").scalar()
        assert count == 0
        writer.commit()
    # The application's transactions are still real transactions (rolled back here).
    with engine.connect() as conn:
        conn.exec_driver_sql("INSERT INTO app_orders (id) VALUES (2)")
        conn.rollback()
        assert conn.exec_driver_sql("SELECT count(*) FROM app_orders").scalar() == 1


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_sqlite_synchronous_is_left_to_the_application(dialect: str, empty_url: str) -> None:
    from queuekit import migrations

    engine = sa.create_engine(empty_url)
    try:
        with engine.connect() as conn:
            default = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        engine.dispose()
        migrations.upgrade(engine)
        JobManager(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == default
    finally:
        engine.dispose()
