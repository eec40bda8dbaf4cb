"""In-process caches learn only from committed data.

A manager remembers registered rate-limit keys, compiled payload schemas and
which task identifiers it recently touched. What it read or wrote inside a
transaction that then rolls back must not stay in those caches. Every test
runs on SQLite, PostgreSQL and MariaDB.
"""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from queuekit import JobManager, PayloadValidationError, UnknownRateLimitError


def test_rate_limit_key_from_a_rolled_back_transaction_is_unknown(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    with Session(manager.engine) as session:
        manager.register_rate_limit("api", 5, "1 minute", session=session)
        manager.add_job("call", {}, rate_limit_key="api", session=session)
        session.rollback()
    with pytest.raises(UnknownRateLimitError, match="register it first"):
        manager.add_job("call", {}, rate_limit_key="api")
    assert manager.list_jobs() == []


def test_rate_limit_key_from_a_rolled_back_savepoint_is_unknown(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    with Session(manager.engine) as session:
        with session.begin_nested() as savepoint:
            manager.register_rate_limit("api", 5, "1 minute", session=session)
            manager.add_job("call", {}, rate_limit_key="api", session=session)
            savepoint.rollback()
        session.commit()
    with pytest.raises(UnknownRateLimitError):
        manager.add_job("call", {}, rate_limit_key="api")


def test_rate_limit_key_from_a_committed_transaction_is_known(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    with Session(manager.engine) as session:
        manager.register_rate_limit("api", 5, "1 minute", session=session)
        manager.add_job("call", {}, rate_limit_key="api", session=session)
        session.commit()
    assert manager.add_job("call", {}, rate_limit_key="api").rate_limit_key == "api"


def test_schema_read_in_a_rolled_back_transaction_is_not_kept(
    clean_manager: JobManager,
) -> None:
    """Another manager saw an uncommitted schema; the same version number later means another."""
    registrar = clean_manager
    enqueuer = JobManager(registrar.engine)
    with Session(registrar.engine) as session:
        registrar.register_task("mail", schema={"required": ["old"]}, session=session)
        enqueuer.add_job("mail", {"old": 1}, session=session)
        session.rollback()
    registrar.register_task("mail", schema={"required": ["new"]})  # version 1 again
    assert enqueuer.add_job("mail", {"new": 1}).payload == {"new": 1}


def test_task_touch_from_a_rolled_back_transaction_is_forgotten(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    with Session(manager.engine) as session:
        manager.add_job("report", {}, session=session)
        session.rollback()
    manager.add_job("report", {})
    task = manager.get_task("report")
    assert task is not None and task.identifier == "report"


def test_queue_from_a_rolled_back_transaction_is_made_again(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    with Session(manager.engine) as session:
        manager.add_job("report", {}, queue_name="reports", session=session)
        session.rollback()
    manager.add_job("report", {}, queue_name="reports")
    assert [queue.queue_name for queue in manager.list_queues()] == ["reports"]
    assert len(manager.get_jobs("worker-a", batch_size=5)) == 1


def test_schema_changed_later_in_the_same_transaction_applies_at_once(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    manager.register_task("mail", schema={"required": ["old"]})
    with Session(manager.engine) as session:
        manager.add_job("mail", {"old": 1}, session=session)
        manager.register_task("mail", schema={"required": ["new"]}, session=session)
        assert manager.add_job("mail", {"new": 1}, session=session).payload == {"new": 1}
        with pytest.raises(PayloadValidationError):
            manager.add_job("mail", {"old": 1}, session=session)
        session.commit()
    assert manager.add_job("mail", {"new": 2}).payload == {"new": 2}
    with pytest.raises(PayloadValidationError):
        manager.add_job("mail", {"old": 2})
