"""OpenTelemetry traces and metrics (SPEC §12), on every dialect.

Spans go to the SDK's in-memory exporter and metrics to its in-memory
reader, through :class:`queuekit.otel.QueueKitInstrumentor`: a request span
→ ``send`` (its context stored with the job) → ``process`` linked to it,
with the attributes and the metric attribute sets the spec allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from queuekit import (
    InvalidArgumentError,
    JobContext,
    JobManager,
    JobSpec,
    RetryPolicy,
    Worker,
    instrumentation,
)
from queuekit.otel import QueueKitInstrumentor
from queuekit.otel.hooks import MAX_CARRIER, trimmed

TASK_ATTRIBUTE = "queuekit.task_identifier"
OUTCOME_ATTRIBUTE = "queuekit.outcome"


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer: trace.Tracer

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> dict[frozenset[tuple[str, Any]], Any]:
        """The data points of one metric, by attribute set."""
        found: dict[frozenset[tuple[str, Any]], Any] = {}
        data = self.metrics.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for each in scope.metrics:
                    if each.name == metric:
                        for point in each.data.data_points:
                            found[frozenset((point.attributes or {}).items())] = point
        return found


def start(**options: Any) -> Telemetry:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    QueueKitInstrumentor().instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        **options,
    )
    return Telemetry(spans, reader, tracer_provider.get_tracer("tests"))


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    yield start()
    QueueKitInstrumentor().uninstrument()


def drain(manager: JobManager, tasks: dict[str, Any]) -> None:
    Worker(manager, tasks, maintenance=False, poll_interval="0.05 seconds").drain()


def task_key(task: str) -> frozenset[tuple[str, Any]]:
    return frozenset({(TASK_ATTRIBUTE, task)})


def outcome_key(task: str, outcome: str) -> frozenset[tuple[str, Any]]:
    return frozenset({(TASK_ATTRIBUTE, task), (OUTCOME_ATTRIBUTE, outcome)})


def test_request_send_and_linked_process_spans(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    manager = clean_manager
    with telemetry.tracer.start_as_current_span("request") as request:
        job = manager.add_job("mail", {"to": "a"}, queue_name="user:1")
    stored = manager.get_job(job.id)
    assert stored is not None and stored.trace_context is not None

    follow_ups: list[str] = []

    def mail(payload: dict[str, Any], ctx: JobContext) -> None:
        follow_ups.append(str(ctx.manager.add_job("receipt", {}).id))

    drain(manager, {"mail": mail, "receipt": lambda payload, ctx: None})

    [send] = telemetry.finished("send mail")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None
    assert send.parent.span_id == request.get_span_context().span_id
    assert send.context is not None
    trace_id = f"{send.context.trace_id:032x}"
    span_id = f"{send.context.span_id:016x}"
    assert stored.trace_context["traceparent"].split("-")[1:3] == [trace_id, span_id]
    assert send.attributes is not None
    assert send.attributes["messaging.system"] == "queuekit"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.message.id"] == str(job.id)

    [process] = telemetry.finished("process mail")
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is None  # a trace of its own …
    assert process.context is not None
    assert process.context.trace_id != send.context.trace_id
    [link] = process.links  # … linked to the enqueuer's
    assert (link.context.trace_id, link.context.span_id) == (
        send.context.trace_id,
        send.context.span_id,
    )
    attributes = process.attributes or {}
    assert attributes["messaging.operation.name"] == "process"
    assert attributes["messaging.message.id"] == str(job.id)
    assert attributes["messaging.destination.name"] == "mail"
    assert attributes["queuekit.attempt"] == 1
    assert attributes["queuekit.queue_name"] == "user:1"
    assert attributes["queuekit.outcome"] == "completed"
    assert process.status.status_code is StatusCode.UNSET

    # A job the task enqueued is sent from within the attempt's span.
    [receipt_send] = telemetry.finished("send receipt")
    assert receipt_send.parent is not None
    assert receipt_send.parent.span_id == process.context.span_id
    [receipt_process] = telemetry.finished("process receipt")
    assert receipt_process.links[0].context.span_id == receipt_send.context.span_id  # type: ignore[union-attr]
    assert len(follow_ups) == 1


def test_async_task_keeps_its_span_across_awaits(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    manager = clean_manager
    manager.add_jobs([JobSpec("wait", {"n": n}) for n in range(5)])
    seen: dict[int, set[int]] = {}

    async def wait(payload: dict[str, Any], ctx: JobContext) -> None:
        spans = seen.setdefault(payload["n"], set())
        for _ in range(5):
            spans.add(trace.get_current_span().get_span_context().span_id)
            await asyncio.sleep(0.01)  # other attempts run meanwhile

    drain(manager, {"wait": wait})
    processes = telemetry.finished("process wait")
    assert len(processes) == 5
    by_job = {p.attributes["messaging.message.id"]: p for p in processes}  # type: ignore[index]
    assert len(by_job) == 5
    own = {p.context.span_id for p in processes}  # type: ignore[union-attr]
    for spans in seen.values():
        assert len(spans) == 1  # the same span before and after every await
        assert spans <= own
    assert len(set().union(*seen.values())) == 5
    # One batch send: every job links to the same send span.
    [send] = telemetry.finished("send wait")
    assert send.attributes is not None
    assert send.attributes["messaging.batch.message_count"] == 5
    assert {p.links[0].context.span_id for p in processes} == {send.context.span_id}  # type: ignore[union-attr]


def test_failed_attempts_record_the_exception_and_count_per_outcome(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    manager = JobManager(clean_manager.engine, retry=RetryPolicy(base_delay="0 seconds", jitter=0))
    with telemetry.tracer.start_as_current_span("request"):
        job = manager.add_job("flaky", {}, max_attempts=2)
    manager.add_job("fine", {})

    def flaky(payload: dict[str, Any], ctx: JobContext) -> None:
        raise ValueError(f"attempt {ctx.job.attempts} broke")

    worker = Worker(manager, {"flaky": flaky, "fine": lambda p, c: None}, maintenance=False)
    worker.drain()
    if manager.get_job(job.id).attempts < 2:  # type: ignore[union-attr]
        worker.drain()  # the retry was not due yet within the first drain

    processes = telemetry.finished("process flaky")
    assert sorted(p.attributes["queuekit.attempt"] for p in processes) == [1, 2]  # type: ignore[index]
    [send] = telemetry.finished("send flaky")
    for process in processes:
        assert process.status.status_code is StatusCode.ERROR
        assert process.attributes["error.type"] == "ValueError"  # type: ignore[index]
        assert process.attributes["queuekit.outcome"] == "failed"  # type: ignore[index]
        assert [e.name for e in process.events] == ["exception"]
        assert process.links[0].context.span_id == send.context.span_id  # type: ignore[union-attr]

    assert telemetry.points("queuekit.jobs.failed")[outcome_key("flaky", "failed")].value == 2
    assert telemetry.points("queuekit.jobs.exhausted")[task_key("flaky")].value == 1
    completed = telemetry.points("queuekit.jobs.completed")
    assert {k: p.value for k, p in completed.items()} == {task_key("fine"): 1}
    durations = telemetry.points("queuekit.attempt.duration")
    assert set(durations) == {outcome_key("flaky", "failed"), outcome_key("fine", "completed")}
    assert durations[outcome_key("flaky", "failed")].count == 2


def test_metrics_and_their_attribute_sets(clean_manager: JobManager, telemetry: Telemetry) -> None:
    manager = clean_manager
    manager.add_jobs([JobSpec("a", {}, queue_name=f"q{n}") for n in range(3)])
    manager.add_job("b", {})
    doomed = manager.add_job("c", {})
    manager.cancel_jobs([doomed.id])
    manager.permanently_fail_jobs([manager.add_job("d", {}).id], "no")
    drain(manager, {"a": lambda p, c: None, "b": lambda p, c: None})

    enqueued = telemetry.points("queuekit.jobs.enqueued")
    assert {k: p.value for k, p in enqueued.items()} == {
        task_key("a"): 3,
        task_key("b"): 1,
        task_key("c"): 1,
        task_key("d"): 1,
    }
    completed = telemetry.points("queuekit.jobs.completed")
    assert {k: p.value for k, p in completed.items()} == {task_key("a"): 3, task_key("b"): 1}
    assert telemetry.points("queuekit.jobs.cancelled")[task_key("c")].value == 1
    assert telemetry.points("queuekit.jobs.exhausted")[task_key("d")].value == 1
    queue_time = telemetry.points("queuekit.job.queue_time")
    assert set(queue_time) == {task_key("a"), task_key("b")}
    assert queue_time[task_key("a")].count == 3
    assert list(queue_time[task_key("a")].explicit_bounds)[:2] == [0.005, 0.01]
    # No metric carries job ids, queue names or anything beyond task and outcome.
    data = telemetry.metrics.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for each in scope.metrics:
                for point in each.data.data_points:
                    assert set(point.attributes or {}) <= {TASK_ATTRIBUTE, OUTCOME_ATTRIBUTE}


def test_backlog_gauges_come_from_one_collector(clean_manager: JobManager) -> None:
    manager = clean_manager
    manager.add_jobs([JobSpec("a", {}) for _ in range(4)] + [JobSpec("b", {})])
    manager.get_jobs("w", task_identifiers=["b"])
    telemetry = start(collect_backlog=manager, backlog_interval=60)
    try:
        available = telemetry.points("queuekit.backlog.available")
        assert {k: p.value for k, p in available.items()} == {task_key("a"): 4, task_key("b"): 0}
        locked = telemetry.points("queuekit.backlog.locked")
        assert {k: p.value for k, p in locked.items()} == {task_key("a"): 0, task_key("b"): 1}
        [age] = telemetry.points("queuekit.backlog.oldest_waiting_age").values()
        assert age.value >= 0
        manager.add_job("a", {})
        # Read at most once per interval however often it is collected.
        again = telemetry.points("queuekit.backlog.available")
        assert again[task_key("a")].value == 4
    finally:
        QueueKitInstrumentor().uninstrument()


def test_child_relationship_continues_the_enqueuers_trace(clean_manager: JobManager) -> None:
    telemetry = start(span_relationship="child")
    try:
        with telemetry.tracer.start_as_current_span("request") as request:
            clean_manager.add_job("mail", {})
        drain(clean_manager, {"mail": lambda p, c: None})
        [send] = telemetry.finished("send mail")
        [process] = telemetry.finished("process mail")
        assert process.parent is not None and send.context is not None
        assert process.parent.span_id == send.context.span_id
        assert process.context.trace_id == request.get_span_context().trace_id  # type: ignore[union-attr]
        assert process.links == ()
    finally:
        QueueKitInstrumentor().uninstrument()


def test_replay_carries_the_replaying_calls_context(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    manager = clean_manager
    job = manager.add_job("broken", {}, max_attempts=1)
    drain(manager, {"broken": lambda p, c: 1 / 0})
    with telemetry.tracer.start_as_current_span("operator") as operator:
        [replayed] = manager.replay_failed_jobs()
    [replay_send] = [
        s
        for s in telemetry.finished("send broken")
        if (s.attributes or {}).get("queuekit.enqueue.operation") == "replay"
    ]
    assert replay_send.parent is not None
    assert replay_send.parent.span_id == operator.get_span_context().span_id
    stored = manager.get_job(replayed.id)
    assert stored is not None and stored.trace_context is not None
    assert f"{replay_send.context.span_id:016x}" in stored.trace_context["traceparent"]  # type: ignore[union-attr]
    assert replayed.id != job.id


def test_async_manager_sends_within_the_callers_span(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from queuekit import AsyncJobManager
    from tests.test_async import async_url

    async def scenario() -> tuple[int, Any]:
        engine = create_async_engine(async_url(clean_manager.engine))
        try:
            with telemetry.tracer.start_as_current_span("request") as request:
                job = await AsyncJobManager(engine).add_job("mail", {})
            return request.get_span_context().span_id, job
        finally:
            await engine.dispose()

    request_id, job = asyncio.run(scenario())
    [send] = telemetry.finished("send mail")
    assert send.parent is not None and send.parent.span_id == request_id
    assert job.trace_context is not None
    assert f"{send.context.span_id:016x}" in job.trace_context["traceparent"]  # type: ignore[union-attr]


def test_uninstrumented_jobs_store_no_context(clean_manager: JobManager) -> None:
    telemetry = start()
    QueueKitInstrumentor().uninstrument()
    assert instrumentation.hooks is None
    with telemetry.tracer.start_as_current_span("request"):
        job = clean_manager.add_job("mail", {})
    stored = clean_manager.get_job(job.id)
    assert stored is not None and stored.trace_context is None
    assert telemetry.spans.get_finished_spans()[-1].name == "request"


def test_bad_options_are_refused_and_install_nothing() -> None:
    for options in (
        {"span_relationship": "parent"},
        {"collect_backlog": "postgresql://"},
        {"backlog_interval": 0},
    ):
        with pytest.raises(InvalidArgumentError):
            QueueKitInstrumentor().instrument(**options)
        assert instrumentation.hooks is None


def test_large_trace_state_is_cut_to_traceparent() -> None:
    parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    assert trimmed({}) is None
    assert trimmed({"traceparent": parent}) == {"traceparent": parent}
    big = {"traceparent": parent, "tracestate": "k=" + "v" * MAX_CARRIER}
    assert trimmed(big) == {"traceparent": parent}


def test_a_cron_firing_starts_a_trace_its_job_carries(
    clean_manager: JobManager, telemetry: Telemetry
) -> None:
    from datetime import timedelta

    from queuekit.cron import CronScheduler
    from tests.test_cron import set_state

    manager = clean_manager
    scheduler = CronScheduler(manager, [("tick", "* * * * *", {}, {"task_identifier": "t"})])
    scheduler.register()
    now = manager.now()
    set_state(
        manager.engine,
        "tick",
        known_since=now - timedelta(days=1),
        last_execution=now - timedelta(hours=1),
    )
    [fired] = scheduler.fire_due()
    [send] = telemetry.finished("send t")
    assert send.parent is None
    stored = manager.get_job(fired.job_id)
    assert stored is not None and stored.trace_context is not None
    assert f"{send.context.span_id:016x}" in stored.trace_context["traceparent"]  # type: ignore[union-attr]


def test_auto_instrumentation_finds_the_instrumentor() -> None:
    from importlib.metadata import entry_points

    [entry] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "queuekit"]
    assert entry.load() is QueueKitInstrumentor
    assert QueueKitInstrumentor().instrumentation_dependencies() == ()
