"""``stats()`` and the claim on 10,000 and on 1,000,000 queued jobs (PostgreSQL).

The same table is measured twice: first holding 10,000 jobs, then after
990,000 more were added. A claim that reads only what it takes costs the same
at both sizes (ratio near 1). ``stats()`` must count every job; it reads
three indexes (jobs per task and queue, locked, exhausted) instead of the
table, so it grows with the job count but far more slowly than a ``GROUP BY``
over the table, which is the raw baseline at 1M.

Jobs: 20 task identifiers, a fifth of them in 50 named queues, 1% exhausted,
100 locked, payloads of ~120 bytes; generated in SQL and vacuumed before
measuring. A claim (``get_jobs(batch_size=10)``) runs in a transaction that
is rolled back, so every round sees the same table; the raw claim is the
bare ``SELECT ... FOR UPDATE SKIP LOCKED LIMIT 10`` in the same kind of
transaction. Each figure is the median of several rounds after a warm-up.
PostgreSQL only: it is the reference dialect, and the one whose planner the
indexes were designed for.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import sqlalchemy as sa

from benchmarks.common import Measurement, RawQueue
from queuekit import JobManager

ORDER = 40
DIALECTS = ("postgresql",)
SMALL = 10_000
LARGE = int(os.environ.get("QUEUEKIT_BENCH_LARGE", "1000000"))
ROUNDS = 15
CLAIM_BATCH = 10
NAIVE_STATS = """
SELECT task_identifier, queue_name,
       CASE WHEN locked_at IS NOT NULL THEN 'locked'
            WHEN attempts >= max_attempts THEN 'exhausted'
            ELSE 'available' END AS status,
       count(*)
FROM queuekit_jobs GROUP BY 1, 2, 3
"""


def add_jobs(engine: sa.Engine, first: int, last: int) -> None:
    """Insert jobs numbered ``first..last`` with the module's mix, then vacuum."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """
                INSERT INTO queuekit_jobs (id, task_identifier, payload, priority, queue_name,
                    run_at, attempts, max_attempts, created_at, updated_at, flags, revision)
                SELECT gen_random_uuid(), 'task-' || (g % 20),
                    jsonb_build_object('n', g, 'to', 'user' || g || '@example.com',
                                       'pad', repeat('x', 60)),
                    g % 3, CASE WHEN g % 5 = 0 THEN 'queue-' || (g % 50) END,
                    now() - make_interval(secs => g / 1000.0),
                    CASE WHEN g % 100 = 1 THEN 3 ELSE 0 END, 3, now(), now(), '[]', 0
                FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
                """
            ),
            {"first": first, "last": last},
        )
        conn.execute(
            sa.text(
                "INSERT INTO queuekit_job_queues (queue_name, created_at, updated_at) "
                "SELECT 'queue-' || g, now(), now() FROM generate_series(0, 49) AS g "
                "ON CONFLICT DO NOTHING"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE queuekit_jobs"))


def lock_some(manager: JobManager) -> None:
    """Claim 100 plain jobs for good (locked rows, a few held queues) as a live system has."""
    manager.get_jobs("bench-holder", batch_size=100)


def median_ms(work: Callable[[], object]) -> float:
    """Median milliseconds of ``work`` over :data:`ROUNDS` rounds, after three warm-ups."""
    for _ in range(3):
        work()
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(engine: sa.Engine, manager: JobManager, raw: RawQueue) -> dict[str, float]:
    """Milliseconds of stats(), a claim, the raw claim and the naive GROUP BY, now."""

    def claim() -> None:
        with engine.connect() as conn:
            transaction = conn.begin()
            claimed = manager.get_jobs("bench", batch_size=CLAIM_BATCH, session=conn)
            assert len(claimed) == CLAIM_BATCH
            transaction.rollback()

    def raw_claim() -> None:
        with raw.connection.cursor() as cursor:
            cursor.execute(raw.claim_sql, (CLAIM_BATCH,))
            assert len(cursor.fetchall()) == CLAIM_BATCH
        raw.connection.rollback()

    def naive_stats() -> None:
        with raw.connection.cursor() as cursor:
            cursor.execute(NAIVE_STATS)
            cursor.fetchall()
        raw.connection.rollback()

    return {
        "stats": median_ms(manager.stats),
        "claim": median_ms(claim),
        "raw_claim": median_ms(raw_claim),
        "naive_stats": median_ms(naive_stats),
    }


def run(dialect: str, url: str) -> list[Measurement]:
    """Measure at 10k jobs, grow the table to 1M, measure again."""
    engine = sa.create_engine(url)
    manager = JobManager(engine)
    raw = RawQueue(dialect, url)
    try:
        add_jobs(engine, 1, SMALL)
        lock_some(manager)
        small = measure(engine, manager, raw)
        add_jobs(engine, SMALL + 1, LARGE)
        large = measure(engine, manager, raw)
        counted = sum(manager.stats().by_status.values())
        assert counted == LARGE, counted
    finally:
        raw.close()
        engine.dispose()
    big, little = f"{LARGE // 1000:,}k", f"{SMALL // 1000}k"
    return [
        Measurement(
            f"claim {CLAIM_BATCH} at {big} jobs",
            large["claim"],
            "ms",
            f"same at {little}",
            small["claim"],
            lower_is_better=True,
            target=1.5,
        ),
        Measurement(
            f"raw claim {CLAIM_BATCH} at {big} jobs",
            large["raw_claim"],
            "ms",
            f"same at {little}",
            small["raw_claim"],
            lower_is_better=True,
        ),
        Measurement(
            f"stats() at {big} jobs",
            large["stats"],
            "ms",
            f"same at {little}",
            small["stats"],
            lower_is_better=True,
            target=1.5,
        ),
        Measurement(
            f"stats() at {big} jobs",
            large["stats"],
            "ms",
            "GROUP BY over the table",
            large["naive_stats"],
            lower_is_better=True,
            target=1.0,
        ),
        Measurement(
            f"claim {CLAIM_BATCH} at {big} jobs",
            large["claim"],
            "ms",
            "raw SKIP LOCKED claim",
            large["raw_claim"],
            lower_is_better=True,
        ),
    ]
