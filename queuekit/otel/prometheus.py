"""Prometheus text for queuekit's metrics (``pip install queuekit[prometheus]``).

The same OpenTelemetry instruments as :mod:`queuekit.otel`, read by the
OpenTelemetry Prometheus exporter and served by ``prometheus_client``: one
definition of every metric, so names never drift between the two paths.
OpenTelemetry names become Prometheus names the usual way (dots to
underscores, ``_total`` on counters, the unit as a suffix):
``queuekit_jobs_completed_total``, ``queuekit_attempt_duration_seconds``.

``queuekit worker --metrics-port N`` calls :func:`serve_metrics`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from queuekit.errors import InvalidArgumentError, MissingExtraError

try:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server
except ImportError as missing:  # pragma: no cover - depends on what is installed
    raise MissingExtraError(
        f"Prometheus metrics need {missing.name or 'prometheus_client'}: "
        "pip install 'queuekit[prometheus]'"
    ) from missing

from queuekit.otel import QueueKitInstrumentor

if TYPE_CHECKING:
    from queuekit.manager import JobManager


class MetricsServer:
    """A running ``/metrics`` endpoint; :meth:`close` stops it and the instrumentation."""

    def __init__(self, server: Any, thread: threading.Thread, provider: MeterProvider) -> None:
        self._server = server
        self._thread = thread
        self._provider = provider
        #: The port actually bound (useful when 0 asked for any free one).
        self.port: int = server.server_port

    def close(self) -> None:
        """Stop serving and stop instrumenting."""
        QueueKitInstrumentor().uninstrument()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._provider.shutdown()


def serve_metrics(
    port: int,
    *,
    host: str = "127.0.0.1",
    collect_backlog: JobManager | None = None,
    **options: Any,
) -> MetricsServer:
    """Instrument queuekit and serve its metrics as Prometheus text on ``host:port``.

    ``collect_backlog`` adds the backlog gauges of that manager's database:
    give it to one process per database only. Other ``options`` go to
    :meth:`QueueKitInstrumentor.instrument` (the global tracer provider
    still receives spans). The default host keeps the endpoint private to
    the machine; bind a wider one only behind a network you trust.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgumentError(f"port must be an integer from 0 to 65535, not {port!r}")
    reader = PrometheusMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instrumentor = QueueKitInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        # Auto-instrumented already (opentelemetry-instrument): re-instrument so the
        # metrics also reach this endpoint.
        instrumentor.uninstrument()
    instrumentor.instrument(meter_provider=provider, collect_backlog=collect_backlog, **options)
    try:
        server, thread = start_http_server(port, addr=host)
    except BaseException:
        instrumentor.uninstrument()
        provider.shutdown()
        raise
    return MetricsServer(server, thread, provider)


__all__ = ["MetricsServer", "serve_metrics"]
