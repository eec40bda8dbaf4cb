"""The hook point through which tracing and metrics observe queuekit.

Core code never imports an observability library. It asks this module for
the installed :class:`Hooks` at the few places worth observing (enqueue,
claim, each attempt, the outcome write, cancel) and does nothing more when
there are none: one attribute read and an ``is None`` test per call.
:class:`queuekit.otel.QueueKitInstrumentor` installs an implementation
backed by OpenTelemetry; anything else satisfying the protocol works too.

The hooks are process-wide, like OpenTelemetry's own global providers, so
every :class:`~queuekit.JobManager` and :class:`~queuekit.Worker` of the
process reports through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from queuekit.repository import FinishedJob, Outcome
    from queuekit.types import Job

#: Operation names handed to :meth:`Hooks.send`: what caused the enqueue.
SEND_OPERATIONS = ("add_jobs", "replay")


class SendScope(Protocol):
    """One enqueue call being observed."""

    #: The trace context to store with every job of the call, or None.
    carrier: dict[str, str] | None

    def sent(self, jobs: Sequence[Job]) -> None:
        """The call stored ``jobs`` (in its transaction)."""


class ProcessScope(Protocol):
    """One attempt being observed while its task runs."""

    def finished(self, outcome: Outcome) -> None:
        """The task returned (or raised): what its attempt amounts to."""


class Hooks(Protocol):
    """What an observer is told. Every method must be cheap and must not raise."""

    def send(self, operation: str) -> AbstractContextManager[SendScope]:
        """Around one enqueue call (``operation`` from :data:`SEND_OPERATIONS`)."""

    def claimed(self, jobs: Sequence[Job]) -> None:
        """A worker claimed ``jobs`` (their ``locked_at`` is the claim time)."""

    def process(self, job: Job) -> AbstractContextManager[ProcessScope]:
        """Around one attempt's task, in the thread or coroutine that runs it."""

    def settle(self, outcomes: Sequence[Outcome]) -> AbstractContextManager[object]:
        """Around the transaction that records a batch of attempt outcomes."""

    def settled(self, finished: Sequence[FinishedJob]) -> None:
        """Outcomes that were recorded (those whose lock was lost are left out)."""

    def cancelled(self, jobs: Sequence[Job]) -> None:
        """``cancel_jobs`` removed ``jobs``."""

    def exhausted(self, jobs: Sequence[Job]) -> None:
        """``permanently_fail_jobs`` exhausted ``jobs``."""


#: The installed hooks; None (the default) means nothing observes queuekit.
hooks: Hooks | None = None


def install(new_hooks: Hooks | None) -> None:
    """Make ``new_hooks`` the process-wide observer (None removes it)."""
    global hooks
    hooks = new_hooks


__all__ = ["SEND_OPERATIONS", "Hooks", "ProcessScope", "SendScope", "hooks", "install"]
