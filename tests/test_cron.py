"""Cron (reference §5.4, §7.9) with W21 fixed: one job per slot across racing schedulers.

Slots are made due by moving an entry's state into the past, as if the
scheduler had been down, rather than by waiting for the clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from queuekit import (
    CronJob,
    Event,
    InvalidArgumentError,
    JobContext,
    JobError,
    JobManager,
    Worker,
)
from queuekit.cron import CronScheduler, cron_jobs, due_slot, latest_slot, next_slot
from queuekit.models import known_crontabs


def set_state(
    engine: sa.Engine,
    identifier: str,
    *,
    known_since: datetime,
    last_execution: datetime | None = None,
) -> None:
    """Put an entry's state where a scheduler that was down would find it."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(known_crontabs)
            .where(known_crontabs.c.identifier == identifier)
            .values(known_since=known_since, last_execution=last_execution)
        )


def last_execution(engine: sa.Engine, identifier: str) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            sa.select(known_crontabs.c.last_execution).where(
                known_crontabs.c.identifier == identifier
            )
        ).scalar_one()
        return value


# -- slot arithmetic (no database) ------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "base", "zone", "expected"),
    [
        ("0 * * * *", datetime(2024, 1, 1, 12, 30, tzinfo=UTC), "UTC", datetime(2024, 1, 1, 13)),
        (
            "* * * * *",
            datetime(2024, 1, 1, 8, 4, 10, tzinfo=UTC),
            "UTC",
            datetime(2024, 1, 1, 8, 5),
        ),
        ("0 2 * * *", datetime(2024, 1, 1, 3, tzinfo=UTC), "UTC", datetime(2024, 1, 2, 2)),
        (
            "0 6 * * *",
            datetime(2024, 6, 1, 5, tzinfo=UTC),
            "America/New_York",
            datetime(2024, 6, 1, 10),
        ),
        ("0 0 1 1 *", datetime(2020, 1, 1, tzinfo=UTC), "UTC", datetime(2021, 1, 1)),
    ],
)
def test_next_slot_examples(schedule: str, base: datetime, zone: str, expected: datetime) -> None:
    tz = UTC if zone == "UTC" else ZoneInfo(zone)
    assert next_slot(schedule, base, tz) == expected.replace(tzinfo=UTC)


def test_latest_slot_includes_an_exact_match() -> None:
    at = datetime(2024, 6, 1, 12, 5, tzinfo=UTC)
    assert latest_slot("*/5 * * * *", at) == at
    assert latest_slot("*/5 * * * *", at + timedelta(seconds=299)) == at
    assert latest_slot("*/5 * * * *", at - timedelta(microseconds=1)) == at - timedelta(minutes=5)


def test_due_slot_collapses_missed_slots_into_one() -> None:
    known = datetime(2024, 6, 1, 10, 2, tzinfo=UTC)
    now = datetime(2024, 6, 1, 12, 7, tzinfo=UTC)
    # Never fired: the first slot after known_since is due; the latest passed slot fires.
    assert due_slot("*/5 * * * *", UTC, known, None, now) == datetime(2024, 6, 1, 12, 5, tzinfo=UTC)
    fired = datetime(2024, 6, 1, 12, 5, tzinfo=UTC)
    assert due_slot("*/5 * * * *", UTC, known, fired, now) is None
    # A yearly schedule registered just now is not due.
    assert due_slot("0 0 1 1 *", UTC, now, None, now) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (("e", "* * * *"), "5 fields"),
        (("e", "* * * * * *"), "5 fields"),
        (("e", "61 * * * *"), "invalid cron schedule"),
        (("e", "* * * * *", {}, {"timezone": "Mars/Olympus"}), "unknown timezone"),
        (("e", "* * * * *", {}, {"colour": "red"}), "unknown cron option"),
        (("e", "* * * * *", ["not", "an", "object"]), "Invalid payload"),
        (("e", "* * * * *", {}, {"max_attempts": 0}), "max_attempts"),
        (("", "* * * * *"), "cron identifier"),
        ("e * * * * *", "CronJob or a tuple"),
    ],
)
def test_bad_cron_entries_are_refused(entry: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        cron_jobs([entry])


def test_duplicate_cron_identifiers_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="declared twice"):
        cron_jobs([("a", "* * * * *"), CronJob("a", "0 * * * *")])


