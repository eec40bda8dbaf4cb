"""Serial named queues under load: worker processes draining a mixed backlog, against the ideal.

Four worker processes (not threads, so that no two share a Python lock)
of four task slots each, default settings, drain 2,000 jobs of 50 ms each.
The backlog has no named queue, a fifth of the jobs spread over ten named
queues, or every job in one of the ten. The baseline is the ideal drain
time: the larger of all the work spread over the 16 slots and one queue's
work run in series, which is what a named queue must take at least.

The clock starts when the backlog is committed (the workers are already up
and idle) and stops when the last job's outcome is recorded. Afterwards the
history must show every job completed exactly once and no two attempts of
one named queue overlapping, else the run fails.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from benchmarks.common import Measurement
from queuekit import JobManager, JobSpec
from queuekit.models import job_history, jobs
from queuekit.worker import JobContext, Worker

ORDER = 40
PROCESSES = 4
SLOTS = 4
QUEUES = 10
TASK = "bench.sleep"
#: Jobs per run and task length; the polling dialects get a smaller backlog.
JOBS = {"postgresql": 2000}
POLLING_JOBS = int(os.environ.get("QUEUEKIT_BENCH_SERIAL_JOBS", "800"))
TASK_SECONDS = 0.05
#: Share of the backlog in named queues, per line.
MIXES = (0.0, 0.2, 1.0)
WAIT_LIMIT = 300.0


def sleep_task(payload: dict[str, Any], ctx: JobContext) -> None:
    """The task: 50 ms of waiting, as an I/O-bound job would."""
    time.sleep(TASK_SECONDS)


def serve(url: str, number: int, ready: Any, stop: Any) -> None:
    """One worker process: run with default settings until told to stop."""
    engine = sa.create_engine(url)
    worker = Worker(
        JobManager(engine),
        {TASK: sleep_task},
        concurrency=SLOTS,
        worker_id=f"bench-serial-{number}-{os.getpid()}",
        maintenance=False,
    )
    worker.start()
    ready.set()
    stop.wait()
    worker.stop()
    engine.dispose()


def backlog(count: int, share: float) -> list[JobSpec]:
    """``count`` jobs, every ``1/share``-th of them in one of the named queues, in turn."""
    specs = []
    queued = 0
    for n in range(count):
        in_queue = share > 0 and (queued + 1) <= share * (n + 1)
        queue = f"serial-{queued % QUEUES}" if in_queue else None
        queued += in_queue
        specs.append(JobSpec(TASK, {"n": n}, queue_name=queue))
    return specs


def ideal_seconds(specs: list[JobSpec]) -> float:
    """All the work over every slot, or one queue's work in series, whichever is longer."""
    per_queue: dict[str, int] = {}
    for spec in specs:
        if spec.queue_name is not None:
            per_queue[spec.queue_name] = per_queue.get(spec.queue_name, 0) + 1
    spread = len(specs) * TASK_SECONDS / (PROCESSES * SLOTS)
    return max(spread, max(per_queue.values(), default=0) * TASK_SECONDS)


def wait_until(check: Callable[[], bool], limit: float, what: str) -> None:
    """Poll ``check`` every few milliseconds until it holds, or fail after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {limit:g} s")
        time.sleep(0.01)


def verify(engine: sa.Engine, specs: list[JobSpec]) -> None:
    """Every job completed once, nothing left behind, no two attempts of a queue overlapping."""
    with engine.connect() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
        rows = conn.execute(
            sa.select(
                job_history.c.job_id,
                job_history.c.queue_name,
                job_history.c.status,
                job_history.c.started_at,
                job_history.c.completed_at,
            )
        ).all()
    if left:
        raise RuntimeError(f"{left} job(s) left behind")
    completed = [r for r in rows if r.status == "completed"]
    if len(rows) != len(specs) or len({r.job_id for r in completed}) != len(specs):
        raise RuntimeError(f"{len(rows)} attempts, {len(completed)} completed of {len(specs)} jobs")
    by_queue: dict[str, list[Any]] = {}
    for r in rows:
        if r.queue_name is not None:
            by_queue.setdefault(r.queue_name, []).append(r)
    for name, attempts in by_queue.items():
        attempts.sort(key=lambda r: r.started_at)
        for before, after in itertools.pairwise(attempts):
            if after.started_at < before.completed_at:
                raise RuntimeError(f"two attempts of queue {name} overlapped")


def drain_seconds(url: str, specs: list[JobSpec]) -> float:
    """Seconds from committing ``specs`` to the last outcome, with the worker processes up."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    readies = [context.Event() for _ in range(PROCESSES)]
    processes = [
        context.Process(target=serve, args=(url, n, readies[n], stop), daemon=True)
        for n in range(PROCESSES)
    ]
    engine = sa.create_engine(url)
    try:
        for process in processes:
            process.start()
        for ready in readies:
            if not ready.wait(60):
                raise RuntimeError("a worker process did not start")
        time.sleep(0.2)  # let every worker settle into its idle wait
        manager = JobManager(engine)
        started = time.perf_counter()
        manager.add_jobs(specs)

        def finished() -> bool:
            with engine.connect() as conn:
                count = sa.select(sa.func.count()).select_from(jobs)
                return int(conn.execute(count).scalar_one()) == 0

        wait_until(finished, WAIT_LIMIT, "draining the backlog")
        seconds = time.perf_counter() - started
        stop.set()
        for process in processes:
            process.join(60)
        verify(engine, specs)
        with engine.begin() as conn:
            conn.execute(job_history.delete())
        return seconds
    finally:
        stop.set()
        for process in processes:
            if process.is_alive():
                process.kill()
        engine.dispose()


def run(dialect: str, url: str) -> list[Measurement]:
    """Each backlog mix once, its drain time beside its ideal."""
    count = JOBS.get(dialect, POLLING_JOBS)
    results = []
    for share in MIXES:
        specs = backlog(count, share)
        seconds = drain_seconds(url, specs)
        label = "no named queue" if not share else f"{share:.0%} in {QUEUES} named queues"
        results.append(
            Measurement(
                f"serial: {count:,} x 50 ms, {PROCESSES}x{SLOTS} slots, {label}",
                seconds,
                "s",
                "ideal drain time",
                ideal_seconds(specs),
                lower_is_better=True,
                target=1.3 if not share else 1.5,
            )
        )
    return results
