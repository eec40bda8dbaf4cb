"""The in-process worker on every dialect: outcomes, retries, timeouts, shutdown, events.

Reference §5.2 and §7.10, with SPEC §5's fixes: claims bounded by idle slots
and released on shutdown (W9), bookkeeping errors kept apart from task
failures (W11), events that carry the job's data (W18), cooperative
timeouts (W19), heartbeats against lock expiry (W20).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from clock import movable_clock
from conformance import notifications
from sqlalchemy.orm import Session

from queuekit import (
    DatabaseError,
    Event,
    InvalidArgumentError,
    JobContext,
    JobManager,
    JobSpec,
    PartialSuccess,
    QueueKitError,
    RetryPolicy,
    TransientDatabaseError,
    Worker,
)
from queuekit.models import job_history
from queuekit.worker import JobTimeoutError

#: Retries due 0.3 s after a failure: soon for the test, late enough that the
#: drain that failed the job has finished before it is claimable again.
FAST_RETRY = RetryPolicy(base_delay="0.3 seconds", multiplier=1, max_delay="0.3 seconds", jitter=0)
#: Upper bound for waiting on something that normally takes milliseconds. It
#: only stops a broken test from hanging; nothing here measures speed.
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


def history_rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(job_history).order_by(job_history.c.started_at)))


def test_drain_runs_every_job_with_payload_and_context(manager: JobManager) -> None:
    added = manager.add_jobs([JobSpec("echo", {"n": n}) for n in range(40)])
    seen: list[tuple[int, JobContext]] = []
    lock = threading.Lock()

    def echo(payload: dict[str, Any], ctx: JobContext) -> str:
        with lock:
            seen.append((payload["n"], ctx))
        return "ignored"

    worker = quiet_worker(manager, {"echo": echo}, concurrency=4, worker_id="w-drain")
    stats = worker.drain()

    assert stats.claimed == 40
    assert stats.completed == 40
    assert (stats.failed, stats.exhausted, stats.errors) == (0, 0, 0)
    assert sorted(n for n, _ in seen) == list(range(40))
    ctx = seen[0][1]
    assert ctx.worker_id == "w-drain"
    assert ctx.manager is manager
    assert ctx.job.payload["n"] == seen[0][0]
    assert ctx.job.correlation_id is not None and ctx.job.attempts == 1
    assert not ctx.cancelled.is_set()
    assert manager.list_jobs() == []
    rows = history_rows(manager.engine)
    assert len(rows) == 40
    assert {row.status for row in rows} == {"completed"}
    assert {row.worker_id for row in rows} == {"w-drain"}
    assert {row.job_id for row in rows} == {job.id for job in added}
    assert worker.stats.completed == 40
    # A second drain finds nothing and reports only what it did.
    assert worker.drain().claimed == 0
    assert worker.stats.completed == 40


def test_failures_retry_with_backoff_then_exhaust(engine: sa.Engine) -> None:
    manager = JobManager(engine, retry=FAST_RETRY)
    job = manager.add_job("flaky", {"x": 1}, max_attempts=3)
    calls: list[int] = []

    def flaky(_payload: dict[str, Any], ctx: JobContext) -> None:
        calls.append(ctx.job.attempts)
        raise ValueError(f"attempt {ctx.job.attempts} broke")

    worker = quiet_worker(manager, {"flaky": flaky})
    first = worker.drain()
    assert (first.claimed, first.failed, first.exhausted) == (1, 1, 0)
    retried = manager.get_job(job.id)
    assert retried is not None and retried.status == "available"
    assert retried.attempts == 1 and retried.last_error == "attempt 1 broke"
    [attempt] = manager.job_history(job.id)
    assert attempt.started_at is not None
    # Backoff: the retry is not due before the policy's delay has passed.
    assert retried.run_at >= attempt.started_at + timedelta(milliseconds=FAST_RETRY.delay_ms(1))

    for _ in range(300):
        if worker.stats.exhausted:
            break
        time.sleep(0.05)
        worker.drain()
    assert calls == [1, 2, 3]
    stats = worker.stats
    assert (stats.failed, stats.exhausted, stats.completed) == (3, 1, 0)
    final = manager.get_job(job.id)
    assert final is not None and final.status == "exhausted"
    history = manager.job_history(job.id)
    assert [h.status for h in history] == ["failed"] * 3
    assert [h.attempt_number for h in history] == [3, 2, 1]
    assert history[0].error_message == "attempt 3 broke"
    assert history[0].error_stack is not None and "ValueError" in history[0].error_stack


def test_partial_success_is_recorded_and_rescheduled(manager: JobManager) -> None:
    retried = manager.add_job("steps", {"run": 1}, max_attempts=5)
    last = manager.add_job("steps", {"run": 2}, max_attempts=1)
    events: list[Event] = []

    def steps(payload: dict[str, Any], _ctx: JobContext) -> PartialSuccess:
        return PartialSuccess(["fetch"], ["store"], "store", {"run": payload["run"]})

    worker = quiet_worker(manager, {"steps": steps})
    worker.on("*", events.append)
    stats = worker.drain()

    assert (stats.partial_success, stats.completed, stats.failed, stats.exhausted) == (2, 0, 0, 1)
    again = manager.get_job(retried.id)
    assert again is not None and again.status == "available" and again.attempts == 1
    done = manager.get_job(last.id)
    assert done is not None and done.status == "exhausted"
    [record] = manager.job_history(retried.id)
    assert record.status == "partial_success"
    assert record.completed_steps == ["fetch"] and record.failed_steps == ["store"]
    assert record.retry_from_step == "store" and record.partial_results == {"run": 1}
    names = Counter(event.name for event in events)
    assert names["job/partial-success"] == 2
    assert names["job/exhausted"] == 1
    [exhausted] = [event for event in events if event.name == "job/exhausted"]
    assert exhausted.data["job_id"] == last.id


def test_unrecordable_partial_success_fails_the_attempt(manager: JobManager) -> None:
    job = manager.add_job("odd", {})
    worker = quiet_worker(
        manager, {"odd": lambda _p, _c: PartialSuccess(["a"], [], results={1, 2})}
    )
    stats = worker.drain()
    assert (stats.failed, stats.partial_success, stats.errors) == (1, 0, 0)
    [record] = manager.job_history(job.id)
    assert record.status == "failed"
    assert record.error_message == "PartialSuccess.results must be JSON-serialisable"


def test_missing_handler_exhausts_on_first_attempt(manager: JobManager) -> None:
    ghost = manager.add_job("ghost", {"boo": True}, max_attempts=25)
    events: list[Event] = []
    worker = quiet_worker(manager, {"real": lambda _p, _c: None})
    worker.on("job/exhausted", events.append)
    stats = worker.drain()

    assert (stats.claimed, stats.failed, stats.exhausted) == (1, 1, 1)
    job = manager.get_job(ghost.id)
    assert job is not None and job.status == "exhausted"
    assert job.last_error == "no handler registered for task: ghost"
    [record] = manager.job_history(ghost.id)
    assert record.status == "failed" and record.attempt_number == 1
    assert record.error_message == "no handler registered for task: ghost"
    [event] = events
    assert event.data["task_identifier"] == "ghost"
    assert event.data["error"] == "no handler registered for task: ghost"


def test_task_identifiers_filter_leaves_other_tasks_alone(manager: JobManager) -> None:
    manager.add_job("mine", {})
    other = manager.add_job("theirs", {})
    worker = quiet_worker(manager, {"mine": lambda _p, _c: None}, task_identifiers=["mine"])
    stats = worker.drain()
    assert (stats.completed, stats.exhausted) == (1, 0)
    left = manager.get_job(other.id)
    assert left is not None and left.status == "available" and left.attempts == 0


def test_timeout_fails_the_attempt_and_cancels_cooperatively(manager: JobManager) -> None:
    job = manager.add_job("slow", {}, max_attempts=1)
    quick = manager.add_job("quick", {})
    observed: list[bool] = []
    events: list[Event] = []

    def slow(_payload: dict[str, Any], ctx: JobContext) -> None:
        observed.append(ctx.cancelled.wait(PATIENCE))

    worker = quiet_worker(
        manager, {"slow": slow, "quick": lambda _p, _c: None}, job_timeout="0.2 seconds"
    )
    worker.on("*", events.append)
    stats = worker.drain()

    assert observed == [True]
    assert (stats.timed_out, stats.failed, stats.exhausted, stats.completed) == (1, 1, 1, 1)
    [record] = manager.job_history(job.id)
    assert record.status == "failed"
    assert record.error_message is not None and "timed out" in record.error_message
    assert record.error_stack is not None and JobTimeoutError.__name__ in record.error_stack
    assert manager.job_history(quick.id)[0].status == "completed"
    [timeout] = [e for e in events if e.name == "job/timeout"]
    assert timeout.data["job_id"] == job.id and timeout.data["timeout"] == pytest.approx(0.2)
    names = [e.name for e in events if e.data.get("job_id") == job.id]
    assert names.index("job/timeout") < names.index("job/failed")


def test_stop_waits_for_running_task(manager: JobManager) -> None:
    job = manager.add_job("work", {})
    started = threading.Event()
    finished: list[bool] = []

    def work(_payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        time.sleep(0.3)
        finished.append(ctx.cancelled.is_set())

    worker = quiet_worker(manager, {"work": work})
    events: list[Event] = []
    worker.on("*", events.append)
    worker.start()
    assert worker.running
    assert started.wait(PATIENCE)
    worker.stop()
    assert not worker.running
    # The task ran to its end (told about the shutdown through ctx.cancelled).
    assert finished == [True]
    assert manager.job_history(job.id)[0].status == "completed"
    assert events[0].name == "pool/start"
    assert events[-1].name == "pool/stop" and events[-1].data["forced"] is False


def test_shutdown_releases_unstarted_jobs_without_consuming_attempts(manager: JobManager) -> None:
    jobs = manager.add_jobs([JobSpec("hold", {"n": n}) for n in range(6)])
    started = threading.Event()

    def hold(_payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        ctx.cancelled.wait(PATIENCE)

    worker = quiet_worker(manager, {"hold": hold}, concurrency=1, prefetch=5)
    worker.start()
    assert started.wait(PATIENCE)
    wait_until(lambda: worker.stats.claimed == 6, "the prefetch claim")
    worker.stop()

    stats = worker.stats
    assert (stats.claimed, stats.completed) == (6, 1)
    remaining = manager.list_jobs()
    assert len(remaining) == 5
    assert all(job.status == "available" and job.attempts == 0 for job in remaining)
    assert all(manager.job_history(job.id) == [] for job in remaining)
    assert {job.id for job in remaining} < {job.id for job in jobs}
    assert [r.status for r in history_rows(manager.engine)] == ["completed"]


def test_a_listener_or_task_may_stop_the_worker(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {"n": n}) for n in range(3)])
    from_task = quiet_worker(manager, {"t": lambda _p, _c: from_task.stop()}, concurrency=1)
    from_task.start()
    wait_until(lambda: not from_task.running, "the stop asked by a task")
    assert from_task.stats.completed >= 1

    from_listener = quiet_worker(manager, {"t": lambda _p, _c: None})
    from_listener.on("job/completed", lambda _e: from_listener.stop())
    from_listener.start()
    wait_until(lambda: not from_listener.running, "the stop asked by a listener")
    from_listener.stop()  # already stopped: returns at once
    assert from_task.stats.completed + from_listener.stats.completed == 3 - len(manager.list_jobs())


def test_stop_timeout_fails_a_task_that_does_not_finish(manager: JobManager) -> None:
    job = manager.add_job("stubborn", {})
    started = threading.Event()
    release = threading.Event()

    def stubborn(_payload: dict[str, Any], _ctx: JobContext) -> str:
        started.set()
        release.wait(PATIENCE)  # ignores ctx.cancelled
        return "too late"

    worker = quiet_worker(manager, {"stubborn": stubborn})
    events: list[Event] = []
    worker.on("pool/stop", events.append)
    worker.start()
    assert started.wait(PATIENCE)
    worker.stop(timeout=0.1)
    release.set()

    [record] = manager.job_history(job.id)
    assert record.status == "failed"
    assert record.error_message is not None and "stopped after waiting" in record.error_message
    after = manager.get_job(job.id)
    assert after is not None and after.status == "available" and after.attempts == 1
    assert events[0].data["forced"] is True
    assert worker.stats.failed == 1


def test_events_carry_job_data(manager: JobManager) -> None:
    ok = manager.add_job("ok", {}, queue_name="emails")
    bad = manager.add_job("bad", {}, max_attempts=2)
    events: list[Event] = []
    worker = quiet_worker(
        manager,
        {"ok": lambda _p, _c: None, "bad": lambda _p, _c: 1 / 0},
        worker_id="w-events",
    )
    worker.on("*", events.append)
    worker.drain()

    by_name: dict[str, list[Event]] = {}
    for event in events:
        by_name.setdefault(event.name, []).append(event)
    assert by_name["pool/start"][0].data == {"worker_id": "w-events", "concurrency": 10}
    claimed = {e.data["job_id"]: e.data for e in by_name["job/claimed"]}
    assert claimed[ok.id] == {
        "task_identifier": "ok",
        "job_id": ok.id,
        "attempt": 1,
        "queue_name": "emails",
        "worker_id": "w-events",
    }
    [completed] = by_name["job/completed"]
    assert completed.data["job_id"] == ok.id
    assert completed.data["task_identifier"] == "ok"
    assert completed.data["queue_name"] == "emails"
    [failed] = by_name["job/failed"]
    assert failed.data["job_id"] == bad.id
    assert failed.data["attempt"] == 1
    assert failed.data["error"] == "division by zero"
    assert isinstance(failed.data["exception"], ZeroDivisionError)
    assert "job/exhausted" not in by_name
    assert by_name["pool/stop"][0].data == {"worker_id": "w-events", "forced": False}


def test_a_failing_listener_never_reaches_the_worker(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("t", {"n": n}) for n in range(5)])
    received: list[str] = []

    def broken(_event: Event) -> None:
        raise RuntimeError("listener bug")

    worker = quiet_worker(manager, {"t": lambda _p, _c: None})
    worker.on("job/completed", broken)
    worker.on("job/completed", lambda e: received.append(e.name))
    stats = worker.drain()
    assert stats.completed == 5 and stats.errors == 0
    assert received == ["job/completed"] * 5


def test_unknown_event_name_is_refused(manager: JobManager) -> None:
    worker = quiet_worker(manager, {})
    with pytest.raises(InvalidArgumentError, match="unknown event name"):
        worker.on("job/finished", lambda _e: None)


def test_heartbeats_keep_a_running_job_through_lock_resets(manager: JobManager) -> None:
    job = manager.add_job("long", {})
    started = threading.Event()
    done = threading.Event()

    def long(_payload: dict[str, Any], ctx: JobContext) -> None:
        started.set()
        assert ctx.heartbeat() is True
        done.wait(PATIENCE)

    # Locks older than 5 s count as expired; the worker refreshes them every 1 s
    # (and would fence itself only after 3.75 s without a refresh): wide enough
    # margins for a loaded machine, whose threads may wait seconds for a core.
    worker = quiet_worker(
        manager, {"long": long}, lock_timeout="5 seconds", task_identifiers=["long"]
    )
    worker.start()
    try:
        assert started.wait(PATIENCE)
        stolen = 0
        for _ in range(14):  # 5.6 s of resets: longer than the lock timeout
            time.sleep(0.4)
            stolen += manager.reset_locked_jobs(lock_timeout="5 seconds")
        # A job claimed without heartbeats for as long is taken back: it is added
        # and claimed on a database clock 5.5 s behind, as if silent since then.
        behind = JobManager(manager.engine)
        movable_clock(behind).rewind(timedelta(seconds=5.5))
        silent = behind.add_job("silent", {})
        claimed = behind.get_jobs("silent-worker", task_identifiers=["silent"])
        assert [c.id for c in claimed] == [silent.id]
        assert manager.reset_locked_jobs(lock_timeout="5 seconds") == 1
    finally:
        done.set()
        worker.stop()
    assert stolen == 0
    assert [h.status for h in manager.job_history(job.id)] == ["completed"]
    assert manager.job_history(silent.id)[0].error_message == "lock expired"


def test_named_queue_jobs_never_overlap(manager: JobManager) -> None:
    manager.add_jobs([JobSpec("serial", {"n": n}, queue_name="one-at-a-time") for n in range(6)])
    manager.add_jobs([JobSpec("serial", {"n": n}) for n in range(6, 10)])
    lock = threading.Lock()
    inside: list[int] = []
    overlap: list[int] = []
    order: list[int] = []

    def serial(payload: dict[str, Any], ctx: JobContext) -> None:
        queued = ctx.job.queue_name is not None
        with lock:
            if queued:
                inside.append(payload["n"])
                overlap.append(len(inside))
                order.append(payload["n"])
        time.sleep(0.01)
        with lock:
            if queued:
                inside.remove(payload["n"])

    worker = quiet_worker(manager, {"serial": serial}, concurrency=5)
    assert worker.drain().completed == 10
    assert max(overlap) == 1
    assert order == list(range(6))


def test_bookkeeping_errors_are_retried_not_recorded_as_failures(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W11: a flush that fails is retried; the task is neither failed nor run again."""
    job = manager.add_job("once", {})
    runs: list[int] = []
    real_finish = manager.finish_jobs
    failures = iter([TransientDatabaseError("connection lost"), DatabaseError("disk full")])

    def flaky_finish(worker_id: str, outcomes: Any, **kwargs: Any) -> Any:
        error = next(failures, None)
        if error is not None:
            raise error
        return real_finish(worker_id, outcomes, **kwargs)

    monkeypatch.setattr(manager, "finish_jobs", flaky_finish)
    errors: list[Event] = []
    worker = quiet_worker(manager, {"once": lambda _p, ctx: runs.append(ctx.job.attempts)})
    worker.on("worker/error", errors.append)
    stats = worker.drain()

    assert runs == [1]
    assert (stats.completed, stats.failed, stats.errors) == (1, 0, 2)
    assert [h.status for h in manager.job_history(job.id)] == ["completed"]
    assert [e.data["cause"] for e in errors] == ["flush", "flush"]
    assert errors[0].data["error"] == "connection lost"


