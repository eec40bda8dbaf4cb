"""``reset_locked_jobs`` and ``gc_job_history`` over 1,000,000 rows (PostgreSQL).

Both work in bounded batches (``MAINTENANCE_BATCH`` rows per transaction),
so a backlog never becomes one giant transaction. The raw baselines do the
same work as one statement per table in one transaction, which is the
fastest the database can do it and what a batched design gives up:

- reset: 1M jobs whose locks expired, each with its ``started`` history row.
  queuekit unlocks them and closes every attempt as ``failed``/``lock
  expired``; the baseline is ``UPDATE queuekit_jobs`` plus ``UPDATE
  queuekit_job_history``.
- GC: 1M expired history rows; the baseline is one ``DELETE``.

Figures are rows per second; the ratio is queuekit's rate over the
baseline's. The rows are generated in SQL and vacuumed before each side's
run, and rebuilt identically between the two. PostgreSQL only (the reference
dialect); SQLite and MariaDB run the same code paths in the tests.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from benchmarks.common import Measurement, timed
from queuekit import JobManager

ORDER = 50
DIALECTS = ("postgresql",)
ROWS = int(os.environ.get("QUEUEKIT_BENCH_MAINTENANCE_ROWS", "1000000"))

JOBS = """
INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, run_at, attempts,
    max_attempts, created_at, updated_at, flags, revision)
SELECT gen_random_uuid(), 'task-' || (g % 20), jsonb_build_object('n', g), 0,
    now() - interval '6 hours', 1, 3, now(), now(), '[]', 1
FROM generate_series(1, CAST(:rows AS integer)) AS g
"""
LOCK_ALL = """
UPDATE queuekit_jobs SET locked_at = now() - interval '5 hours', locked_by = 'dead-worker',
    correlation_id = gen_random_uuid()
"""
OPEN_ATTEMPTS = """
INSERT INTO queuekit_job_history (id, job_id, correlation_id, task_identifier, payload,
    priority, flags, worker_id, status, started_at, attempt_number, created_at, expires_at)
SELECT correlation_id, id, correlation_id, task_identifier, payload, 0, '[]', locked_by,
    'started', locked_at, 1, locked_at, locked_at + interval '30 days'
FROM queuekit_jobs
"""
EXPIRED_HISTORY = """
INSERT INTO queuekit_job_history (id, job_id, correlation_id, task_identifier, payload,
    priority, flags, worker_id, status, started_at, completed_at, attempt_number,
    created_at, expires_at)
SELECT gen_random_uuid(), id, gen_random_uuid(), task_identifier, payload, 0, '[]', 'w',
    'completed', now() - interval '40 days', now() - interval '40 days', 1,
    now() - interval '40 days', now() - interval '10 days'
FROM queuekit_jobs
"""
RAW_RESET = (
    """
    UPDATE queuekit_jobs SET locked_at = NULL, locked_by = NULL, correlation_id = NULL,
        revision = revision + 1, updated_at = statement_timestamp()
    WHERE locked_at <= statement_timestamp() - interval '1 hour'
    """,
    """
    UPDATE queuekit_job_history SET status = 'failed', completed_at = statement_timestamp(),
        error_message = 'lock expired'
    WHERE status = 'started'
    """,
)
RAW_GC = "DELETE FROM queuekit_job_history WHERE expires_at < statement_timestamp()"


def execute(engine: sa.Engine, *statements: str) -> None:
    """Run statements in one transaction."""
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), {"rows": ROWS})


def vacuum(engine: sa.Engine) -> None:
    """Reclaim dead rows and refresh statistics, so each side starts from the same state."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE queuekit_jobs"))
        conn.execute(sa.text("VACUUM ANALYZE queuekit_job_history"))


def expired_locks(engine: sa.Engine) -> None:
    """Every job locked five hours ago by a dead worker, with its open attempt."""
    execute(engine, "DELETE FROM queuekit_job_history", LOCK_ALL, OPEN_ATTEMPTS)
    vacuum(engine)


def expired_history(engine: sa.Engine) -> None:
    """One expired history row per job and nothing else in the history."""
    execute(engine, "DELETE FROM queuekit_job_history", EXPIRED_HISTORY)
    vacuum(engine)


def raw(engine: sa.Engine, statements: tuple[str, ...]) -> int:
    """Run the baseline statements in one transaction; returns the rows of the first."""
    with engine.begin() as conn:
        counts = [conn.execute(sa.text(s)).rowcount for s in statements]
    return counts[0]


def run(dialect: str, url: str) -> list[Measurement]:
    """Reset 1M expired locks and collect 1M expired history rows, both ways."""
    engine = sa.create_engine(url)
    manager = JobManager(engine)
    try:
        execute(engine, JOBS)

        expired_locks(engine)
        reset_rows = 0

        def reset() -> None:
            nonlocal reset_rows
            reset_rows = manager.reset_locked_jobs(lock_timeout="1 hour")

        reset_seconds = timed(reset)
        assert reset_rows == ROWS, reset_rows
        expired_locks(engine)
        raw_reset_rows = 0

        def raw_reset() -> None:
            nonlocal raw_reset_rows
            raw_reset_rows = raw(engine, RAW_RESET)

        raw_reset_seconds = timed(raw_reset)
        assert raw_reset_rows == ROWS, raw_reset_rows

        expired_history(engine)
        gc_rows = 0

        def gc() -> None:
            nonlocal gc_rows
            gc_rows = manager.gc_job_history()

        gc_seconds = timed(gc)
        assert gc_rows == ROWS, gc_rows
        expired_history(engine)
        raw_gc_rows = 0

        def raw_gc() -> None:
            nonlocal raw_gc_rows
            raw_gc_rows = raw(engine, (RAW_GC,))

        raw_gc_seconds = timed(raw_gc)
        assert raw_gc_rows == ROWS, raw_gc_rows
    finally:
        engine.dispose()
    rows = f"{ROWS // 1000:,}k"
    return [
        Measurement(
            f"reset_locked_jobs, {rows} expired locks",
            ROWS / reset_seconds,
            "rows/s",
            "UPDATE jobs + history",
            ROWS / raw_reset_seconds,
        ),
        Measurement(
            f"gc_job_history, {rows} expired rows",
            ROWS / gc_seconds,
            "rows/s",
            "one DELETE",
            ROWS / raw_gc_seconds,
        ),
    ]
