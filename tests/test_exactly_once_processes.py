"""Exactly-once database effects under SIGKILL and lock resets, on every dialect.

N jobs each insert one application row. Two worker processes
(``tests/exactly_once_app.py``) run them while the test, in alternating
rounds at random moments, SIGKILLs a worker — waiting first, for a moment,
until that worker is in its *window* (after the write, before the commit
that completes the job) — and force-resets every lock, running tasks'
included. Then the workers are killed, the locks reset, and an in-process
worker finishes what is left.

With ``ctx.transaction()`` the end state is exactly N rows, one per job,
and N completed jobs. The same task committing its row on its own shows
duplicates in the same set-up: that is how the test knows the chaos hit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import exactly_once_app
import pytest
import sqlalchemy as sa
from exactly_once_app import app_metadata, receipts

from queuekit import JobManager, JobSpec, Worker

TESTS = Path(__file__).parent
JOBS = 30
WORKERS = 2
#: Chaos rounds: kills and resets alternate.
ROUNDS = 8
#: Longest wait in the window, seconds.
WINDOW = 0.25
#: How long a kill round waits for its worker to enter the window.
WINDOW_WAIT = 2.0
#: How long a kill round waits for a worker to start, seconds.
STARTUP = 60.0


def launch(url: str, markers: Path, logs: Path, number: int) -> subprocess.Popen[bytes]:
    with (logs / f"worker-{number}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(TESTS / "exactly_once_app.py"), url, str(markers), str(number)],
            cwd=TESTS,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "QK_WINDOW": str(WINDOW)},
        )
    return process


def ready(process: subprocess.Popen[bytes], logs: Path) -> bool:
    """Whether the worker has started (a loaded machine takes seconds to import it)."""
    return b"ready" in (logs / f"worker-{process.args[-1]}.log").read_bytes()


def wait_in_window(
    workers: list[subprocess.Popen[bytes]], markers: Path, logs: Path
) -> subprocess.Popen[bytes]:
    """The first started worker seen in its window (any started one after STARTUP seconds)."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        for process in workers:
            if (markers / str(process.pid)).exists():
                return process
        time.sleep(0.002)
    return next(w for w in workers if ready(w, logs))


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("variant", ["with_block", "without_block"])
def test_each_job_writes_its_row_exactly_once_through_kills_and_resets(
    manager: JobManager, empty_url: str, tmp_path: Path, variant: str
) -> None:
    app_metadata.create_all(manager.engine)
    jobs = manager.add_jobs([JobSpec(variant, {"n": n}) for n in range(JOBS)])
    markers, logs = tmp_path / "markers", tmp_path / "logs"
    markers.mkdir()
    logs.mkdir()
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    launched = 0
    workers: list[subprocess.Popen[bytes]] = []
    kills_in_window = resets = 0
    try:
        for _ in range(WORKERS):
            workers.append(launch(empty_url, markers, logs, launched))
            launched += 1
        for round_number in range(ROUNDS):
            time.sleep(rng.uniform(0.2, 0.6))
            if not manager.list_jobs():
                break
            if round_number % 2 == 0:
                deadline = time.monotonic() + STARTUP
                while not [w for w in workers if ready(w, logs)]:
                    assert time.monotonic() < deadline, "no worker started"
                    time.sleep(0.05)
                if kills_in_window == 0:
                    # Until one kill has hit the window, wait for whichever worker enters
                    # it first: however fast or slow the machine, the chaos must hit.
                    victim = wait_in_window(workers, markers, logs)
                else:
                    victim = rng.choice([w for w in workers if ready(w, logs)])
                marker = markers / str(victim.pid)
                deadline = time.monotonic() + rng.uniform(0.2, WINDOW_WAIT)
                while not marker.exists() and time.monotonic() < deadline:
                    time.sleep(0.005)
                in_window = marker.exists()
                kill(victim)
                kills_in_window += in_window
                marker.unlink(missing_ok=True)
                workers.remove(victim)
                workers.append(launch(empty_url, markers, logs, launched))
                launched += 1
            else:
                resets += manager.reset_locked_jobs(lock_timeout=0)
    finally:
        for process in workers:
            kill(process)
    outputs = "\n".join(p.read_text(errors="replace")[-2000:] for p in logs.iterdir())
    context = f"seed {seed}, {kills_in_window} kill(s) in the window, {resets} reset(s)"
    assert kills_in_window >= 1, f"no kill hit the window ({context}):\n{outputs}"

    # What is left after the chaos: locks of dead workers, jobs never run.
    manager.reset_locked_jobs(lock_timeout=0)
    Worker(manager, exactly_once_app.TASKS, maintenance=False).drain()

    assert manager.list_jobs() == [], context
    assert manager.query_history(status="started") == [], context
    completed = Counter(h.job_id for h in manager.query_history(status="completed", limit=10_000))
    assert completed == Counter({job.id: 1 for job in jobs}), context
    with manager.engine.connect() as conn:
        written = Counter(conn.execute(sa.select(receipts.c.n)).scalars())
    assert set(written) == set(range(JOBS)), context
    duplicates = {n: count for n, count in written.items() if count > 1}
    if variant == "with_block":
        assert duplicates == {}, f"rows written twice ({context}): {duplicates}"
    else:
        # Each kill in the window left a committed row whose job then ran again.
        assert len(duplicates) >= 1, f"the plain task wrote no duplicate ({context})"
