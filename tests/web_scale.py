"""Loading a PostgreSQL database with millions of jobs and history rows, in SQL.

The rows go in with ``INSERT ... SELECT FROM generate_series`` (not the API,
which would take hours), laid out like queuekit's own: job ids are
time-ordered UUIDv7s, history ids are the random claim ids a claim stamps.
Like any bulk load, it drops the two tables' indexes and unique constraints
first, inserts in slices on one connection per core (no index to maintain, no
commit to wait for: ``synchronous_commit`` is off for these sessions only),
then builds every index again from the models' own definitions, each with the
server's parallel index build, and vacuums so that index-only scans work. The
tables themselves are the migrated ones, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa
from sqlalchemy.schema import AddConstraint, DropConstraint

from queuekit.models import job_history, jobs

#: Rows per INSERT statement (small enough to spread over the connections evenly).
SLICE = 500_000
#: Memory one index build may sort in (per session; the server's own default is 64 MB).
MAINTENANCE_WORK_MEM = "1GB"
#: Task identifiers the jobs and attempts are spread over.
TASKS = 20


def uuid7_sql(ms: str, i: str) -> str:
    """SQL for a version-7 UUID made of epoch milliseconds ``ms`` and a counter ``i``."""
    return (
        f"(lpad(to_hex(({ms})::bigint), 12, '0') || '7' || lpad(to_hex(mod(({i}), 4096)), 3, '0')"
        f" || '8' || lpad(to_hex({i}), 15, '0'))::uuid"
    )


def history_sql(count: int, span_ms: int, first: int, last: int) -> str:
    """Attempts ``first``..``last`` of ``count`` spread evenly over the last ``span_ms``.

    One in 20 failed (all of task ``task.0``), the rest completed; the newest
    hundred are still running.
    """
    start = f"now() - interval '{span_ms} milliseconds'"
    step = f"interval '{span_ms / count:.6f} milliseconds'"
    done = f"i <= {count - 100}"
    # Statement text: a bulk load from generate_series has no Core form worth the noise.
    return f"""
        INSERT INTO queuekit_job_history
          (id, job_id, correlation_id, task_identifier, payload, queue_name, priority, flags,
           worker_id, status, started_at, completed_at, queue_time_ms, execution_time_ms,
           attempt_number, error_message, error_stack, created_at, expires_at)
        SELECT u, gen_random_uuid(), u, 'task.' || mod(i, {TASKS}), '{{"n": 1}}'::jsonb, NULL, 0,
               '[]'::jsonb, 'worker-' || mod(i, 16),
               CASE WHEN NOT {done} THEN 'started'
                    WHEN mod(i, 20) = 0 THEN 'failed' ELSE 'completed' END,
               t, CASE WHEN {done} THEN t + interval '50 milliseconds' END,
               mod(i, 900), CASE WHEN {done} THEN 50 END, 1,
               CASE WHEN mod(i, 20) = 0 AND {done} THEN 'boom' END, NULL,
               t, now() + interval '30 days'
        FROM (
          SELECT i, gen_random_uuid() AS u, {start} + i * {step} AS t
          FROM generate_series({first}, {last}) i
        ) AS s
    """


def jobs_sql(count: int, span_ms: int, first: int, last: int) -> str:
    """Jobs ``first``..``last`` of ``count``, enqueued evenly over the last ``span_ms``.

    One in 10 is scheduled 60 days ahead (never one of tasks 1-9 or 11-19), one
    in 50 is out of attempts, one in 500 is running, one in 1,000 is in a
    named queue; the rest wait.
    """
    ms = f"(extract(epoch from now()) * 1000 - {span_ms} + i * {span_ms}::float8 / {count})"
    running = "mod(i, 500) = 7"
    return f"""
        INSERT INTO queuekit_jobs
          (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts,
           last_error, created_at, updated_at, flags, revision, locked_at, locked_by)
        SELECT {uuid7_sql(ms, "i")}, 'task.' || mod(i, {TASKS}), '{{"n": 1}}'::jsonb, 0,
               CASE WHEN mod(i, 1000) = 0 THEN 'queue.' || mod(i, 7) END,
               to_timestamp({ms} / 1000.0)
                 + CASE WHEN mod(i, 10) = 0 THEN interval '60 days' ELSE interval '0' END,
               CASE WHEN mod(i, 50) = 0 THEN 25 WHEN {running} THEN 1 ELSE 0 END, 25,
               CASE WHEN mod(i, 50) = 0 THEN 'gave up' END,
               to_timestamp({ms} / 1000.0), to_timestamp({ms} / 1000.0),
               '[]'::jsonb, 0,
               CASE WHEN {running} THEN now() END,
               CASE WHEN {running} THEN 'worker-' || mod(i, 16) END
        FROM generate_series({first}, {last}) i
    """


def slices(count: int, make: Callable[[int, int, int, int], str], span_ms: int) -> list[str]:
    """The INSERT statements of ``count`` rows, :data:`SLICE` at a time."""
    return [
        make(count, span_ms, first, min(first + SLICE - 1, count))
        for first in range(1, count + 1, SLICE)
    ]


def run_all(engine: sa.Engine, statements: Iterable[sa.Executable | str], workers: int) -> None:
    """Run the statements on ``workers`` connections, each in its own transaction."""

    def run(statement: sa.Executable | str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            conn.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
            if isinstance(statement, str):
                conn.exec_driver_sql(statement)
            else:
                conn.execute(statement)

    with ThreadPoolExecutor(workers) as pool:
        for done in [pool.submit(run, statement) for statement in statements]:
            done.result()


def load(
    engine: sa.Engine,
    *,
    jobs_count: int,
    history_count: int,
    days: int = 30,
    workers: int = 2,
    report: Callable[[str], None] = lambda _: None,
) -> None:
    """Fill the tables: ``jobs_count`` jobs and ``history_count`` attempts over ``days`` days."""
    span_ms = days * 86_400_000
    tables = (jobs, job_history)
    indexes = [index for table in tables for index in sorted(table.indexes, key=str)]
    # Primary keys and unique constraints are indexes too: dropped and added
    # again from the same definitions (foreign keys stay; the loaded rows have
    # no rate-limit key to check).
    constraints = [
        constraint
        for table in tables
        for constraint in table.constraints
        if isinstance(constraint, sa.PrimaryKeyConstraint | sa.UniqueConstraint)
    ]
    started = time.perf_counter()
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
        for constraint in constraints:
            conn.execute(DropConstraint(constraint))
        conn.exec_driver_sql(
            f"""
            INSERT INTO queuekit_task_identifiers
              (identifier, schema_version, created_at, last_used)
            SELECT 'task.' || n, 0, now(), now() FROM generate_series(0, {TASKS - 1}) n
            """
        )
    run_all(
        engine,
        [
            *slices(history_count, history_sql, span_ms),
            *slices(jobs_count, jobs_sql, span_ms),
        ],
        workers,
    )
    report(f"rows inserted: {time.perf_counter() - started:.0f} s")
    # One build at a time, each parallel inside the server; the vacuums (which
    # set the visibility map index-only scans need) run side by side.
    run_all(engine, [AddConstraint(constraint) for constraint in constraints], 1)
    run_all(engine, [sa.schema.CreateIndex(index) for index in indexes], 1)
    report(f"indexes built: {time.perf_counter() - started:.0f} s")
    with ThreadPoolExecutor(workers) as pool:
        for done in [
            pool.submit(vacuum, engine, name)
            for name in (*(table.name for table in tables), "queuekit_task_identifiers")
        ]:
            done.result()
    report(f"vacuumed: {time.perf_counter() - started:.0f} s")


def vacuum(engine: sa.Engine, table: str) -> None:
    """VACUUM ANALYZE one table (outside a transaction, as VACUUM must run)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"SET maintenance_work_mem = '{MAINTENANCE_WORK_MEM}'")
        conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
