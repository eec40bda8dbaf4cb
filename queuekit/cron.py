"""Recurring jobs: cron entries, their slots, and the scheduler that enqueues them.

A :class:`CronJob` names a task and a 5-field schedule (minute, hour,
day of month, month, day of week) read in a time zone. Its state lives in
``queuekit_known_crontabs``: ``known_since`` (first sight) and
``last_execution``, the *slot* (the schedule's time, not the clock time)
that last fired. A slot fires through a compare-and-set on
``last_execution`` in the same transaction as the enqueue, so any number of
schedulers, on any number of machines, enqueue exactly one job per slot.
After downtime only the latest missed slot fires (one catch-up run).

The job gets the entry's identifier as its ``job_key`` in mode
``unsafe_dedupe``: while the previous run is still waiting or running, a
new slot adds nothing; an exhausted previous run counts as absent, so it
never blocks later slots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from queuekit.errors import InvalidArgumentError
from queuekit.manager import JobManager
from queuekit.types import JobSpec
from queuekit.validation import check_job_spec, check_required_name

log = logging.getLogger("queuekit.cron")

#: Options a cron entry may carry besides its payload.
CRON_OPTIONS = frozenset(
    {
        "timezone",
        "task_identifier",
        "queue_name",
        "priority",
        "max_attempts",
        "flags",
        "rate_limit_key",
    }
)
#: Longest a scheduler sleeps before looking again (other schedulers may have fired).
MAX_SLEEP = 30.0
#: Where :func:`check_schedule` looks for slots (a leap year, so February 29th counts).
_NEVER_PROBE = datetime(2024, 1, 1, tzinfo=UTC)


def parse_timezone(name: object) -> tzinfo:
    """The IANA time zone called ``name`` (``"UTC"``, ``"Europe/Paris"``...)."""
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError("timezone must be an IANA time zone name such as 'UTC'")
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgumentError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Paris'"
        ) from None


def check_schedule(schedule: object) -> str:
    """A valid 5-field cron expression, or InvalidArgumentError saying what is wrong."""
    if not isinstance(schedule, str) or len(schedule.split()) != 5:
        raise InvalidArgumentError(
            f"cron schedule {schedule!r} must have 5 fields: "
            "minute hour day-of-month month day-of-week (e.g. '*/5 * * * *')"
        )
    if not croniter.is_valid(schedule):
        raise InvalidArgumentError(f"invalid cron schedule {schedule!r}")
    normal = " ".join(schedule.split())
    try:
        # A date that never exists (February 31st) passes the syntax check and
        # would fail at every pass of every scheduler; find a slot each way now.
        next_slot(normal, _NEVER_PROBE)
        latest_slot(normal, _NEVER_PROBE)
    except CroniterError:
        raise InvalidArgumentError(
            f"cron schedule {schedule!r} never fires (no such day exists); "
            "check its day-of-month and month fields"
        ) from None
    return normal


def next_slot(schedule: str, after: datetime, zone: tzinfo = UTC) -> datetime:
    """The first slot strictly after ``after``, in UTC."""
    result: datetime = croniter(schedule, after.astimezone(zone)).get_next(datetime)
    return result.astimezone(UTC)


def latest_slot(schedule: str, at: datetime, zone: tzinfo = UTC) -> datetime:
    """The last slot at or before ``at``, in UTC."""
    # get_prev excludes its start, so start just after ``at`` to include a slot equal to it.
    start = (at + timedelta(microseconds=1)).astimezone(zone)
    result: datetime = croniter(schedule, start).get_prev(datetime)
    return result.astimezone(UTC)


def due_slot(
    schedule: str,
    zone: tzinfo,
    known_since: datetime,
    last_execution: datetime | None,
    now: datetime,
) -> datetime | None:
    """The slot to fire now (the latest one that passed unfired), or None when none is due.

    The first slot considered is the first after ``last_execution`` or, for an
    entry that never fired, after ``known_since``. Several missed slots
    collapse into the latest of them.
    """
    base = last_execution if last_execution is not None else known_since
    if next_slot(schedule, base, zone) > now:
        return None
    return latest_slot(schedule, now, zone)


@dataclass(frozen=True)
class CronJob:
    """A recurring job: ``(identifier, schedule, payload, options)``.

    ``identifier`` names the entry and is the job key of its jobs (and their
    task identifier unless ``options["task_identifier"]`` says otherwise).
    ``options`` may hold ``timezone`` (IANA name, default ``"UTC"``),
    ``task_identifier``, ``queue_name``, ``priority``, ``max_attempts``,
    ``flags`` and ``rate_limit_key``.
    """

    identifier: str
    schedule: str
    payload: Mapping[str, Any] | None = None
    options: Mapping[str, Any] | None = None
    zone: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_required_name(self.identifier, name="cron identifier")
        object.__setattr__(self, "schedule", check_schedule(self.schedule))
        if self.options is not None and not isinstance(self.options, Mapping):
            raise InvalidArgumentError(
                f"cron options for {self.identifier!r} must be a mapping (dict), "
                f"not {type(self.options).__name__}"
            )
        options = dict(self.options or {})
        unknown = sorted(set(options) - CRON_OPTIONS, key=repr)
        if unknown:
            raise InvalidArgumentError(
                f"unknown cron option {unknown[0]!r} for {self.identifier!r}; "
                f"use {', '.join(sorted(CRON_OPTIONS))}"
            )
        object.__setattr__(self, "zone", parse_timezone(options.get("timezone", "UTC")))
        # Checks payload, queue, priority, attempts, flags and key now, not at the first slot.
        check_job_spec(self.job_spec())

    @property
    def task_identifier(self) -> str:
        """The task its jobs run."""
        return str((self.options or {}).get("task_identifier", self.identifier))

    def job_spec(self) -> JobSpec:
        """What one firing enqueues."""
        skipped = ("timezone", "task_identifier")
        options = {k: v for k, v in (self.options or {}).items() if k not in skipped}
        if "flags" in options and isinstance(options["flags"], list):
            options["flags"] = tuple(options["flags"])
        return JobSpec(
            self.task_identifier,
            dict(self.payload) if isinstance(self.payload, Mapping) else self.payload or {},
            job_key=self.identifier,
            job_key_mode="unsafe_dedupe",
            **options,
        )


CronEntry = CronJob | Sequence[Any]


def cron_job(entry: object) -> CronJob:
    """A CronJob from a CronJob or an ``(identifier, schedule[, payload[, options]])`` tuple."""
    if isinstance(entry, CronJob):
        return entry
    if isinstance(entry, list | tuple) and 2 <= len(entry) <= 4:
        return CronJob(*entry)
    raise InvalidArgumentError(
        "a cron entry must be a CronJob or a tuple (identifier, schedule, payload, options)"
    )


def cron_jobs(entries: Iterable[object]) -> list[CronJob]:
    """Checked cron entries, with unique identifiers."""
    if isinstance(entries, str | bytes):
        raise InvalidArgumentError("crontabs must be a list of cron entries")
    result = [cron_job(entry) for entry in entries]
    seen: set[str] = set()
    for job in result:
        if job.identifier in seen:
            raise InvalidArgumentError(f"cron identifier {job.identifier!r} is declared twice")
        seen.add(job.identifier)
    return result


@dataclass(frozen=True)
class CronFiring:
    """One slot of one entry that this scheduler fired."""

    identifier: str
    slot: datetime
    job_id: UUID
    task_identifier: str


class CronScheduler:
    """Enqueues each entry's job once per slot, cooperating with any other schedulers.

    ``on_fired`` and ``on_error`` let an owner (a worker) turn firings and
    failures into events and counters.
    """

    def __init__(
        self,
        manager: JobManager,
        entries: Iterable[object],
        *,
        on_fired: Callable[[CronFiring], None] | None = None,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self.manager = manager
        self.entries = cron_jobs(entries)
        self.fired = 0
        self.errors = 0
        self._on_fired = on_fired
        self._on_error = on_error
        self._registered = False
        self._next_due: datetime | None = None

    def register(self) -> None:
        """Create the state rows of entries never seen before."""
        identifiers = [entry.identifier for entry in self.entries]
        if identifiers:
            self.manager.ensure_crontabs(identifiers)
        self._registered = True

    def fire_due(self) -> list[CronFiring]:
        """Fire every entry whose slot is due; entries fail independently.

        Returns what this scheduler fired (slots another scheduler took are
        not included). Sets :attr:`next_due` for :meth:`run_until`.
        """
        if not self.entries:
            return []
        if not self._registered:
            self.register()
        identifiers = [entry.identifier for entry in self.entries]
        now, states = self.manager.crontab_states(identifiers)
        if len(states) < len(identifiers):
            self.register()  # a row was removed behind our back; it starts afresh
            now, states = self.manager.crontab_states(identifiers)
        fired: list[CronFiring] = []
        upcoming: list[datetime] = []
        for entry in self.entries:
            state = states.get(entry.identifier)
            if state is None:
                continue
            known_since, last_execution = state
            try:
                slot = due_slot(entry.schedule, entry.zone, known_since, last_execution, now)
                if slot is not None:
                    firing = self._fire(entry, last_execution, slot)
                    if firing is not None:
                        fired.append(firing)
                        self.fired += 1
                        if self._on_fired is not None:
                            self._on_fired(firing)
                    last_execution = slot
                base = last_execution if last_execution is not None else known_since
                upcoming.append(next_slot(entry.schedule, base, entry.zone))
            except Exception as error:
                self.errors += 1
                log.exception("cron entry %r failed to fire", entry.identifier)
                if self._on_error is not None:
                    self._on_error(entry.identifier, error)
                upcoming.append(now + timedelta(seconds=MAX_SLEEP))
        self._next_due = min(upcoming) - now + datetime.now(UTC) if upcoming else None
        return fired

    def _fire(self, entry: CronJob, previous: datetime | None, slot: datetime) -> CronFiring | None:
        spec = entry.job_spec()
        job = self.manager.fire_cron_slot(entry.identifier, previous, slot, spec)
        if job is None:
            return None
        log.info("cron %s fired for slot %s (job %s)", entry.identifier, slot, job.id)
        return CronFiring(entry.identifier, slot, job.id, spec.task_identifier)

    @property
    def next_due(self) -> datetime | None:
        """Local wall-clock estimate of the next slot, after :meth:`fire_due` ran."""
        return self._next_due

    def run_until(self, stop: threading.Event) -> None:
        """Fire slots as they come until ``stop`` is set; never raises."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.fire_due()
                backoff = 0.5
                wait = MAX_SLEEP
                if self._next_due is not None:
                    wait = (self._next_due - datetime.now(UTC)).total_seconds()
                # A slot just passed may not be visible on a lagging database clock yet.
                wait = min(max(wait, 0.05), MAX_SLEEP)
            except Exception as error:
                self.errors += 1
                log.warning("cron scheduler cannot reach the database: %s", error)
                if self._on_error is not None:
                    self._on_error("*", error)
                wait = backoff
                backoff = min(backoff * 2, MAX_SLEEP)
            stop.wait(wait)


__all__ = [
    "CronFiring",
    "CronJob",
    "CronScheduler",
    "check_schedule",
    "cron_job",
    "cron_jobs",
    "due_slot",
    "latest_slot",
    "next_slot",
]
