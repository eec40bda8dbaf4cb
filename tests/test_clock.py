"""The test-only clock hook of the dialect seam moves every reading of the database clock."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from clock import MovableClock, movable_clock
from conformance import WORKER

from queuekit import JobManager


def test_moving_the_clock_moves_what_the_manager_reads_and_writes(
    manager: JobManager, clock: MovableClock
) -> None:
    before = manager.now()
    clock.advance(timedelta(hours=2))
    moved = manager.now()
    assert timedelta(hours=2) <= moved - before < timedelta(hours=2, minutes=5)
    # The enqueue statement is built once and reused: it follows the clock all the same.
    first = manager.add_job("mail", {})
    clock.advance(timedelta(hours=1))
    second = manager.add_job("mail", {})
    assert (
        timedelta(hours=1) <= second.created_at - first.created_at < timedelta(hours=1, minutes=5)
    )
    assert second.created_at >= moved + timedelta(hours=1)


def test_a_delayed_job_becomes_due_when_the_clock_passes_its_run_at(
    manager: JobManager, clock: MovableClock
) -> None:
    job = manager.add_job("mail", {}, run_at=manager.now() + timedelta(minutes=30))
    assert manager.get_jobs(WORKER) == []
    clock.advance(timedelta(minutes=31))
    assert [j.id for j in manager.get_jobs(WORKER)] == [job.id]


def test_the_hook_is_per_manager_and_unset_by_default(engine: sa.Engine) -> None:
    plain = JobManager(engine)
    moved = JobManager(engine)
    assert plain.dialect.clock_offset_ms is None
    movable_clock(moved).advance(timedelta(days=1))
    assert moved.now() - plain.now() > timedelta(hours=23)
