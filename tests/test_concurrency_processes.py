"""Many processes and threads hammering one queue: the promises still hold.

Per server dialect, 4 processes (``spawn``) x 4 threads, each thread with its
own connection, claim batches of 1 to 50 from 10,000 jobs — plain jobs, 50 named
queues and 3 rate-limited keys whose buckets are smaller than their job
count — and complete or fail each claimed job at random (``max_attempts=3``,
retries due at once, so some jobs exhaust). SQLite runs the same mix, halved
to 5,000 jobs, in 4 threads of one process: it has one writer at a time, so
every transaction queues on the same lock whatever the job count; more jobs
(or processes) would add time, not contention paths.

Checked afterwards from the database alone:
- every job was completed exactly once or is exhausted, except rate-limited
  jobs left waiting for tokens, which are untouched and claimable later;
- no attempt is left open and no job or queue is left locked;
- the attempts of one named queue never overlap in time (history rows'
  ``started_at``/``completed_at``), so no two of its jobs were ever locked at once;
- every rate-limit key was claimed exactly as often as its bucket had tokens
  (the window is an hour, so nothing refills during the run).
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import create_database_url

from queuekit import JobManager, JobSpec, RetryPolicy, TransientDatabaseError
from queuekit.dialects.base import OWN_TRANSACTION
from queuekit.models import job_history, jobs, rate_limits
from queuekit.repository import Outcome

PROCESSES = 4
THREADS = 4
PLAIN_JOBS = 6_100
QUEUES = 50
JOBS_PER_QUEUE = 60
RATE_LIMITS = {"api-a": 120, "api-b": 150, "api-c": 180}  # capacity per key
JOBS_PER_KEY = 300
MAX_ATTEMPTS = 3
FAIL_RATE = 0.25
#: Consecutive empty claims (with a short pause) after which a thread stops.
IDLE_ROUNDS = 8
IMMEDIATE_RETRY = RetryPolicy(base_delay=0, max_delay=0, jitter=0)


def work(url: str, process: int, threads: int, seed: int) -> dict[str, int]:
    """Run ``threads`` claim/finish loops, each on its own connection, until nothing is left."""
    engine = sa.create_engine(url, pool_size=threads, max_overflow=0)
    manager = JobManager(engine, retry=IMMEDIATE_RETRY)
    totals: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def in_transaction(conn: sa.Connection, operation: Any) -> Any:
        """Run one operation in its own transaction on this thread's connection."""
        for attempt in range(20):
            try:
                with conn.begin():
                    return operation()
            except TransientDatabaseError:
                with lock:
                    totals["transient_retries"] += 1
                time.sleep(random.uniform(0.001, 0.02) * (attempt + 1))
        raise RuntimeError("gave up after 20 transient errors")

    def loop(thread: int) -> None:
        rng = random.Random(seed * 1000 + process * 100 + thread)
        worker = f"p{process}-t{thread}"
        idle = 0
        with engine.connect() as conn:
            # These loops are workers: their transactions are set up as queuekit's own
            # (READ COMMITTED on MySQL, BEGIN IMMEDIATE on SQLite).
            conn.execution_options(**{OWN_TRANSACTION: True})
            if manager.dialect.isolation_level is not None:
                conn.execution_options(isolation_level=manager.dialect.isolation_level)
            while idle < IDLE_ROUNDS:
                size = rng.randint(1, 50)
                claimed = in_transaction(
                    conn,
                    lambda size=size: manager.get_jobs(worker, batch_size=size, session=conn),
                )
                if not claimed:
                    idle += 1
                    time.sleep(0.02)
                    continue
                idle = 0
                outcomes = [
                    Outcome(job, "failed", 1, error="random failure")
                    if rng.random() < FAIL_RATE
                    else Outcome(job, "completed", 1)
                    for job in claimed
                ]
                finished = in_transaction(
                    conn,
                    lambda outcomes=outcomes: manager.finish_jobs(worker, outcomes, session=conn),
                )
                assert len(finished) == len(claimed), "a claimed job was not ours to finish"
                with lock:
                    totals["claimed"] += len(claimed)
                    totals["batches"] += 1
                    totals["completed"] += sum(o.kind == "completed" for o in outcomes)

    def guarded(thread: int) -> None:
        try:
            loop(thread)
        except BaseException as error:  # re-raised in the main thread below
            with lock:
                failures.append(error)

    pool = [threading.Thread(target=guarded, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    engine.dispose()
    if failures:
        raise failures[0]
    return dict(totals)


def _child(url: str, process: int, seed: int, results: Any) -> None:
    """Process entry point: report the counts, or the error that stopped the process."""
    try:
        results.put(("ok", work(url, process, THREADS, seed)))
    except BaseException:
        results.put(("error", traceback.format_exc()))
        raise


def enqueue_workload(manager: JobManager, per_queue: int, plain: int) -> dict[str, Any]:
    """Register the buckets and enqueue the mix; returns what the checks need."""
    for key, capacity in RATE_LIMITS.items():
        manager.register_rate_limit(key, capacity, "1 hour")
    specs = [JobSpec("plain", {"n": n}, max_attempts=MAX_ATTEMPTS) for n in range(plain)]
    specs += [
        JobSpec("queued", {"n": n}, queue_name=f"queue-{n % QUEUES}", max_attempts=MAX_ATTEMPTS)
        for n in range(QUEUES * per_queue)
    ]
    specs += [
        JobSpec("limited", {"key": key, "n": n}, rate_limit_key=key, max_attempts=MAX_ATTEMPTS)
        for key in RATE_LIMITS
        for n in range(JOBS_PER_KEY)
    ]
    random.Random(7).shuffle(specs)
    added = manager.add_jobs(specs)
    return {"ids": {job.id: job for job in added}}


def check_outcome(manager: JobManager, enqueued: dict[str, Any], totals: Counter[str]) -> None:
    """Every promise of the module docstring, read back from the database."""
    with manager.engine.connect() as conn:
        live = {row.id: row for row in conn.execute(sa.select(jobs))}
        history = list(conn.execute(sa.select(job_history)))
        buckets = {row.key: row for row in conn.execute(sa.select(rate_limits))}
        queue_locks = conn.execute(
            sa.text("SELECT COUNT(*) FROM queuekit_job_queues WHERE locked_at IS NOT NULL")
        ).scalar_one()

    by_job: dict[Any, list[Any]] = defaultdict(list)
    for row in history:
        by_job[row.job_id].append(row)
    assert set(by_job) <= set(enqueued["ids"])
    assert all(row.status in ("completed", "failed") for row in history), "attempt left open"
    assert queue_locks == 0
    assert totals["claimed"] == len(history)

    waiting_for_tokens = 0
    for job_id, job in enqueued["ids"].items():
        rows = by_job.get(job_id, [])
        completed = [r for r in rows if r.status == "completed"]
        attempts = sorted(r.attempt_number for r in rows)
        assert attempts == list(range(1, len(rows) + 1)), (job_id, attempts)
        if job_id not in live:
            assert len(completed) == 1, (job_id, [r.status for r in rows])
            assert rows[-1] is not None and max(rows, key=lambda r: r.attempt_number) in completed
            continue
        row = live[job_id]
        assert row.locked_at is None and row.correlation_id is None
        assert completed == []
        if row.attempts >= row.max_attempts:
            assert row.attempts == MAX_ATTEMPTS == len(rows)
            assert all(r.status == "failed" for r in rows)
        else:
            # Only rate-limited jobs may be left, waiting for their bucket to refill.
            assert job.rate_limit_key is not None, (job_id, row.attempts)
            assert row.attempts == len(rows)
            waiting_for_tokens += 1
    assert waiting_for_tokens > 0  # the buckets really were the limit

    per_queue: dict[str, list[Any]] = defaultdict(list)
    for row in history:
        if row.queue_name is not None:
            per_queue[row.queue_name].append(row)
    assert len(per_queue) == QUEUES
    for name, rows in per_queue.items():
        rows.sort(key=lambda r: (r.started_at, r.completed_at))
        for before, after in itertools.pairwise(rows):
            assert after.started_at >= before.completed_at, (
                f"queue {name}: attempt {after.id} started at {after.started_at} while "
                f"{before.id} ran until {before.completed_at}"
            )

    claims = Counter(row.rate_limit_key for row in history if row.rate_limit_key is not None)
    for key, capacity in RATE_LIMITS.items():
        assert claims[key] == capacity, (key, claims[key], capacity)
        assert buckets[key].available_tokens == 0


def database(dialect: str, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database's URL."""
    from queuekit import migrations

    urls = create_database_url(dialect, tmp_path)
    url = next(urls)
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    yield url
    next(urls, None)


@pytest.mark.slow
def test_processes_and_threads_keep_every_promise(server_dialect: str, tmp_path: Path) -> None:
    for url in database(server_dialect, tmp_path):
        engine = sa.create_engine(url)
        manager = JobManager(engine)
        enqueued = enqueue_workload(manager, JOBS_PER_QUEUE, PLAIN_JOBS)
        assert len(enqueued["ids"]) == 10_000

        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        seed = random.randrange(1_000_000)
        children = [
            context.Process(target=_child, args=(url, p, seed, results)) for p in range(PROCESSES)
        ]
        for child in children:
            child.start()
        totals: Counter[str] = Counter()
        for _ in children:
            status, report = results.get(timeout=240)
            assert status == "ok", f"seed {seed}: {report}"
            totals.update(report)
        for child in children:
            child.join(timeout=60)
        assert [child.exitcode for child in children] == [0] * PROCESSES, f"seed {seed}"

        check_outcome(manager, enqueued, totals)
        engine.dispose()


@pytest.mark.slow
def test_threads_on_sqlite_keep_every_promise(tmp_path: Path) -> None:
    for url in database("sqlite", tmp_path):
        engine = sa.create_engine(url)
        manager = JobManager(engine)
        enqueued = enqueue_workload(manager, JOBS_PER_QUEUE // 2, PLAIN_JOBS // 2 - 450)
        assert len(enqueued["ids"]) == 5_000
        seed = random.randrange(1_000_000)
        totals = Counter(work(url, 0, THREADS, seed))
        check_outcome(manager, enqueued, totals)
        engine.dispose()


def test_claim_takes_no_token_from_a_bucket_another_claim_holds(
    server_dialect: str, tmp_path: Path
) -> None:
    """A later claim round that meets a bucket locked by another claim skips its jobs.

    Round one of the second claim sees two jobs of one named queue (the second
    falls out), so a second round looks further and finds the rate-limited job,
    whose bucket the first, still open claim holds.
    """
    for url in database(server_dialect, tmp_path):
        engine = sa.create_engine(url)
        manager = JobManager(engine)
        manager.register_rate_limit("k", 1, "1 hour")
        manager.add_job("limited", {"first": True}, rate_limit_key="k", priority=0)
        manager.add_jobs(
            [JobSpec("queued", {"n": n}, queue_name="q", priority=1) for n in range(2)]
        )
        manager.add_job("limited", {"second": True}, rate_limit_key="k", priority=2)
        with engine.connect() as holder:
            holder.execution_options(**{OWN_TRANSACTION: True})
            if manager.dialect.isolation_level is not None:
                holder.execution_options(isolation_level=manager.dialect.isolation_level)
            with holder.begin():
                (first,) = manager.get_jobs("holder", batch_size=1, session=holder)
                assert first.rate_limit_key == "k"
                # The bucket is row-locked until this transaction ends.
                other = manager.get_jobs("other", batch_size=2)
                assert [j.task_identifier for j in other] == ["queued"]
        limit = manager.get_rate_limit("k")
        assert limit is not None and limit.available_tokens == 0
        assert manager.get_jobs("late", batch_size=5) == []
        engine.dispose()
