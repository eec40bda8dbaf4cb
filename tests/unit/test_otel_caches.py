"""The tracing hooks' caches stay bounded however many queues and contexts an application makes."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from queuekit.otel import hooks as hooks_module
from queuekit.otel.hooks import OpenTelemetryHooks
from queuekit.otel.instruments import Instruments


def make_hooks() -> OpenTelemetryHooks:
    tracer = TracerProvider().get_tracer("test")
    return OpenTelemetryHooks(tracer, Instruments(MeterProvider().get_meter("test")))


def test_span_starts_per_queue_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks_module, "CACHE_SIZE", 10)
    hooks = make_hooks()
    for n in range(25):
        name, attributes = hooks.start("mail.send", f"customer-{n}")
        assert name == "process mail.send"
        assert attributes["messaging.destination.name"] == "mail.send"
        assert len(hooks._starts) <= 10
    assert hooks.start("mail.send", "customer-24") is hooks.start("mail.send", "customer-24")


def test_origins_per_carrier_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks_module, "CACHE_SIZE", 10)
    hooks = make_hooks()
    for n in range(25):
        carrier = {"traceparent": f"00-{n + 1:032x}-{n + 1:016x}-01"}
        parent, links = hooks.origin(carrier)
        assert parent is None
        assert links[0].context.trace_id == n + 1
        assert len(hooks._origins) <= 10
