"""OpenTelemetry traces and metrics for queuekit (``pip install queuekit[otel]``).

::

    from queuekit.otel import QueueKitInstrumentor

    QueueKitInstrumentor().instrument(tracer_provider=..., meter_provider=...)

follows ``opentelemetry-instrumentation``'s ``BaseInstrumentor`` convention,
so ``opentelemetry-instrument`` also finds it through the
``opentelemetry_instrumentor`` entry point. It installs
:class:`~queuekit.otel.hooks.OpenTelemetryHooks` into
:mod:`queuekit.instrumentation`; until then queuekit imports nothing of
OpenTelemetry and its hot paths do no extra work. See docs/observability.md.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from queuekit import __version__, instrumentation
from queuekit.errors import InvalidArgumentError, MissingExtraError

try:
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
except ImportError as missing:  # pragma: no cover - depends on what is installed
    raise MissingExtraError(
        f"queuekit.otel needs OpenTelemetry ({missing.name} is missing): "
        "pip install 'queuekit[otel]'"
    ) from missing

from queuekit.otel import names
from queuekit.otel.hooks import OpenTelemetryHooks
from queuekit.otel.instruments import BacklogCollector, Instruments

#: Default least interval between two backlog reads, whatever the scrape rate.
BACKLOG_INTERVAL = 15.0


class QueueKitInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Switches queuekit's OpenTelemetry spans and metrics on and off, process-wide."""

    _backlog: BacklogCollector | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """queuekit instruments itself: nothing else must be installed."""
        return ()

    def instrument(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        span_relationship: str = "link",
        settle_spans: bool = False,
        collect_backlog: Any = None,
        backlog_interval: float = BACKLOG_INTERVAL,
        **kwargs: Any,
    ) -> None:
        """Start tracing and measuring every JobManager and Worker of this process.

        Args:
            tracer_provider, meter_provider: default the global ones.
            span_relationship: ``"link"`` (default): each attempt's ``process``
                span starts a trace of its own, linked to the enqueuer's;
                ``"child"``: it continues the enqueuer's trace.
            settle_spans: also trace each outcome write (off by default: a
                busy worker writes outcomes every few milliseconds).
            collect_backlog: a JobManager whose database this process
                reports backlog gauges for. Give it to ONE process per
                database (one worker, or the app), never to every worker.
            backlog_interval: least seconds between two backlog reads.
        """
        if span_relationship not in names.SPAN_RELATIONSHIPS:
            raise InvalidArgumentError(
                f"span_relationship must be one of {', '.join(names.SPAN_RELATIONSHIPS)}, "
                f"not {span_relationship!r}"
            )
        from queuekit.manager import JobManager

        if collect_backlog is not None and not isinstance(collect_backlog, JobManager):
            raise InvalidArgumentError(
                "collect_backlog must be a JobManager (the database to read the backlog of), "
                f"not {type(collect_backlog).__name__}"
            )
        if isinstance(backlog_interval, bool) or not isinstance(backlog_interval, int | float):
            raise InvalidArgumentError("backlog_interval must be a number of seconds")
        if backlog_interval < 1:
            raise InvalidArgumentError("backlog_interval must be at least 1 second")
        super().instrument(
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            span_relationship=span_relationship,
            settle_spans=settle_spans,
            collect_backlog=collect_backlog,
            backlog_interval=float(backlog_interval),
            **kwargs,
        )

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(
            names.SCOPE,
            __version__,
            tracer_provider=kwargs.get("tracer_provider"),
            schema_url=names.SCHEMA_URL,
        )
        meter = metrics.get_meter(
            names.SCOPE,
            __version__,
            meter_provider=kwargs.get("meter_provider"),
            schema_url=names.SCHEMA_URL,
        )
        manager = kwargs.get("collect_backlog")
        if manager is not None:
            self._backlog = BacklogCollector(
                manager, meter, min_interval=kwargs.get("backlog_interval", BACKLOG_INTERVAL)
            )
        instrumentation.install(
            OpenTelemetryHooks(
                tracer,
                Instruments(meter),
                span_relationship=kwargs.get("span_relationship", "link"),
                settle_spans=bool(kwargs.get("settle_spans", False)),
            )
        )

    def _uninstrument(self, **kwargs: Any) -> None:
        instrumentation.install(None)
        if self._backlog is not None:
            self._backlog.stop()
            self._backlog = None


__all__ = ["BACKLOG_INTERVAL", "QueueKitInstrumentor"]
