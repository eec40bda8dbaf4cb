"""queuekit's OpenTelemetry instruments, and the one backlog collector per database.

Counters and histograms are recorded where things happen (enqueue, claim,
outcome write, cancel) by every process. Backlog gauges read the database,
so only the process given ``collect_backlog=`` reads them, through the same
index-only queries as :meth:`JobManager.stats`, and at most once per
``min_interval`` however often it is scraped: a hundred workers never
count the backlog a hundred times.

Attributes are the task identifier and the outcome only: never job ids,
payload values or queue names, whose number has no bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation

from queuekit.otel import names

if TYPE_CHECKING:
    from queuekit.manager import JobManager
    from queuekit.repository import FinishedJob
    from queuekit.types import Job, QueueStats

log = logging.getLogger("queuekit.otel")

Attributes = dict[str, str]
GaugeCallback = Callable[[CallbackOptions], Iterable[Observation]]


class Instruments:
    """The counters and histograms, recorded from the hooks."""

    def __init__(self, meter: Meter) -> None:
        def jobs(name: str, description: str) -> Counter:
            return meter.create_counter(name, unit="{job}", description=description)

        def seconds(name: str, description: str, buckets: Sequence[float]) -> Histogram:
            return meter.create_histogram(
                name, unit="s", description=description, explicit_bucket_boundaries_advisory=buckets
            )

        self.enqueued = jobs(names.ENQUEUED, "Jobs stored by add_job(s), replay and cron.")
        self.completed = jobs(names.COMPLETED, "Attempts recorded as completed.")
        self.failed = jobs(
            names.FAILED, "Attempts recorded as failed or partly successful (outcome says which)."
        )
        self.exhausted = jobs(
            names.EXHAUSTED, "Jobs exhausted: out of attempts, or permanently failed."
        )
        self.cancelled = jobs(names.CANCELLED, "Jobs removed by cancel_jobs.")
        self.attempt_duration = seconds(
            names.ATTEMPT_DURATION, "How long an attempt's task ran.", names.DURATION_BUCKETS
        )
        self.queue_time = seconds(
            names.QUEUE_TIME,
            "From when a job was due (run_at) to when a worker claimed it.",
            names.QUEUE_TIME_BUCKETS,
        )
        # Attribute dicts are reused: one per task identifier (and outcome).
        self._tasks: dict[str, Attributes] = {}
        self._outcomes: dict[tuple[str, str], Attributes] = {}

    def task(self, task_identifier: str) -> Attributes:
        """The attribute set of a task identifier."""
        attributes = self._tasks.get(task_identifier)
        if attributes is None:
            attributes = self._tasks.setdefault(task_identifier, {names.TASK: task_identifier})
        return attributes

    def task_outcome(self, task_identifier: str, outcome: str) -> Attributes:
        """The attribute set of a task identifier and an outcome."""
        key = (task_identifier, outcome)
        attributes = self._outcomes.get(key)
        if attributes is None:
            attributes = self._outcomes.setdefault(
                key, {names.TASK: task_identifier, names.OUTCOME: outcome}
            )
        return attributes

    def count_jobs(self, counter: Counter, jobs: Iterable[Job]) -> None:
        """Add each job to ``counter`` under its task identifier."""
        per_task: dict[str, int] = {}
        for job in jobs:
            per_task[job.task_identifier] = per_task.get(job.task_identifier, 0) + 1
        for task, n in per_task.items():
            counter.add(n, self.task(task))

    def claimed(self, jobs: Sequence[Job]) -> None:
        """Queue time of each claimed job: claim time minus due time, both database clock."""
        record = self.queue_time.record
        task = self.task
        for job in jobs:
            if job.locked_at is not None:
                record(
                    max(0.0, (job.locked_at - job.run_at).total_seconds()),
                    task(job.task_identifier),
                )

    def settled(self, finished: Sequence[FinishedJob]) -> None:
        """Count recorded outcomes and record their durations, grouped per task and outcome.

        One ``add`` per counter and attribute set; the durations of a group are
        recorded one by one (a histogram takes one value a call) under the
        group's one attribute dict.
        """
        durations: dict[tuple[str, str], list[int]] = {}
        exhausted: dict[str, int] = {}
        for done in finished:
            outcome = done.outcome
            task = outcome.job.task_identifier
            group = durations.get((task, outcome.kind))
            if group is None:
                group = durations[task, outcome.kind] = []
            group.append(outcome.execution_time_ms)
            if done.exhausted:
                exhausted[task] = exhausted.get(task, 0) + 1
        record = self.attempt_duration.record
        for (task, kind), group in durations.items():
            attributes = self.task_outcome(task, kind)
            for ms in group:
                record(ms / 1000.0, attributes)
            if kind == "completed":
                self.completed.add(len(group), self.task(task))
            else:
                self.failed.add(len(group), attributes)
        for task, n in exhausted.items():
            self.exhausted.add(n, self.task(task))


class BacklogCollector:
    """Backlog gauges read from one database, at most once per ``min_interval`` seconds.

    Observable gauges: jobs available, locked and exhausted per task
    identifier, and the age of the oldest job waiting to run. One
    ``stats()`` call serves all four callbacks of a collection.
    """

    def __init__(self, manager: JobManager, meter: Meter, *, min_interval: float) -> None:
        self.manager = manager
        self.min_interval = min_interval
        self.stopped = False
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._stats: QueueStats | None = None
        for name, status in (
            (names.BACKLOG_AVAILABLE, "available"),
            (names.BACKLOG_LOCKED, "locked"),
            (names.BACKLOG_EXHAUSTED, "exhausted"),
        ):
            meter.create_observable_gauge(
                name,
                callbacks=[self._counts(status)],
                unit="{job}",
                description=f"Jobs {status} now, per task identifier.",
            )
        meter.create_observable_gauge(
            names.BACKLOG_OLDEST_AGE,
            callbacks=[self._oldest_age],
            unit="s",
            description="How long the oldest job due to run has been waiting (0 if none).",
        )

    def stop(self) -> None:
        """Report nothing more (instruments cannot be unregistered from a meter)."""
        self.stopped = True

    def snapshot(self) -> QueueStats | None:
        """The latest stats, read again if older than ``min_interval``; None if unreadable."""
        with self._lock:
            if self.stopped:
                return None
            now = time.monotonic()
            if now - self._read_at >= self.min_interval:
                self._read_at = now
                try:
                    self._stats = self.manager.stats()
                except Exception as error:  # a scrape must not fail with the database
                    log.warning("queuekit backlog metrics: cannot read stats(): %s", error)
                    self._stats = None
            return self._stats

    def _counts(self, status: str) -> GaugeCallback:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            stats = self.snapshot()
            if stats is None:
                return []
            return [
                Observation(counts.get(status, 0), {names.TASK: task})
                for task, counts in sorted(stats.by_task.items())
            ]

        return observe

    def _oldest_age(self, options: CallbackOptions) -> Iterable[Observation]:
        stats = self.snapshot()
        if stats is None:
            return []
        age = stats.oldest_available_age
        return [Observation(0.0 if age is None else age.total_seconds())]


__all__ = ["BacklogCollector", "Instruments"]
