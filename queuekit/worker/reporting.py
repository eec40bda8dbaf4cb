"""How a worker tells the world what happened: events, counters, log lines."""

from __future__ import annotations

from typing import Any

from queuekit.repository import Outcome
from queuekit.worker.state import WorkerState, log


class Reporter:
    """Emits events and reports the worker's own (never a task's) errors."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state

    def emit(self, name: str, data: dict[str, Any]) -> None:
        """Queue an event for the listeners; returns at once."""
        self.state.events.emit(name, data)

    def wants(self, name: str) -> bool:
        """Whether anyone listens to ``name`` (hot paths skip building unwanted data)."""
        return self.state.events.wants(name)

    def bookkeeping_error(self, cause: str, error: BaseException) -> None:
        """A worker's own error (never a task's): logged, counted, emitted."""
        state = self.state
        with state.lock:
            state.stats.errors += 1
        worker_id = state.settings.worker_id
        log.warning("worker %s: %s failed: %s", worker_id, cause, error)
        self.emit(
            "worker/error",
            {"worker_id": worker_id, "cause": cause, "error": str(error), "exception": error},
        )

    def outcome_data(self, outcome: Outcome) -> dict[str, Any]:
        """The event fields of a recorded outcome."""
        data = self.state.job_data(outcome.job)
        data["execution_time_ms"] = outcome.execution_time_ms
        if outcome.kind == "failed":
            error = outcome.error
            data["error"] = (
                (str(error) or type(error).__name__) if isinstance(error, BaseException) else error
            )
            if isinstance(error, BaseException):
                data["exception"] = error
        return data


__all__ = ["Reporter"]