# -- firing against the database ----------------------------------------------------------


def test_due_entry_fires_one_job_with_its_options(manager: JobManager) -> None:
    entry = CronJob(
        "report",
        "*/5 * * * *",
        {"kind": "daily"},
        {"priority": 3, "queue_name": "reports", "max_attempts": 2, "flags": ["cron"]},
    )
    scheduler = CronScheduler(manager, [entry])
    scheduler.register()
    now = manager.now()
    set_state(manager.engine, "report", known_since=now - timedelta(hours=3))

    [firing] = scheduler.fire_due()
    assert firing.identifier == "report" and firing.task_identifier == "report"
    # The slot recorded is the schedule's time, not the clock's.
    assert latest_slot("*/5 * * * *", now) <= firing.slot <= manager.now()
    assert firing.slot.minute % 5 == 0 and firing.slot.second == firing.slot.microsecond == 0
    job = manager.get_job(firing.job_id)
    assert job is not None
    assert job.payload == {"kind": "daily"} and job.priority == 3
    assert job.queue_name == "reports" and job.max_attempts == 2 and job.flags == ("cron",)
    assert (job.job_key, job.job_key_mode) == ("report", "unsafe_dedupe")
    assert last_execution(manager.engine, "report") == firing.slot
    # The slot is spent: nothing more fires, and exactly one job exists.
    assert scheduler.fire_due() == []
    assert len(manager.list_jobs(task_identifier="report")) == 1
    assert scheduler.fired == 1


def test_fresh_entry_waits_for_its_first_slot(manager: JobManager) -> None:
    scheduler = CronScheduler(manager, [("yearly", "0 0 1 1 *")])
    assert scheduler.fire_due() == []
    assert manager.list_jobs() == []
    assert last_execution(manager.engine, "yearly") is None


def test_catch_up_after_downtime_fires_once(manager: JobManager) -> None:
    scheduler = CronScheduler(manager, [("tick", "* * * * *", {"n": 1}, {"task_identifier": "t"})])
    scheduler.register()
    now = manager.now()
    # Down for two hours: 120 slots missed, one catch-up run.
    set_state(
        manager.engine,
        "tick",
        known_since=now - timedelta(days=1),
        last_execution=now - timedelta(hours=2),
    )
    fired = scheduler.fire_due()
    assert len(fired) == 1 and fired[0].task_identifier == "t"
    assert fired[0].slot >= now - timedelta(minutes=1)
    assert scheduler.fire_due() == []
    assert [job.task_identifier for job in manager.list_jobs()] == ["t"]


