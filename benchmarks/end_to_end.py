"""End-to-end throughput: one worker draining 20,000 no-op jobs, against a raw claim loop.

queuekit's side is a :class:`~queuekit.worker.Worker` in this process
running ``drain()``: each job is claimed (lock plus a ``started`` history
row), run, and finished (deleted, its history row closed) in batched
transactions. It runs twice: once with a plain function as the task (task
threads), once with an ``async def`` one (the worker's event loop). The
baseline is the bare loop of a queue without history: ``SELECT id ...
ORDER BY priority, run_at, id LIMIT 100 FOR UPDATE SKIP LOCKED`` then
``DELETE ... WHERE id IN (...)``, one transaction per batch.
Enqueueing the jobs is not timed on either side; the raw loop runs before
and after the worker and the mean of the two is the baseline.

The thread-task pass runs once more with tracing and metrics on
(``queuekit.otel`` with the OpenTelemetry SDK: every span sampled and
batched to an exporter that drops them, metrics kept in memory): its
baseline is the same pass without them, and it should keep at least 85%
of that throughput.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from benchmarks.common import Measurement, RawQueue, timed
from queuekit import JobManager, JobSpec, WorkerStats
from queuekit.worker import JobContext, Worker

ORDER = 20
JOBS = int(os.environ.get("QUEUEKIT_BENCH_E2E_JOBS", "20000"))
RAW_BATCH = 100
CONCURRENCY = int(os.environ.get("QUEUEKIT_BENCH_CONCURRENCY", "20"))
TASK = "bench.noop"


def noop(payload: dict[str, Any], ctx: JobContext) -> None:
    """The task: nothing at all, so only the queue's own cost is measured."""


async def async_noop(payload: dict[str, Any], ctx: JobContext) -> None:
    """The same nothing as a coroutine function, run on the worker's event loop."""


def drain_raw(raw: RawQueue) -> int:
    """Claim and delete batches until the table is empty; returns how many rows went."""
    total = 0
    while True:
        taken = raw.claim_and_delete(RAW_BATCH)
        if not taken:
            return total
        total += taken


def raw_pass(dialect: str, url: str, payloads: list[dict[str, Any]]) -> float:
    """Jobs per second of the raw loop over ``payloads`` (inserted first, untimed)."""
    raw = RawQueue(dialect, url)
    try:
        raw.insert_many(TASK, payloads)
        removed: list[int] = []
        seconds = timed(lambda: removed.append(drain_raw(raw)))
        if removed != [len(payloads)]:
            raise RuntimeError(f"the raw loop removed {removed} rows, expected {len(payloads)}")
        return len(payloads) / seconds
    finally:
        raw.close()


def queuekit_pass(url: str, payloads: list[dict[str, Any]], task: Callable[..., object]) -> float:
    """Jobs per second of one worker running ``task`` for ``payloads`` (enqueued first, untimed)."""
    engine = sa.create_engine(url)
    try:
        manager = JobManager(engine)
        for start in range(0, len(payloads), 5000):
            manager.add_jobs([JobSpec(TASK, p) for p in payloads[start : start + 5000]])
        worker = Worker(
            manager,
            {TASK: task},
            concurrency=CONCURRENCY,
            worker_id="bench-worker",
            poll_interval="0.5 seconds",
            maintenance=False,
        )
        results: list[WorkerStats] = []
        seconds = timed(lambda: results.append(worker.drain()))
        if results[0].completed != len(payloads):
            raise RuntimeError(f"the worker completed {results[0].completed} of {len(payloads)}")
        return len(payloads) / seconds
    finally:
        engine.dispose()


@contextmanager
def instrumented() -> Iterator[None]:
    """queuekit traced and measured by the SDK, spans batched to an exporter that drops them."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from queuekit.otel import QueueKitInstrumentor

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    QueueKitInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        yield
    finally:
        QueueKitInstrumentor().uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def run(dialect: str, url: str) -> list[Measurement]:
    """The raw loop before and after queuekit's worker (their mean is the baseline)."""
    payloads = [{"n": n} for n in range(JOBS)]
    before = raw_pass(dialect, url, payloads)
    threads = queuekit_pass(url, payloads, noop)
    loop = queuekit_pass(url, payloads, async_noop)
    with instrumented():
        traced = queuekit_pass(url, payloads, noop)
    after = raw_pass(dialect, url, payloads)
    baseline = (before + after) / 2
    return [
        Measurement(
            f"end to end, {JOBS:,} no-op jobs",
            threads,
            "jobs/s",
            f"SKIP LOCKED claim+DELETE, batch {RAW_BATCH}",
            baseline,
            target=0.40 if dialect == "postgresql" else None,
        ),
        Measurement(
            f"end to end, {JOBS:,} no-op async def jobs",
            loop,
            "jobs/s",
            f"SKIP LOCKED claim+DELETE, batch {RAW_BATCH}",
            baseline,
        ),
        Measurement(
            f"end to end, {JOBS:,} no-op jobs, traced and measured",
            traced,
            "jobs/s",
            "the same pass without instrumentation",
            threads,
            target=0.85,
        ),
    ]
