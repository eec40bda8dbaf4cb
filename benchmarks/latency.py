"""Pickup latency: from an enqueue's commit to the job starting, with an idle worker.

On PostgreSQL the worker is woken by LISTEN/NOTIFY; the baseline is a raw
loop blocked on ``LISTEN`` that claims (``SKIP LOCKED`` + DELETE, committed)
as soon as a notification arrives. On SQLite and MariaDB both sides poll at
the same interval, so the figures show what polling costs. Each sample
enqueues one job (one transaction), waits until it started, then pauses a
few milliseconds so that the worker is idle again.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from benchmarks.common import RAW_CHANNEL, Measurement, RawQueue, percentile
from queuekit import JobManager
from queuekit.worker import JobContext, Worker

ORDER = 30
TASK = "bench.ping"
#: Samples per side; polling dialects take longer per sample.
SAMPLES = {"postgresql": 300}
POLLING_SAMPLES = 60
POLL_INTERVAL = 0.05
WAIT_LIMIT = 5.0


def sample(enqueue: Callable[[int], object], started: dict[int, float], count: int) -> list[float]:
    """Latencies (ms) of ``count`` enqueues, each from its commit to its start."""
    arrived = threading.Condition()
    latencies: list[float] = []
    for number in range(count):
        enqueue(number)
        committed = time.perf_counter()
        deadline = committed + WAIT_LIMIT
        with arrived:
            while number not in started and time.perf_counter() < deadline:
                arrived.wait(0.0005)
        if number not in started:
            raise RuntimeError(f"job {number} was not picked up within {WAIT_LIMIT} s")
        latencies.append((started[number] - committed) * 1000)
        time.sleep(random.uniform(0.005, 0.015))
    return latencies


def queuekit_latencies(url: str, count: int) -> list[float]:
    """An idle queuekit worker (LISTEN/NOTIFY where available) picking up single jobs."""
    started: dict[int, float] = {}

    def ping(payload: dict[str, Any], ctx: JobContext) -> None:
        started[payload["n"]] = time.perf_counter()

    engine = sa.create_engine(url)
    manager = JobManager(engine)
    worker = Worker(
        manager,
        {TASK: ping},
        concurrency=4,
        worker_id="bench-latency",
        poll_interval=POLL_INTERVAL if not manager.dialect.notifies else "2 seconds",
        maintenance=False,
    )
    worker.start()
    try:
        time.sleep(0.5)  # the listener is up and the first (empty) claim is done
        manager.add_job(TASK, {"n": -1})  # warm the enqueue path
        time.sleep(0.2)
        return sample(lambda n: manager.add_job(TASK, {"n": n}), started, count)
    finally:
        worker.stop()
        engine.dispose()


def raw_latencies(dialect: str, url: str, count: int) -> list[float]:
    """The bare loop: LISTEN then claim on PostgreSQL, poll then claim elsewhere."""
    started: dict[int, float] = {}
    stop = threading.Event()
    producer = RawQueue(dialect, url)
    consumer = RawQueue(dialect, url)

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
            payload = document if isinstance(document, dict) else _loads(document)
            started[payload["n"]] = time.perf_counter()

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

    ready = threading.Event()
    loop = listen_loop if dialect == "postgresql" else poll_loop
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    ready.wait(5)
    try:

        def enqueue(n: int) -> None:
            if dialect == "postgresql":
                producer.insert_and_notify(TASK, {"n": n})
            else:
                producer.insert_one(TASK, {"n": n})

        return sample(enqueue, started, count)
    finally:
        stop.set()
        thread.join(5)
        producer.close()
        consumer.close()


def _loads(document: Any) -> Any:
    import json

    return json.loads(document)


def _conninfo(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def run(dialect: str, url: str) -> list[Measurement]:
    """p50 and p95 pickup latency of queuekit and of the bare loop."""
    count = SAMPLES.get(dialect, POLLING_SAMPLES)
    raw = raw_latencies(dialect, url, count)
    ours = queuekit_latencies(url, count)
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