def test_racing_schedulers_fire_each_slot_once(
    manager: JobManager, engine: sa.Engine, dialect: str
) -> None:
    """W21: many schedulers, each in its own engine, fire a due slot exactly once."""
    engines = [sa.create_engine(engine.url) for _ in range(4)]
    try:
        schedulers = [
            CronScheduler(JobManager(e), [("race", "* * * * *", {}, {"max_attempts": 1})])
            for e in engines
        ]
        schedulers[0].register()
        for round_number in range(3):
            now = manager.now()
            set_state(
                engine,
                "race",
                known_since=now - timedelta(days=1),
                last_execution=now - timedelta(minutes=10 + round_number),
            )
            barrier = threading.Barrier(len(schedulers))
            results: list[int] = []
            lock = threading.Lock()

            def fire(
                scheduler: CronScheduler,
                barrier: threading.Barrier = barrier,
                results: list[int] = results,
                lock: threading.Lock = lock,
            ) -> None:
                barrier.wait()
                fired = scheduler.fire_due()
                with lock:
                    results.append(len(fired))

            threads = [threading.Thread(target=fire, args=(s,)) for s in schedulers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(results) == [0] * (len(schedulers) - 1) + [1], round_number
            assert sum(s.errors for s in schedulers) == 0
            # Finish this round's job so the next slot's job is a new one.
            claimed = manager.get_jobs("w", batch_size=10)
            assert len(claimed) == 1
            manager.complete_jobs("w", claimed, 1)
        assert sum(s.fired for s in schedulers) == 3
    finally:
        for e in engines:
            e.dispose()


def test_exhausted_cron_job_does_not_block_later_slots(manager: JobManager) -> None:
    scheduler = CronScheduler(manager, [("nightly", "0 3 * * *", {}, {"max_attempts": 1})])
    scheduler.register()
    now = manager.now()
    set_state(manager.engine, "nightly", known_since=now - timedelta(days=3))
    [first] = scheduler.fire_due()
    claimed = manager.get_jobs("w")
    manager.fail_jobs("w", [JobError(claimed[0], "broken")], 1)
    dead = manager.get_job(first.job_id)
    assert dead is not None and dead.status == "exhausted"

    # The next slot passes while the exhausted job is still there.
    set_state(
        manager.engine,
        "nightly",
        known_since=now - timedelta(days=3),
        last_execution=first.slot - timedelta(days=1),
    )
    [second] = scheduler.fire_due()
    assert second.job_id != first.job_id
    fresh = manager.get_job(second.job_id)
    assert fresh is not None and fresh.status == "available" and fresh.job_key == "nightly"
    kept = manager.get_job(first.job_id)
    assert kept is not None and kept.status == "exhausted" and kept.job_key is None


def test_pending_cron_job_absorbs_the_next_slot(manager: JobManager) -> None:
    scheduler = CronScheduler(manager, [("sync", "*/10 * * * *")])
    scheduler.register()
    now = manager.now()
    set_state(manager.engine, "sync", known_since=now - timedelta(hours=1))
    [first] = scheduler.fire_due()
    set_state(
        manager.engine,
        "sync",
        known_since=now - timedelta(hours=1),
        last_execution=first.slot - timedelta(minutes=10),
    )
    [second] = scheduler.fire_due()
    assert second.job_id == first.job_id  # still queued: no second job
    assert len(manager.list_jobs()) == 1


def test_invalid_payload_for_the_task_schema_does_not_spend_the_slot(
    manager: JobManager,
) -> None:
    manager.register_task(
        "typed", schema={"type": "object", "required": ["to"], "properties": {"to": {}}}
    )
    errors: list[tuple[str, BaseException]] = []
    scheduler = CronScheduler(
        manager,
        [("typed", "* * * * *", {"wrong": 1}), ("fine", "* * * * *")],
        on_error=lambda identifier, error: errors.append((identifier, error)),
    )
    scheduler.register()
    now = manager.now()
    for identifier in ("typed", "fine"):
        set_state(manager.engine, identifier, known_since=now - timedelta(hours=1))
    fired = scheduler.fire_due()
    assert [f.identifier for f in fired] == ["fine"]
    assert scheduler.errors == 1
    assert errors[0][0] == "typed" and "Invalid payload" in str(errors[0][1])
    assert last_execution(manager.engine, "typed") is None


def test_worker_runs_its_cron_entries(manager: JobManager) -> None:
    ran: list[dict[str, Any]] = []
    events: list[Event] = []

    def heartbeat_task(payload: dict[str, Any], _ctx: JobContext) -> None:
        ran.append(payload)

    worker = Worker(
        manager,
        {"ping": heartbeat_task},
        maintenance=False,
        crontabs=[("ping", "*/15 * * * *", {"from": "cron"})],
        worker_id="w-cron",
    )
    worker.on("cron/fired", events.append)
    assert worker.cron is not None
    worker.cron.register()
    set_state(manager.engine, "ping", known_since=manager.now() - timedelta(hours=1))
    stats = worker.drain()
    assert stats.completed == 1
    assert ran == [{"from": "cron"}]
    [event] = events
    assert event.data["identifier"] == "ping" and event.data["task_identifier"] == "ping"
    assert event.data["worker_id"] == "w-cron"
    assert isinstance(event.data["slot"], datetime)
    [record] = manager.query_history(task_identifier="ping")
    assert record.job_id == event.data["job_id"] and record.status == "completed"
