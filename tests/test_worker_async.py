"""Async tasks on every dialect (SPEC §10): ``async def`` tasks run on the worker's loop.

They share the worker's ``concurrency`` slots with thread tasks, need no
thread each, and are cancelled for real (``asyncio.CancelledError`` inside)
on timeout and at the end of a shutdown's grace. A plain function that
returns an awaitable fails its attempt instead of being recorded as
completed.
"""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import pytest

from queuekit import (
    Event,
    InvalidArgumentError,
    JobContext,
    JobManager,
    JobSpec,
    PartialSuccess,
    Worker,
)
from queuekit.worker import AwaitableReturnedError, JobTimeoutError, ShutdownError

PATIENCE = 30.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail the test if it never does."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


def quiet_worker(manager: JobManager, tasks: dict[str, Any], **options: Any) -> Worker:
    """A worker without maintenance, polling fast, for tests."""
    options.setdefault("maintenance", False)
    options.setdefault("poll_interval", "0.05 seconds")
    return Worker(manager, tasks, **options)


def test_async_and_thread_tasks_complete_with_payload_and_context(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    added = manager.add_jobs(
        [JobSpec("aecho", {"n": n}) for n in range(20)]
        + [JobSpec("secho", {"n": n}) for n in range(20, 30)]
    )
    seen: dict[int, tuple[str, JobContext, str]] = {}

    async def aecho(payload: dict[str, Any], ctx: JobContext) -> str:
        await asyncio.sleep(0.01)
        seen[payload["n"]] = ("async", ctx, threading.current_thread().name)
        return "ignored"

    def secho(payload: dict[str, Any], ctx: JobContext) -> None:
        seen[payload["n"]] = ("sync", ctx, threading.current_thread().name)

    events: list[Event] = []
    worker = quiet_worker(manager, {"aecho": aecho, "secho": secho}, concurrency=5)
    worker.on("*", events.append)
    stats = worker.drain()

    assert (stats.claimed, stats.completed, stats.failed) == (30, 30, 0)
    assert sorted(seen) == list(range(30))
    by_id = {job.id: job for job in added}
    for n, (kind, ctx, thread) in seen.items():
        assert kind == ("async" if n < 20 else "sync")
        assert ctx.job.payload == {"n": n} and ctx.worker_id == worker.worker_id
        assert ctx.manager is manager and ctx.job.id in by_id
        if kind == "async":
            assert thread == "queuekit-event-loop"
        else:
            assert thread.startswith("queuekit-task-")
    assert manager.list_jobs() == []
    for job in added:
        assert [h.status for h in manager.job_history(job.id)] == ["completed"]
    completed = [e for e in events if e.name == "job/completed"]
    assert len(completed) == 30
    assert {e.data["task_identifier"] for e in completed} == {"aecho", "secho"}


def test_async_failure_and_partial_success_are_recorded_like_sync_ones(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    failing = manager.add_job("boom", {}, max_attempts=1)
    partial = manager.add_job("partly", {}, max_attempts=1)

    async def boom(_payload: dict[str, Any], _ctx: JobContext) -> None:
        await asyncio.sleep(0)
        raise RuntimeError("async boom")

    async def partly(_payload: dict[str, Any], _ctx: JobContext) -> PartialSuccess:
        return PartialSuccess(["a"], ["b"], results={"a": 1})

    events: list[Event] = []
    worker = quiet_worker(manager, {"boom": boom, "partly": partly})
    worker.on("*", events.append)
    stats = worker.drain()

    assert (stats.failed, stats.partial_success, stats.exhausted, stats.completed) == (1, 1, 2, 0)
    [failed] = manager.job_history(failing.id)
    assert failed.status == "failed" and failed.error_message == "async boom"
    assert failed.error_stack is not None and "RuntimeError" in failed.error_stack
    [partly_row] = manager.job_history(partial.id)
    assert partly_row.status == "partial_success"
    assert partly_row.completed_steps == ["a"] and partly_row.partial_results == {"a": 1}
    [failed_event] = [e for e in events if e.name == "job/failed"]
    assert failed_event.data["error"] == "async boom" and failed_event.data["job_id"] == failing.id


def test_async_timeout_cancels_the_task_for_real(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("slow", {}, max_attempts=1)
    inside: list[str] = []

    async def slow(_payload: dict[str, Any], ctx: JobContext) -> None:
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            inside.append(f"cancelled, ctx.cancelled={ctx.cancelled.is_set()}")
            raise

    events: list[Event] = []
    worker = quiet_worker(manager, {"slow": slow}, job_timeout="0.2 seconds")
    worker.on("*", events.append)
    stats = worker.drain()

    assert inside == ["cancelled, ctx.cancelled=True"]
    assert (stats.timed_out, stats.failed, stats.exhausted) == (1, 1, 1)
    [record] = manager.job_history(job.id)
    assert record.status == "failed" and record.error_message is not None
    assert "timed out" in record.error_message
    assert record.error_stack is not None and JobTimeoutError.__name__ in record.error_stack
    assert [e.name for e in events if e.name.startswith("job/")][-3:] == [
        "job/timeout",
        "job/failed",
        "job/exhausted",
    ]


def test_shutdown_lets_async_tasks_stop_cooperatively_then_cancels_the_rest(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    polite = manager.add_job("polite", {})
    stubborn = manager.add_job("stubborn", {})
    started: set[str] = set()
    inside: list[str] = []

    async def polite_task(_payload: dict[str, Any], ctx: JobContext) -> str:
        started.add("polite")
        assert await ctx.cancelled.wait_async(PATIENCE)
        inside.append("polite saw the shutdown")
        return "stopped early"

    async def stubborn_task(_payload: dict[str, Any], _ctx: JobContext) -> None:
        started.add("stubborn")
        try:
            await asyncio.sleep(PATIENCE)
        except asyncio.CancelledError:
            inside.append("stubborn cancelled")
            raise

    worker = quiet_worker(manager, {"polite": polite_task, "stubborn": stubborn_task})
    worker.start()
    wait_until(lambda: started == {"polite", "stubborn"}, "both tasks to start")
    worker.stop(timeout="0.3 seconds")

    assert sorted(inside) == ["polite saw the shutdown", "stubborn cancelled"]
    assert [h.status for h in manager.job_history(polite.id)] == ["completed"]
    [record] = manager.job_history(stubborn.id)
    assert record.status == "failed" and record.error_stack is not None
    assert ShutdownError.__name__ in record.error_stack
    left = manager.get_job(stubborn.id)
    assert left is not None and left.status == "available"


def test_a_sync_task_returning_a_coroutine_fails_instead_of_completing(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    job = manager.add_job("send", {}, max_attempts=1)
    ran: list[bool] = []

    async def send(_payload: dict[str, Any], _ctx: JobContext) -> None:
        ran.append(True)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "never awaited" warning would fail the test
        worker = quiet_worker(manager, {"send": lambda payload, ctx: send(payload, ctx)})
        stats = worker.drain()

    assert ran == []
    assert (stats.completed, stats.failed, stats.exhausted) == (0, 1, 1)
    [record] = manager.job_history(job.id)
    assert record.status == "failed" and record.error_message is not None
    assert "async def" in record.error_message and "nothing ran" in record.error_message
    assert record.error_stack is not None
    assert AwaitableReturnedError.__name__ in record.error_stack


def test_many_sleeping_async_tasks_share_slots_on_few_threads(clean_manager: JobManager) -> None:
    manager = clean_manager
    manager.add_jobs([JobSpec("nap", {"n": n}) for n in range(1000)])
    lock = threading.Lock()
    in_flight = 0
    most_in_flight = 0
    most_threads = 0

    # Threads left over by earlier tests in this process (pool reapers, servers)
    # are not the worker's: count only what appears while it runs.
    before = threading.active_count()

    async def nap(_payload: dict[str, Any], _ctx: JobContext) -> None:
        nonlocal in_flight, most_in_flight, most_threads
        with lock:
            in_flight += 1
            most_in_flight = max(most_in_flight, in_flight)
            most_threads = max(most_threads, threading.active_count() - before)
        await asyncio.sleep(0.2)
        with lock:
            in_flight -= 1

    worker = quiet_worker(manager, {"nap": nap}, concurrency=200)
    stats = worker.drain()

    assert (stats.completed, stats.failed) == (1000, 0)
    # Slots were shared (far more than one nap at a time) and never exceeded...
    assert 100 <= most_in_flight <= 200
    # ...on a handful of new threads (loop, fetcher, flusher, housekeeper, fence).
    assert most_threads < 15


def test_cancel_event_can_be_awaited_with_a_timeout() -> None:
    from queuekit.worker import CancelEvent

    event = CancelEvent()

    async def scenario() -> tuple[bool, bool, bool]:
        timed_out = await event.wait_async(0.05)
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, lambda: threading.Thread(target=event.set).start())
        woke = await event.wait_async(PATIENCE)
        again = await event.wait_async(0)
        return timed_out, woke, again

    assert asyncio.run(scenario()) == (False, True, True)
    assert event.wait(0)


def _agen_task() -> Any:
    async def agen(_payload: dict[str, Any], _ctx: JobContext) -> Any:
        yield 1

    return agen


class _AsyncCallable:
    async def __call__(self, _payload: dict[str, Any], _ctx: JobContext) -> None:
        return None


@pytest.mark.parametrize(
    ("tasks", "options", "message"),
    [
        ({"t": "not a function"}, {}, "not callable"),
        ({"t": None}, {}, "not callable"),
        ({"t": _agen_task()}, {}, "async generator"),
        ({"t": lambda _p, _c: None}, {"concurrency": 0}, "concurrency"),
        ({"t": lambda _p, _c: None}, {"concurrency": -3}, "concurrency"),
    ],
)
def test_bad_tasks_or_concurrency_are_refused_before_anything_is_claimed(
    clean_manager: JobManager, tasks: dict[str, Any], options: dict[str, Any], message: str
) -> None:
    manager = clean_manager
    job = manager.add_job("t", {})
    with pytest.raises(InvalidArgumentError, match=message):
        Worker(manager, tasks, maintenance=False, **options)
    left = manager.get_job(job.id)
    assert left is not None and left.status == "available" and left.attempts == 0
    assert manager.job_history(job.id) == []


def test_an_object_with_an_async_call_runs_as_an_async_task(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("t", {})
    stats = quiet_worker(manager, {"t": _AsyncCallable()}).drain()
    assert stats.completed == 1
    assert [h.status for h in manager.job_history(job.id)] == ["completed"]
