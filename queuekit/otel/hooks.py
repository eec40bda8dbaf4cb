"""The OpenTelemetry implementation of :class:`queuekit.instrumentation.Hooks`.

Spans follow the messaging conventions:

- ``send {task}`` (PRODUCER) around each ``add_job``/``add_jobs``/replay
  call, one span for a whole batch (``messaging.batch.message_count``);
  the span's context is what is stored with every job of the call, through
  the configured propagator (W3C ``traceparent``/``tracestate`` by default).
  Cron firings enqueue with no span around them, so their ``send`` span
  starts a trace of its own.
- ``process {task}`` (CONSUMER) around each attempt's task, current while
  the task runs (so jobs the task enqueues carry it), with a **link** to the
  stored context: retries make several process spans for one send, and a
  job may wait for hours, so by default the attempt starts a trace of its
  own. ``span_relationship="child"`` makes the stored context its parent
  instead (one trace from request to job; never both).
- ``settle`` (CLIENT) around each outcome write, only with
  ``settle_spans=True``: a worker writes outcomes every few milliseconds in
  the background, and each such span would start a trace of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from queuekit.otel import names
from queuekit.otel.instruments import Instruments

if TYPE_CHECKING:
    from queuekit.repository import FinishedJob, Outcome
    from queuekit.types import Job

#: Longest stored carrier: one whose ``tracestate`` or baggage makes it longer is cut to
#: ``traceparent`` alone, so a host's large tracestate never bloats every job row.
MAX_CARRIER = 1024
#: Entries each of the hooks' caches keeps for reuse (a cache is emptied when full:
#: named queues and stored contexts are as many as the application makes).
CACHE_SIZE = 4096

#: Where an attempt's span comes from: its parent context (``"child"``) and its links (``"link"``).
Origin = tuple[otel_context.Context | None, tuple[Link, ...]]
NO_ORIGIN: Origin = (None, ())
#: A ``process`` span's name and the attributes every attempt of its task (and queue) shares.
ProcessStart = tuple[str, dict[str, AttributeValue]]


class OpenTelemetryHooks:
    """Spans and metrics for everything queuekit reports through its hooks."""

    def __init__(
        self,
        tracer: Tracer,
        instruments: Instruments,
        *,
        span_relationship: str = "link",
        settle_spans: bool = False,
    ) -> None:
        self.tracer = tracer
        self.instruments = instruments
        self.child = span_relationship == "child"
        self.settle_spans = settle_spans
        self._origins: dict[tuple[tuple[str, str], ...], Origin] = {}
        self._starts: dict[tuple[str, str | None], ProcessStart] = {}

    # -- enqueue ------------------------------------------------------------------------

    @contextmanager
    def send(self, operation: str) -> Iterator[SendScope]:
        """A ``send`` span around one enqueue call, injected into its jobs."""
        attributes = {
            names.MESSAGING_SYSTEM: names.SYSTEM,
            names.OPERATION_NAME: "send",
            names.OPERATION_TYPE: "send",
            names.ENQUEUE_OPERATION: operation,
        }
        with self.tracer.start_as_current_span(
            "send", kind=SpanKind.PRODUCER, attributes=attributes
        ) as span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield SendScope(span, trimmed(carrier), self.instruments)

    def claimed(self, jobs: Sequence[Job]) -> None:
        """Queue time of each claimed job."""
        self.instruments.claimed(jobs)

    # -- attempts -----------------------------------------------------------------------

    def process(self, job: Job) -> ProcessScope:
        """A ``process`` span around one attempt, current while its task runs."""
        return ProcessScope(self, job)

    def origin(self, carrier: dict[str, str] | None) -> Origin:
        """The parent context and links of an attempt whose job stored ``carrier``.

        Jobs enqueued together share one carrier, so the origins of recent
        carriers are kept (a few thousand at most) and a batch's attempts
        share one parsed context and one ``Link``.
        """
        if not carrier:
            return NO_ORIGIN
        key = tuple(carrier.items())
        origin = self._origins.get(key)
        if origin is None:
            stored = self.stored_context(carrier)
            if stored is None:
                origin = NO_ORIGIN
            elif self.child:
                origin = (stored, ())
            else:
                origin = (None, (Link(trace.get_current_span(stored).get_span_context()),))
            if len(self._origins) >= CACHE_SIZE:
                self._origins.clear()
            self._origins[key] = origin
        return origin

    def start(self, task_identifier: str, queue_name: str | None) -> ProcessStart:
        """The ``process`` span's name and fixed attributes for a task (and named queue)."""
        key = (task_identifier, queue_name)
        start = self._starts.get(key)
        if start is None:
            attributes: dict[str, AttributeValue] = {
                names.MESSAGING_SYSTEM: names.SYSTEM,
                names.OPERATION_NAME: "process",
                names.OPERATION_TYPE: "process",
                names.DESTINATION: task_identifier,
            }
            if queue_name is not None:
                attributes[names.QUEUE_NAME] = queue_name
            if len(self._starts) >= CACHE_SIZE:
                self._starts.clear()
            start = self._starts.setdefault(key, (f"process {task_identifier}", attributes))
        return start

    def stored_context(self, carrier: dict[str, str]) -> otel_context.Context | None:
        """The context stored with a job, or None if it holds no valid span."""
        stored: otel_context.Context = propagate.extract(carrier)
        if not trace.get_current_span(stored).get_span_context().is_valid:
            return None
        return stored

    @contextmanager
    def settle(self, outcomes: Sequence[Outcome]) -> Iterator[object]:
        """A ``settle`` span around an outcome write, when asked for."""
        if not self.settle_spans:
            yield None
            return
        attributes: dict[str, AttributeValue] = {
            names.MESSAGING_SYSTEM: names.SYSTEM,
            names.OPERATION_NAME: "settle",
            names.OPERATION_TYPE: "settle",
            names.BATCH_COUNT: len(outcomes),
        }
        with self.tracer.start_as_current_span(
            "settle", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            yield span

    def settled(self, finished: Sequence[FinishedJob]) -> None:
        """Count recorded outcomes."""
        self.instruments.settled(finished)

    def cancelled(self, jobs: Sequence[Job]) -> None:
        """Count cancelled jobs."""
        self.instruments.count_jobs(self.instruments.cancelled, jobs)

    def exhausted(self, jobs: Sequence[Job]) -> None:
        """Count permanently failed jobs."""
        self.instruments.count_jobs(self.instruments.exhausted, jobs)


class SendScope:
    """One traced enqueue call: its carrier, and what it stored."""

    def __init__(self, span: Span, carrier: dict[str, str] | None, instruments: Instruments):
        self.span = span
        self.carrier = carrier
        self.instruments = instruments

    def sent(self, jobs: Sequence[Job]) -> None:
        """Name the span after what was stored, and count it."""
        self.instruments.count_jobs(self.instruments.enqueued, jobs)
        span = self.span
        if not span.is_recording() or not jobs:
            return
        tasks = sorted({job.task_identifier for job in jobs})
        if len(tasks) == 1:
            span.update_name(f"send {tasks[0]}")
            span.set_attribute(names.DESTINATION, tasks[0])
        else:
            span.set_attribute(names.TASK_IDENTIFIERS, tasks)
        if len(jobs) == 1:
            span.set_attribute(names.MESSAGE_ID, str(jobs[0].id))
        else:
            span.set_attribute(names.BATCH_COUNT, len(jobs))


class ProcessScope:
    """The ``process`` span of one attempt (a context manager, entered where the task runs)."""

    __slots__ = ("hooks", "job", "span", "token")

    def __init__(self, hooks: OpenTelemetryHooks, job: Job) -> None:
        self.hooks = hooks
        self.job = job

    def __enter__(self) -> ProcessScope:
        job = self.job
        hooks = self.hooks
        parent, links = hooks.origin(job.trace_context)
        name, fixed = hooks.start(job.task_identifier, job.queue_name)
        attributes = fixed.copy()
        attributes[names.MESSAGE_ID] = str(job.id)
        attributes[names.ATTEMPT] = job.attempts
        span = hooks.tracer.start_span(
            name, context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        )
        self.span = span
        self.token = otel_context.attach(trace.set_span_in_context(span))
        return self

    def finished(self, outcome: Outcome) -> None:
        """Record how the attempt ended on its span."""
        span = self.span
        if not span.is_recording():
            return
        span.set_attribute(names.OUTCOME, outcome.kind)
        if outcome.kind != "failed":
            return
        error = outcome.error
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_attribute(names.ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__name__))
        else:
            span.set_attribute(names.ERROR_TYPE, "_OTHER")
            span.set_status(Status(StatusCode.ERROR, str(error)))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        otel_context.detach(self.token)
        self.span.end()


def trimmed(carrier: dict[str, str]) -> dict[str, str] | None:
    """The carrier to store: None when empty (no valid span), cut to ``traceparent`` if large."""
    if not carrier:
        return None
    if sum(len(k) + len(v) for k, v in carrier.items()) <= MAX_CARRIER:
        return carrier
    parent = carrier.get("traceparent")
    return {"traceparent": parent} if parent else None


__all__ = ["MAX_CARRIER", "OpenTelemetryHooks", "ProcessScope", "SendScope", "trimmed"]
