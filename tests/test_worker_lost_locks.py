"""Lost locks on every dialect (SPEC §10): a heartbeat that finds a job's lock gone stops it.

Each way a lock can be taken away from a running attempt —
``permanently_fail_jobs``, ``force_unlock_jobs``, ``reset_locked_jobs``,
and a re-claim by another worker — sets ``ctx.cancelled`` within one
heartbeat period, emits ``job/lock-lost``, and drops the attempt's late
outcome instead of writing it over what the new owner or the operator did.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from queuekit import Event, Job, JobContext, JobManager, Worker
from queuekit.durations import parse_duration
from queuekit.maintenance import heartbeat_interval

PATIENCE = 30.0
#: Short locks so heartbeats come every 0.4 s; maintenance is off, so nothing resets them.
LOCK_TIMEOUT = "2 seconds"
HEARTBEAT = heartbeat_interval(parse_duration(LOCK_TIMEOUT))
#: Room for the heartbeat's own round trip on a busy machine.
SLACK = 1.0


@dataclass
class Scenario:
    """A worker running one blocking task, and what the task and listeners saw."""

    worker: Worker
    job: Job
    events: list[Event] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    stopped_at: list[float] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)


def start_blocking_worker(manager: JobManager, *, max_attempts: int) -> Scenario:
    """Start a worker whose task waits for ``ctx.cancelled``, then returns normally."""
    job = manager.add_job("long", {"n": 1}, max_attempts=max_attempts)
    holder: list[Scenario] = []

    def long(payload: dict[str, Any], ctx: JobContext) -> str:
        scenario = holder[0]
        scenario.calls.append(payload)
        scenario.started.set()
        ctx.cancelled.wait(PATIENCE)
        scenario.stopped_at.append(time.monotonic())
        return "finished anyway"  # a late outcome the worker must drop

    # A long poll: after losing the lock the worker does not claim the job again itself.
    worker = Worker(
        manager,
        {"long": long},
        maintenance=False,
        poll_interval="1 minute",
        lock_timeout=LOCK_TIMEOUT,
        concurrency=1,
    )
    scenario = Scenario(worker, job)
    holder.append(scenario)
    worker.on("*", scenario.events.append)
    worker.start()
    assert scenario.started.wait(PATIENCE)
    return scenario


def take_lock_and_wait(scenario: Scenario, take_away: Callable[[], object]) -> float:
    """Take the lock away; return how long the task took to notice, then stop the worker."""
    taken_at = time.monotonic()
    take_away()
    deadline = time.monotonic() + PATIENCE
    while not scenario.stopped_at and time.monotonic() < deadline:
        time.sleep(0.01)
    scenario.worker.stop()
    assert scenario.stopped_at, "the task never saw ctx.cancelled"
    return scenario.stopped_at[0] - taken_at


def assert_lock_lost_reported(scenario: Scenario) -> None:
    names = [e.name for e in scenario.events if e.data.get("job_id") == scenario.job.id]
    assert "job/lock-lost" in names
    assert "job/completed" not in names and "job/failed" not in names
    [lost] = [e for e in scenario.events if e.name == "job/lock-lost"]
    assert lost.data["task_identifier"] == "long" and lost.data["attempt"] == 1
    assert lost.data["worker_id"] == scenario.worker.worker_id
    assert scenario.worker.stats.completed == 0
    assert len(scenario.calls) == 1


def statuses_by_attempt(manager: JobManager, job: Job) -> list[tuple[int, str]]:
    return sorted((h.attempt_number, h.status) for h in manager.job_history(job.id))


def test_permanently_failed_job_is_cancelled_and_its_late_result_dropped(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    scenario = start_blocking_worker(manager, max_attempts=3)
    job = scenario.job
    noticed = take_lock_and_wait(
        scenario, lambda: manager.permanently_fail_jobs([job.id], "operator gave up")
    )

    assert noticed < HEARTBEAT + SLACK
    assert_lock_lost_reported(scenario)
    left = manager.get_job(job.id)
    assert left is not None and left.status == "exhausted"
    [record] = manager.job_history(job.id)
    assert record.status == "failed" and record.worker_id == scenario.worker.worker_id


def test_force_unlocked_job_is_cancelled_and_its_late_result_dropped(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    scenario = start_blocking_worker(manager, max_attempts=1)
    job = scenario.job
    noticed = take_lock_and_wait(
        scenario, lambda: manager.force_unlock_jobs([scenario.worker.worker_id])
    )

    assert noticed < HEARTBEAT + SLACK
    assert_lock_lost_reported(scenario)
    left = manager.get_job(job.id)
    assert left is not None and left.status == "exhausted" and left.locked_by is None
    assert [h.status for h in manager.job_history(job.id)] == ["failed"]


def test_reset_job_is_cancelled_and_its_late_result_dropped(clean_manager: JobManager) -> None:
    manager = clean_manager
    scenario = start_blocking_worker(manager, max_attempts=1)
    job = scenario.job
    resets: list[int] = []
    noticed = take_lock_and_wait(
        scenario, lambda: resets.append(manager.reset_locked_jobs(lock_timeout=0))
    )

    assert resets == [1]
    assert noticed < HEARTBEAT + SLACK
    assert_lock_lost_reported(scenario)
    left = manager.get_job(job.id)
    assert left is not None and left.status == "exhausted"
    [record] = manager.job_history(job.id)
    assert record.status == "failed" and record.error_message is not None


def test_job_claimed_by_another_worker_keeps_the_new_owners_outcome(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    scenario = start_blocking_worker(manager, max_attempts=2)
    job = scenario.job
    thief: list[Job] = []

    def reset_and_reclaim() -> None:
        assert manager.reset_locked_jobs(lock_timeout=0) == 1
        thief.extend(manager.get_jobs("other-worker"))

    noticed = take_lock_and_wait(scenario, reset_and_reclaim)

    assert [j.id for j in thief] == [job.id]
    assert noticed < HEARTBEAT + SLACK
    assert_lock_lost_reported(scenario)
    # The first attempt's late "completed" was not written: the new owner still holds the job.
    left = manager.get_job(job.id)
    assert left is not None and left.status == "locked" and left.locked_by == "other-worker"
    assert statuses_by_attempt(manager, job) == [(1, "failed"), (2, "started")]
    assert manager.complete_jobs("other-worker", thief, 5) != []
    assert statuses_by_attempt(manager, job) == [(1, "failed"), (2, "completed")]


def test_async_task_is_cancelled_for_real_when_its_lock_is_lost(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    job = manager.add_job("along", {}, max_attempts=1)
    started = threading.Event()
    inside: list[str] = []

    async def along(_payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            inside.append(f"cancelled, ctx.cancelled={ctx.cancelled.is_set()}")
            raise

    events: list[Event] = []
    worker = Worker(
        manager,
        {"along": along},
        maintenance=False,
        poll_interval="1 minute",
        lock_timeout=LOCK_TIMEOUT,
    )
    worker.on("*", events.append)
    worker.start()
    try:
        assert started.wait(PATIENCE)
        manager.force_unlock_jobs([worker.worker_id])
        deadline = time.monotonic() + PATIENCE
        while not inside and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
    assert inside == ["cancelled, ctx.cancelled=True"]
    assert [e.name for e in events if e.data.get("job_id") == job.id] == [
        "job/claimed",
        "job/lock-lost",
    ]
    assert [h.status for h in manager.job_history(job.id)] == ["failed"]


def test_a_claimed_job_that_loses_its_lock_before_starting_never_runs(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    first = manager.add_job("hold", {"n": 0})
    second = manager.add_job("hold", {"n": 1})
    release = threading.Event()
    ran: list[int] = []

    def hold(payload: dict[str, Any], _ctx: JobContext) -> None:
        ran.append(payload["n"])
        release.wait(PATIENCE)

    events: list[Event] = []
    worker = Worker(
        manager,
        {"hold": hold},
        maintenance=False,
        poll_interval="1 minute",
        lock_timeout=LOCK_TIMEOUT,
        concurrency=1,
        prefetch=1,
    )
    worker.on("job/lock-lost", events.append)
    worker.start()
    try:
        deadline = time.monotonic() + PATIENCE
        while (worker.stats.claimed < 2 or not ran) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ran) == 1 and worker.stats.claimed == 2
        running, waiting = (first, second) if ran == [0] else (second, first)
        manager.permanently_fail_jobs([waiting.id], "not wanted any more")
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        release.set()
        worker.stop()
    assert len(ran) == 1
    assert [e.data["job_id"] for e in events] == [waiting.id]
    assert [h.status for h in manager.job_history(running.id)] == ["completed"]
    left = manager.get_job(waiting.id)
    assert left is not None and left.status == "exhausted"


def test_heartbeat_reports_which_claimed_jobs_are_still_held(clean_manager: JobManager) -> None:
    manager = clean_manager
    manager.add_job("a", {}, max_attempts=1)
    manager.add_job("b", {}, max_attempts=1)
    claimed = manager.get_jobs("me", batch_size=2)
    assert len(claimed) == 2
    assert manager.heartbeat("me", claimed) == claimed
    manager.permanently_fail_jobs([claimed[0].id], "gone")
    assert manager.heartbeat("me", claimed) == [claimed[1]]
    assert manager.heartbeat("someone-else", claimed) == []
    assert manager.heartbeat("me", []) == []
