"""The claim's candidate query is served by an index, not a scan of the whole jobs table.

PostgreSQL only (its planner is the one queuekit is tuned for): 50,000
available jobs plus locked and exhausted ones are loaded with one
INSERT ... SELECT, the table is analysed, and EXPLAIN runs on the statement
exactly as ``Repository.claim_candidates_statement`` builds it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conformance import fresh_database
from conftest import require_server

from queuekit import JobManager
from queuekit.repository import Repository

AVAILABLE = 50_000

# Test data only: generate_series fills the table far faster than any API could.
LOAD_JOBS = """
INSERT INTO queuekit_jobs (
    id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts,
    created_at, updated_at, flags, locked_at, locked_by, revision, rate_limit_key
)
SELECT
    gen_random_uuid(),
    'task' || (n % 20),
    jsonb_build_object('n', n),
    n % 10,
    CASE WHEN n % 4 = 0 THEN 'queue' || (n % 200) END,
    statement_timestamp() - (n % 3600) * interval '1 second',
    CASE WHEN n > :available + 5000 THEN 1 WHEN n > :available THEN 3 ELSE 0 END,
    3,
    statement_timestamp(),
    statement_timestamp(),
    CASE WHEN n % 5 = 0 THEN '["slow"]'::jsonb ELSE '[]'::jsonb END,
    CASE WHEN n > :available + 5000 THEN statement_timestamp() END,
    CASE WHEN n > :available + 5000 THEN 'worker-' || (n % 8) END,
    0,
    CASE WHEN n % 7 = 0 THEN 'api' END
FROM generate_series(1, :available + 7000) AS n
"""
LOAD_QUEUES = """
INSERT INTO queuekit_job_queues (queue_name, created_at, updated_at)
SELECT DISTINCT queue_name, statement_timestamp(), statement_timestamp()
FROM queuekit_jobs WHERE queue_name IS NOT NULL
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobManager]:
    """A PostgreSQL database holding 50,000 available jobs (and 7,000 others), analysed."""
    require_server("postgresql")
    with fresh_database("postgresql", Path(tmp_path_factory.mktemp("explain"))) as engine:
        manager = JobManager(engine)
        manager.register_rate_limit("api", 100, "1 minute")
        with engine.begin() as conn:
            conn.execute(sa.text(LOAD_JOBS), {"available": AVAILABLE})
            conn.execute(sa.text(LOAD_QUEUES))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
        yield manager


def _plan(manager: JobManager, statement: Any) -> str:
    """EXPLAIN of ``statement`` as SQLAlchemy sends it (same SQL text, same bound values)."""

    def explain(*args: Any) -> tuple[str, Any]:
        return f"EXPLAIN {args[2]}", args[3]

    with manager.engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", explain, retval=True)
        rows = manager.repository.run(conn, statement).all()
        return "\n".join(row[0] for row in rows)


def test_loaded_data_is_what_the_plan_is_about(loaded: JobManager) -> None:
    stats = loaded.stats()
    assert stats.by_status == {"available": AVAILABLE, "exhausted": 5000, "locked": 2000}


@pytest.mark.parametrize(
    ("tasks", "flags", "limit"),
    [
        (None, None, 1),
        (None, None, 50),
        (["task3", "task4"], None, 10),
        (None, ["slow", "gpu"], 10),
        (["task1"], ["slow"], 500),
    ],
)
def test_claim_candidates_use_an_index(
    loaded: JobManager, tasks: list[str] | None, flags: list[str] | None, limit: int
) -> None:
    repository: Repository = loaded.repository
    plan = _plan(loaded, repository.claim_candidates_statement(tasks, flags, limit))
    assert "queuekit_jobs" in plan
    assert "Seq Scan on queuekit_jobs" not in plan, plan
    assert "LockRows" in plan and "Limit" in plan, plan


def test_later_claim_rounds_use_an_index(loaded: JobManager) -> None:
    import uuid

    repository: Repository = loaded.repository
    further = repository._further_candidates(
        [uuid.uuid4() for _ in range(20)], {f"queue{i}" for i in range(15)}, {"api"}
    )
    plan = _plan(loaded, repository.claim_candidates_statement(None, None, 20, further))
    assert "Seq Scan on queuekit_jobs" not in plan, plan


def test_claims_work_on_the_loaded_table(loaded: JobManager) -> None:
    claimed = loaded.get_jobs("explain-worker", batch_size=20)
    assert len(claimed) == 20
    assert [job.priority for job in claimed] == [0] * 20
    assert len({job.queue_name for job in claimed if job.queue_name is not None}) == len(
        [job for job in claimed if job.queue_name is not None]
    )
    assert sum(1 for job in claimed if job.rate_limit_key == "api") <= 100
