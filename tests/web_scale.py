"""Loading a PostgreSQL database with millions of jobs and history rows, in SQL.

The rows go in with ``INSERT ... SELECT FROM generate_series`` (not the API,
which would take hours), with ids laid out like queuekit's time-ordered
UUIDv7s. The secondary indexes are dropped during the load and built again
afterwards, as a bulk load would do.
"""

from __future__ import annotations

import sqlalchemy as sa

from queuekit.models import job_history, jobs


def uuid7_sql(ms: str, i: str) -> str:
    """SQL for a version-7 UUID made of epoch milliseconds ``ms`` and a counter ``i``."""
    return (
        f"(lpad(to_hex(({ms})::bigint), 12, '0') || '7' || lpad(to_hex(mod(({i}), 4096)), 3, '0')"
        f" || '8' || lpad(to_hex({i}), 15, '0'))::uuid"
    )


def load(engine: sa.Engine, *, jobs_count: int, history_count: int, days: int = 30) -> None:
    """Fill the tables: ``jobs_count`` jobs and ``history_count`` attempts over ``days`` days."""
    span_ms = days * 86_400_000
    history_ms = (
        f"(extract(epoch from now()) * 1000 - {span_ms} + i * {span_ms}::float8 / {history_count})"
    )
    jobs_ms = (
        f"(extract(epoch from now()) * 1000 - {span_ms} + i * {span_ms}::float8 / {jobs_count})"
    )
    indexes = [*jobs.indexes, *job_history.indexes]
    with engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
        # Statement text: a bulk load from generate_series has no Core form worth the noise.
        conn.exec_driver_sql(
            """
            INSERT INTO queuekit_task_identifiers
              (identifier, schema_version, created_at, last_used)
            SELECT 'task.' || n, 0, now(), now() FROM generate_series(0, 19) n
            """
        )
        conn.exec_driver_sql(
            f"""
            INSERT INTO queuekit_job_history
              (id, job_id, correlation_id, task_identifier, payload, queue_name, priority, flags,
               worker_id, status, started_at, completed_at, queue_time_ms, execution_time_ms,
               attempt_number, error_message, error_stack, created_at, expires_at)
            SELECT {uuid7_sql(history_ms, "i")}, gen_random_uuid(), gen_random_uuid(),
                   'task.' || (mod(i, 20)), '{{"n": 1}}'::jsonb, NULL, 0, '[]'::jsonb,
                   'worker-' || (mod(i, 16)),
                   CASE WHEN mod(i, 20) = 0 THEN 'failed' ELSE 'completed' END,
                   to_timestamp({history_ms} / 1000.0),
                   to_timestamp({history_ms} / 1000.0 + 0.05),
                   (mod(i, 900)), 50, 1,
                   CASE WHEN mod(i, 20) = 0 THEN 'boom' END, NULL,
                   to_timestamp({history_ms} / 1000.0), now() + interval '30 days'
            FROM generate_series(1, {history_count}) i
            """
        )
        conn.exec_driver_sql(
            f"""
            INSERT INTO queuekit_jobs
              (id, task_identifier, payload, priority, queue_name, run_at, attempts, max_attempts,
               last_error, created_at, updated_at, flags, revision)
            SELECT {uuid7_sql(jobs_ms, "i")}, 'task.' || (mod(i, 20)), '{{"n": 1}}'::jsonb, 0,
                   CASE WHEN mod(i, 1000) = 0 THEN 'queue.' || (mod(i, 7)) END,
                   to_timestamp({jobs_ms} / 1000.0)
                     + CASE WHEN mod(i, 10) = 0 THEN interval '60 days' ELSE interval '0' END,
                   CASE WHEN mod(i, 50) = 0 THEN 25 ELSE 0 END, 25,
                   CASE WHEN mod(i, 50) = 0 THEN 'gave up' END,
                   to_timestamp({jobs_ms} / 1000.0), to_timestamp({jobs_ms} / 1000.0),
                   '[]'::jsonb, 0
            FROM generate_series(1, {jobs_count}) i
            """
        )
        for index in indexes:
            index.create(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE queuekit_jobs")
        conn.exec_driver_sql("VACUUM ANALYZE queuekit_job_history")
        conn.exec_driver_sql("ANALYZE queuekit_task_identifiers")
