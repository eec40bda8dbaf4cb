"""How a worker tells the world what happened: events, counters, log lines."""

from __future__ import annotations

import logging
from typing import Any

from queuekit.repository import Outcome
from queuekit.types import Job
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

    def claimed(self, jobs: list[Job]) -> None:
        """Emit ``job/claimed`` for each of ``jobs`` (lock not held)."""
        if self.wants("job/claimed"):
            for job in jobs:
                self.emit("job/claimed", self.state.job_data(job))

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

    def log_outcome(self, outcome: Outcome, exhausted: bool) -> None:
        """Write the one log line of a recorded attempt outcome.

        Completions and partial successes at INFO, failures at WARNING and
        exhaustions at ERROR, both with the task's traceback. The fields are
        also in the record's attributes (``extra``) for structured handlers:
        ``task_identifier``, ``job_id``, ``attempt``, ``queue_name``,
        ``worker_id``, ``duration_ms``, ``outcome``, ``exhausted`` and, for
        failures, ``error``.
        """
        if outcome.kind == "failed":
            level = logging.ERROR if exhausted else logging.WARNING
        else:
            level = logging.INFO
        if not log.isEnabledFor(level):
            return
        job = outcome.job
        fields = self.state.job_data(job)
        fields.update(
            duration_ms=outcome.execution_time_ms, outcome=outcome.kind, exhausted=exhausted
        )
        error = outcome.error
        exc_info = None
        what = outcome.kind.replace("_", " ")
        if outcome.kind == "failed":
            if isinstance(error, BaseException):
                fields["error"] = str(error) or type(error).__name__
                exc_info = (type(error), error, error.__traceback__)
            else:
                fields["error"] = str(error)
            what = "failed and is exhausted" if exhausted else "failed"
        message = "%s job %s attempt %d on %s %s in %d ms"
        arguments: list[object] = [
            job.task_identifier,
            job.id,
            job.attempts,
            f"queue {job.queue_name}" if job.queue_name else "no queue",
            what,
            outcome.execution_time_ms,
        ]
        if "error" in fields:
            message += ": %s"
            arguments.append(fields["error"])
        log.log(level, message, *arguments, exc_info=exc_info, extra=fields)

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


class Role:
    """One of the worker's threads: the shared state it works on and how it reports."""

    def __init__(self, state: WorkerState, reporter: Reporter) -> None:
        self.state = state
        self.reporter = reporter


__all__ = ["Reporter", "Role"]
