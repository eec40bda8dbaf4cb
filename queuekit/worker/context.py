"""What a task sees: its :class:`JobContext`, and the errors the worker records for it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from queuekit.errors import QueueKitError
from queuekit.manager import JobManager
from queuekit.types import Job, PartialSuccess

TaskFunction = Callable[[dict[str, Any], "JobContext"], object]


class ShutdownError(QueueKitError):
    """The error recorded for a task still running when the worker's shutdown timeout ran out."""


class JobTimeoutError(QueueKitError, TimeoutError):
    """The error recorded for an attempt that overran ``job_timeout``."""


@dataclass
class JobContext:
    """What a task receives besides its payload.

    Attributes:
        job: the claimed job (``job.attempts`` counts this attempt).
        worker_id: the id this worker claims under.
        manager: the JobManager, e.g. to enqueue follow-up jobs.
        cancelled: set when the attempt timed out, the worker is shutting
            down, or a heartbeat found the lock gone; a long task should
            check it and stop early.
    """

    job: Job
    worker_id: str
    manager: JobManager
    cancelled: threading.Event = field(default_factory=threading.Event)

    def heartbeat(self) -> bool:
        """Refresh this job's lock now; False (and ``cancelled`` set) if the lock was lost.

        The worker already refreshes every held lock periodically; call this
        only from a task that must prove liveness more often.
        """
        held = self.manager.heartbeat(self.worker_id, [self.job]) > 0
        if not held:
            self.cancelled.set()
        return held


def recordable(error: BaseException) -> BaseException | str:
    """The error itself, or a text naming it when even ``str(error)`` fails."""
    try:
        str(error)
    except Exception:
        return f"{type(error).__name__} (its message could not be rendered)"
    return error


def partial_problem(partial: PartialSuccess) -> str | None:
    """Why a returned PartialSuccess cannot be recorded, or None."""
    for name in ("completed_steps", "failed_steps"):
        steps = getattr(partial, name)
        if isinstance(steps, str) or not isinstance(steps, list | tuple):
            return f"PartialSuccess.{name} must be a list of strings"
        if not all(isinstance(step, str) for step in steps):
            return f"PartialSuccess.{name} must be a list of strings"
    if partial.retry_from_step is not None and not isinstance(partial.retry_from_step, str):
        return "PartialSuccess.retry_from_step must be a string or None"
    try:
        json.dumps(partial.results, allow_nan=False)
    except (TypeError, ValueError):
        return "PartialSuccess.results must be JSON-serialisable"
    return None


__all__ = [
    "JobContext",
    "JobTimeoutError",
    "ShutdownError",
    "TaskFunction",
    "partial_problem",
    "recordable",
]
