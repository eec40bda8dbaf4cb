"""Per-dialect set-up that queuekit applies to the transactions it opens itself."""

from __future__ import annotations

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
