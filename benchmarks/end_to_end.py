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
of that throughput. Beside it, the ceiling any instrumentation could
reach with this SDK: the untraced time a job plus what the SDK's own
calls for one job cost (:func:`sdk_floor_us`).
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
#: Jobs' worth of bare SDK calls timed for the tracing floor (the best of three runs).
FLOOR_JOBS = 10_000


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


def sdk_providers() -> tuple[Any, Any]:
    """The benchmark's SDK providers: spans all sampled, batched, dropped; metrics in memory."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping()))
    return tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])


@contextmanager
def instrumented() -> Iterator[None]:
    """queuekit traced and measured by the SDK (see :func:`sdk_providers`)."""
    from queuekit.otel import QueueKitInstrumentor

    tracer_provider, meter_provider = sdk_providers()
    QueueKitInstrumentor().instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        yield
    finally:
        QueueKitInstrumentor().uninstrument()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def sdk_floor_us() -> float:
    """Microseconds a job costs the SDK alone, with none of queuekit's code.

    What every traced attempt needs, called directly in one thread: a
    ``process`` span with the same name, kind, attributes and link, current
    while it runs (attach, detach), its outcome attribute and its end
    (handed to the batch processor), and the two histogram records (queue
    time, attempt duration) with their attribute sets. The counters are
    left out: they are added once per batch. No garbage piles up here as
    it does in a worker, so this is a lower bound of what tracing adds.
    """
    from opentelemetry import context, trace
    from opentelemetry.trace import Link, SpanKind

    tracer_provider, meter_provider = sdk_providers()
    tracer = tracer_provider.get_tracer("floor")
    meter = meter_provider.get_meter("floor")
    queue_time = meter.create_histogram("queue_time", unit="s")
    duration = meter.create_histogram("duration", unit="s")
    with tracer.start_as_current_span("send") as send:
        links = (Link(send.get_span_context()),)
    task = {"queuekit.task_identifier": TASK}
    task_outcome = {**task, "queuekit.outcome": "completed"}
    attributes: dict[str, Any] = {
        "messaging.system": "queuekit",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": TASK,
        "messaging.message.id": "0192d4e0-7c3a-7d1e-9b5a-3f2e1d0c4b5a",
        "queuekit.attempt": 1,
    }

    def job() -> None:
        queue_time.record(0.002, task)
        span = tracer.start_span(
            f"process {TASK}", kind=SpanKind.CONSUMER, links=links, attributes=attributes
        )
        token = context.attach(trace.set_span_in_context(span))
        span.set_attribute("queuekit.outcome", "completed")
        context.detach(token)
        span.end()
        duration.record(0.0, task_outcome)

    try:
        best = min(timed(lambda: [job() for _ in range(FLOOR_JOBS)]) for _ in range(3))
    finally:
        tracer_provider.shutdown()
        meter_provider.shutdown()
    return best / FLOOR_JOBS * 1e6


def run(dialect: str, url: str) -> list[Measurement]:
    """The raw loop before and after queuekit's worker (their mean is the baseline)."""
    payloads = [{"n": n} for n in range(JOBS)]
    before = raw_pass(dialect, url, payloads)
    threads = queuekit_pass(url, payloads, noop)
    loop = queuekit_pass(url, payloads, async_noop)
    with instrumented():
        traced = queuekit_pass(url, payloads, noop)
    after = raw_pass(dialect, url, payloads)
    floor = sdk_floor_us()
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
        Measurement(
            f"  ceiling: untraced plus the SDK's own {floor:.0f} µs a job",
            1e6 / (1e6 / threads + floor),
            "jobs/s",
            "the same pass without instrumentation",
            threads,
        ),
    ]
