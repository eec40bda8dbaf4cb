"""Pickup latency: from an enqueue's commit to the job starting, with an idle worker.

On PostgreSQL the worker is woken by LISTEN/NOTIFY; the baseline is a raw
loop blocked on ``LISTEN`` that claims (``SKIP LOCKED`` + DELETE, committed)
as soon as a notification arrives. On SQLite and MariaDB both sides poll at
the same interval, so the figures show what polling costs. Each sample
enqueues one job (one transaction), waits until it started, then pauses a
few milliseconds so that the worker is idle again. Both sides are up at once
(each claims only its own task) and samples alternate between them, so that
load on the machine affects both alike.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from benchmarks.common import RAW_CHANNEL, Measurement, RawQueue, percentile
from queuekit import JobManager
from queuekit.worker import JobContext, Worker

ORDER = 30
TASK = "bench.ping"
RAW_TASK = "bench.raw_ping"
#: Samples per side; polling dialects take longer per sample.
SAMPLES = {"postgresql": 300}
POLLING_SAMPLES = 60
POLL_INTERVAL = 0.05
WAIT_LIMIT = 5.0


class Arrivals:
    """When each job started, with a wake-up for the sampler (no busy polling)."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self._arrived = threading.Condition()

    def record(self, number: int) -> None:
        """Note that job ``number`` started now."""
        moment = time.perf_counter()
        with self._arrived:
            self.times[number] = moment
            self._arrived.notify_all()

    def wait_for(self, number: int, timeout: float) -> float:
        """When job ``number`` started; waits for it up to ``timeout`` seconds."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: number in self.times, timeout):
                raise RuntimeError(f"job {number} was not picked up within {timeout} s")
            return self.times[number]


def measure(enqueue: Callable[[int], object], arrivals: Arrivals, number: int) -> float:
    """Latency (ms) of one enqueue, from its commit to its start; then a short pause."""
    enqueue(number)
    committed = time.perf_counter()
    latency = (arrivals.wait_for(number, WAIT_LIMIT) - committed) * 1000
    time.sleep(random.uniform(0.005, 0.015))
    return latency


@contextmanager
def queuekit_side(url: str) -> Iterator[tuple[Callable[[int], object], Arrivals]]:
    """An idle queuekit worker (LISTEN/NOTIFY where available) and how to enqueue for it."""
    arrivals = Arrivals()

    def ping(payload: dict[str, Any], ctx: JobContext) -> None:
        arrivals.record(payload["n"])

    engine = sa.create_engine(url)
    manager = JobManager(engine)
    worker = Worker(
        manager,
        {TASK: ping},
        concurrency=4,
        worker_id="bench-latency",
        task_identifiers=[TASK],
        poll_interval=POLL_INTERVAL if not manager.dialect.notifies else "2 seconds",
        maintenance=False,
    )
    worker.start()
    try:
        time.sleep(0.5)  # the listener is up and the first (empty) claim is done
        yield (lambda n: manager.add_job(TASK, {"n": n})), arrivals
    finally:
        worker.stop()
        engine.dispose()


@contextmanager
def raw_side(dialect: str, url: str) -> Iterator[tuple[Callable[[int], object], Arrivals]]:
    """The bare loop (LISTEN then claim on PostgreSQL, poll then claim elsewhere)."""
    arrivals = Arrivals()
    stop = threading.Event()
    ready = threading.Event()
    producer = RawQueue(dialect, url)
    consumer = RawQueue(dialect, url, task=RAW_TASK)

    def claim_all() -> None:
        while True:
            cursor = consumer.connection.cursor()
            if dialect == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")
            cursor.execute(consumer.claim_sql, (1,))
            rows = cursor.fetchall()
            if rows:
                cursor.execute(
                    f"DELETE FROM queuekit_jobs WHERE id = {consumer.mark} RETURNING payload",
                    (rows[0][0],),
                )
                document = cursor.fetchone()[0]
            if dialect == "sqlite":
                cursor.execute("COMMIT")
            else:
                consumer.connection.commit()
            cursor.close()
            if not rows:
                return
            payload = document if isinstance(document, dict) else json.loads(document)
            arrivals.record(payload["n"])

    def listen_loop() -> None:
        import psycopg

        listener = psycopg.connect(_conninfo(url), autocommit=True)
        listener.execute(f"LISTEN {RAW_CHANNEL}")
        ready.set()
        while not stop.is_set():
            for _ in listener.notifies(timeout=0.2, stop_after=1):
                claim_all()
        listener.close()

    def poll_loop() -> None:
        ready.set()
        while not stop.is_set():
            claim_all()
            stop.wait(POLL_INTERVAL)

    def enqueue(n: int) -> None:
        if dialect == "postgresql":
            producer.insert_and_notify(RAW_TASK, {"n": n})
        else:
            producer.insert_one(RAW_TASK, {"n": n})

    thread = threading.Thread(
        target=listen_loop if dialect == "postgresql" else poll_loop, daemon=True
    )
    thread.start()
    ready.wait(5)
    try:
        yield enqueue, arrivals
    finally:
        stop.set()
        thread.join(5)
        producer.close()
        consumer.close()


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run(dialect: str, url: str) -> list[Measurement]:
    """p50 and p95 pickup latency of queuekit and of the bare loop, sampled alternately."""
    count = SAMPLES.get(dialect, POLLING_SAMPLES)
    ours: list[float] = []
    raw: list[float] = []
    with (
        queuekit_side(url) as (enqueue_ours, ours_arrived),
        raw_side(dialect, url) as (enqueue_raw, raw_arrived),
    ):
        measure(enqueue_ours, ours_arrived, -1)  # warm the enqueue path
        for number in range(count):
            raw.append(measure(enqueue_raw, raw_arrived, number))
            ours.append(measure(enqueue_ours, ours_arrived, number))
    on_pg = dialect == "postgresql"
    how = "LISTEN + claim" if on_pg else f"poll every {POLL_INTERVAL * 1000:g} ms + claim"
    return [
        Measurement(
            "pickup latency p50",
            percentile(ours, 0.50),
            "ms",
            f"raw {how}",
            percentile(raw, 0.50),
            lower_is_better=True,
            target=1.5 if on_pg else None,
        ),
        Measurement(
            "pickup latency p95",
            percentile(ours, 0.95),
            "ms",
            f"raw {how}",
            percentile(raw, 0.95),
            lower_is_better=True,
            limit=10.0 if on_pg else None,
        ),
    ]
