"""Worker processes stopped by signals: SIGTERM drains cleanly, SIGKILL loses no job.

The workers run ``tests/worker_app.py`` (a Worker on the main thread, so its
own signal handlers are in place) or ``queuekit worker --tasks
worker_app:TASKS``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from queuekit import JobManager, JobSpec, Worker

TESTS = Path(__file__).parent
PATIENCE = 60.0


def wait_until(condition: Callable[[], bool], what: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if process.poll() is not None:
            output = process.communicate()[0]
            raise AssertionError(f"worker exited ({process.returncode}) before {what}:\n{output}")
        if time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0]
            raise AssertionError(f"gave up waiting for {what}:\n{output}")
        time.sleep(0.02)


def launch(url: str, how: str, concurrency: int) -> subprocess.Popen[str]:
    if how == "script":
        command = [sys.executable, str(TESTS / "worker_app.py"), url, str(concurrency), "4"]
    else:
        command = [
            str(Path(sys.executable).parent / "queuekit"),
            "--database-url",
            url,
            "worker",
            "--tasks",
            "worker_app:TASKS",
            "--concurrency",
            str(concurrency),
            "--poll-interval",
            "0.05 seconds",
            "--no-maintenance",
        ]
    return subprocess.Popen(
        command,
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def completed_count(manager: JobManager) -> int:
    return len(manager.query_history(status="completed", limit=10_000))


@pytest.mark.parametrize("how", ["script", "cli"])
def test_sigterm_mid_batch_exits_cleanly_with_every_job_done_or_released(
    manager: JobManager, empty_url: str, how: str
) -> None:
    jobs = manager.add_jobs([JobSpec("slow", {"seconds": 0.15}) for _ in range(30)])
    process = launch(empty_url, how, concurrency=2)
    try:
        wait_until(lambda: completed_count(manager) >= 3, "three completions", process)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=PATIENCE)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output

    assert manager.query_history(status="started") == []
    assert manager.list_jobs(status="locked") == []
    done = released = 0
    for job in jobs:
        history = manager.job_history(job.id)
        current = manager.get_job(job.id)
        if current is None:
            assert [h.status for h in history] == ["completed"]
            done += 1
        else:
            # Claimed but never started: given back with its attempt refunded.
            assert (current.status, current.attempts, history) == ("available", 0, [])
            released += 1
    assert done >= 3 and released >= 1
    assert done + released == 30


def test_sigkill_mid_job_loses_nothing_after_lock_reset(
    manager: JobManager, empty_url: str
) -> None:
    jobs = manager.add_jobs([JobSpec("hang", {"n": n}) for n in range(6)])
    process = launch(empty_url, "script", concurrency=3)
    try:
        wait_until(
            lambda: len(manager.query_history(status="started")) >= 3, "three running jobs", process
        )
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=PATIENCE)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    stuck = manager.list_jobs(status="locked")
    assert len(stuck) >= 3

    assert manager.reset_locked_jobs(lock_timeout=0) == len(stuck)
    rescue = Worker(manager, {"hang": lambda _p, _c: None}, maintenance=False)
    assert rescue.drain().completed == 6
    assert manager.list_jobs() == []
    assert manager.query_history(status="started") == []
    for job in jobs:
        statuses = [h.status for h in manager.job_history(job.id)]
        assert statuses[0] == "completed"
        assert all(s == "failed" for s in statuses[1:])
    expired = manager.query_history(status="failed")
    assert len(expired) == len(stuck)
    assert {h.error_message for h in expired} == {"lock expired"}