def test_a_lost_flush_answer_is_recognised(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush that committed but whose answer was lost is retried without double counting."""
    jobs = manager.add_jobs([JobSpec("t", {"n": n}, max_attempts=1) for n in range(4)])
    real_finish = manager.finish_jobs
    calls: list[int] = []

    def lossy_finish(worker_id: str, outcomes: Any, **kwargs: Any) -> Any:
        finished = real_finish(worker_id, outcomes, **kwargs)
        calls.append(len(outcomes))
        if len(calls) == 1:
            raise TransientDatabaseError("server closed the connection unexpectedly")
        return finished

    monkeypatch.setattr(manager, "finish_jobs", lossy_finish)

    def task(payload: dict[str, Any], _ctx: JobContext) -> None:
        if payload["n"] % 2:
            raise ValueError("odd")

    worker = quiet_worker(manager, {"t": task}, concurrency=1, prefetch=0)
    stats = worker.drain()
    assert (stats.completed, stats.failed, stats.exhausted, stats.errors) == (2, 2, 2, 1)
    for job in jobs:
        assert len(manager.job_history(job.id)) == 1


def test_a_lost_claim_answer_releases_the_orphans(
    manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that committed but whose answer never arrived leaves no job stuck."""
    jobs = manager.add_jobs([JobSpec("t", {"n": n}) for n in range(3)])
    real_get_jobs = manager.claim_for_worker
    calls: list[int] = []

    def lossy_get_jobs(worker_id: str, **kwargs: Any) -> Any:
        calls.append(1)
        claimed = real_get_jobs(worker_id, **kwargs)
        if len(calls) == 1:
            raise TransientDatabaseError("server closed the connection unexpectedly")
        return claimed

    monkeypatch.setattr(manager, "claim_for_worker", lossy_get_jobs)
    runs: Counter[uuid.UUID] = Counter()
    worker = quiet_worker(manager, {"t": lambda _p, ctx: runs.update([ctx.job.id])})
    stats = worker.drain()

    assert runs == Counter({job.id: 1 for job in jobs})
    assert (stats.completed, stats.errors) == (3, 1)
    for job in jobs:
        [record] = manager.job_history(job.id)
        assert (record.status, record.attempt_number) == ("completed", 1)


def test_error_texts_are_always_storable(manager: JobManager) -> None:
    """NUL characters (refused by PostgreSQL) and huge messages (over MySQL's TEXT)."""
    nul = manager.add_job("nul", {}, max_attempts=1)
    huge = manager.add_job("huge", {}, max_attempts=1)

    def fail_with(message: str) -> Callable[[dict[str, Any], JobContext], None]:
        def task(_payload: dict[str, Any], _ctx: JobContext) -> None:
            raise ValueError(message)

        return task

    worker = quiet_worker(
        manager, {"nul": fail_with("bad\x00byte"), "huge": fail_with("begin" + "x" * 100_000)}
    )
    stats = worker.drain()
    assert (stats.failed, stats.exhausted, stats.errors) == (2, 2, 0)
    [nul_record] = manager.job_history(nul.id)
    assert nul_record.error_message == "bad\\x00byte"
    [huge_record] = manager.job_history(huge.id)
    for text in (huge_record.error_message, huge_record.error_stack):
        assert text is not None and len(text) <= 16_000
        assert "characters omitted" in text
    assert huge_record.error_message.startswith("begin")  # type: ignore[union-attr]
    assert huge_record.error_stack.rstrip().endswith("x")  # type: ignore[union-attr]


def test_worker_refuses_bad_arguments(manager: JobManager) -> None:
    with pytest.raises(InvalidArgumentError, match="mapping"):
        Worker(manager, [("t", print)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="not callable"):
        Worker(manager, {"t": 42})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        Worker(manager, {}, concurrency=0)
    with pytest.raises(InvalidArgumentError, match="poll_interval"):
        Worker(manager, {}, poll_interval="soon")
    with pytest.raises(InvalidArgumentError, match="worker"):
        Worker(manager, {}, worker_id="")
    with pytest.raises(InvalidArgumentError, match="maintenance"):
        Worker(manager, {}, maintenance="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="JobManager"):
        Worker(object(), {})  # type: ignore[arg-type]


def test_worker_cannot_run_twice_at_once(manager: JobManager) -> None:
    worker = quiet_worker(manager, {})
    worker.start()
    try:
        with pytest.raises(QueueKitError, match="already running"):
            worker.drain()
    finally:
        worker.stop()
    assert worker.drain().claimed == 0  # usable again once stopped


def test_running_worker_picks_up_new_jobs(manager: JobManager) -> None:
    done = threading.Event()
    worker = quiet_worker(manager, {"ping": lambda _p, _c: done.set()})
    worker.start()
    try:
        manager.add_job("ping", {})
        assert done.wait(PATIENCE)
        wait_until(lambda: worker.stats.completed == 1, "the completion to be recorded")
    finally:
        worker.stop()
    assert manager.list_jobs() == []


def test_a_due_poll_with_every_slot_busy_lets_running_tasks_finish(manager: JobManager) -> None:
    # The first claim wants 2 slots + 3 prefetched but finds 4 jobs (a short
    # claim), so polls come due while both slots are busy and the buffer is not
    # low: the fetch loop must wait for a slot, not spin holding the lock that
    # finishing tasks need.
    manager.add_jobs([JobSpec("slow", {"n": n}) for n in range(4)])
    worker = quiet_worker(
        manager,
        {"slow": lambda _p, _c: time.sleep(0.3)},
        concurrency=2,
        prefetch=3,
        poll_interval="0.01 seconds",
    )
    worker.start()
    try:
        wait_until(lambda: worker.stats.completed == 4, "every slow job to complete")
    finally:
        worker.stop()
    assert manager.list_jobs() == []


# -- PostgreSQL wake-up ---------------------------------------------------------------------


def listener_pids(manager: JobManager) -> set[int]:
    with manager.engine.connect() as conn:
        return set(
            conn.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            ).scalars()
        )


def test_notifications_wake_an_idle_worker_and_a_lost_listener_reconnects(
    pg_manager: JobManager,
) -> None:
    manager = pg_manager
    done: list[int] = []
    arrived = threading.Condition()

    def ping(payload: dict[str, Any], _ctx: JobContext) -> None:
        with arrived:
            done.append(payload["n"])
            arrived.notify_all()

    def run_one(n: int) -> None:
        manager.add_job("ping", {"n": n})
        with arrived:
            assert arrived.wait_for(lambda: n in done, PATIENCE), f"job {n} was not picked up"

    # Polling once an hour: only a notification can bring the later jobs in.
    worker = Worker(manager, {"ping": ping}, poll_interval="1 hour", maintenance=False)
    worker.start()
    try:
        wait_until(lambda: len(listener_pids(manager)) == 1, "the listener")
        run_one(1)  # may be caught by the claim that follows connecting
        run_one(2)
        [first] = listener_pids(manager)
        with manager.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        wait_until(lambda: listener_pids(manager) - {first} != set(), "a new listener")
        run_one(3)
        run_one(4)
    finally:
        worker.stop()
    assert done == [1, 2, 3, 4]
    assert worker.stats.errors >= 1  # the lost connection was reported


def test_one_notification_per_enqueue_transaction(pg_manager: JobManager) -> None:
    manager = pg_manager
    with notifications(manager.engine) as delivered:
        with Session(manager.engine) as session, session.begin():
            manager.add_jobs([JobSpec("ping", {"n": n}) for n in range(300)], session=session)
            manager.add_job("ping", {"n": 300}, session=session)
        assert len(delivered()) == 1  # two enqueues, 301 rows, one transaction: one wake-up
        manager.add_job("ping", {"n": 301}, job_key="k")
        assert len(delivered()) == 1
        manager.add_job("ping", {"n": 302}, job_key="k", job_key_mode="unsafe_dedupe")
        assert len(delivered()) == 0  # nothing new to run
        with Session(manager.engine) as session:
            manager.add_job("ping", {"n": 303}, session=session)
            session.rollback()
        assert len(delivered()) == 0  # rolled back: no job, no wake-up


def test_freeing_a_named_queue_wakes_workers_in_the_settling_transaction(
    pg_manager: JobManager,
) -> None:
    manager = pg_manager
    manager.add_jobs([JobSpec("ping", {"n": n}, queue_name="serial") for n in range(2)])
    manager.add_job("ping", {"n": 2})
    claimed = manager.get_jobs("w1", batch_size=3)
    assert [job.queue_name for job in claimed] == ["serial", None]
    with notifications(manager.engine) as delivered:
        plain = next(job for job in claimed if job.queue_name is None)
        assert manager.complete_jobs("w1", [plain], 1) == [plain]
        assert len(delivered()) == 0  # no queue freed: nothing new to claim
        queued = next(job for job in claimed if job.queue_name == "serial")
        assert manager.complete_jobs("w1", [queued], 1) == [queued]
        assert len(delivered()) == 1  # the queue's next job is claimable now
    [successor] = manager.get_jobs("w2", batch_size=5)
    assert (successor.queue_name, successor.payload) == ("serial", {"n": 1})
