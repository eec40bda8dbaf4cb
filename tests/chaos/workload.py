"""The chaos workload: its tasks, the ledger they write, and the jobs the controller feeds.

Every execution appends a start line and (unless its process dies) an end
line to its host's ledger, a JSONL file written with single O_APPEND writes
so processes of one host never interleave lines. Times are
``time.monotonic_ns()``: one kernel, so one clock for every namespace.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from typing import Any

from queuekit import JobContext, JobSpec

#: Named serial queues and rate-limit keys of the workload.
QUEUES = 8
RATE_KEYS = ("rl0", "rl1")
RATE_CAPACITY = 5
RATE_INTERVAL = 1.0
CRON = [("tick", "* * * * *", {"cron": True}, {})]
#: Cancellation is checked this often inside a task (seconds).
STEP = 0.01

_ledger_fd: int | None = None


def ledger_path(directory: str, host: int) -> str:
    return os.path.join(directory, f"ledger-h{host}.jsonl")


def open_ledger(path: str) -> None:
    global _ledger_fd
    _ledger_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def record(entry: dict[str, Any]) -> None:
    """Append one line to this process's host ledger."""
    if _ledger_fd is None:
        raise RuntimeError("ledger not opened")
    entry["m"] = time.monotonic_ns()
    entry["p"] = os.getpid()
    entry["h"] = socket.gethostname()
    os.write(_ledger_fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode())


def _work(payload: dict[str, Any], ctx: JobContext) -> None:
    job = ctx.job
    base = {"j": str(job.id), "c": str(job.correlation_id), "a": job.attempts}
    record({"e": "s", "t": job.task_identifier, "q": job.queue_name, "k": job.rate_limit_key,
            "w": ctx.worker_id, **base})  # fmt: skip
    deadline = time.monotonic() + payload.get("ms", 20) / 1000
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            record({"e": "e", "r": "cancelled", **base})
            raise RuntimeError("cancelled")
        time.sleep(STEP)
    if payload.get("fail_first") and job.attempts == 1:
        record({"e": "e", "r": "raised", **base})
        raise RuntimeError("planned first-attempt failure")
    record({"e": "e", "r": "ok", **base})


TASKS = {name: _work for name in ("plain", "serial", "limited", "flaky", "tick", "long")}
#: How long a "long" job runs: longer than a cut needs to fence its worker.
LONG_MS = 20_000


def long_jobs(size: int) -> list[JobSpec]:
    """Jobs that run :data:`LONG_MS` (honouring cancellation), claimed before the backlog."""
    return [JobSpec("long", {"ms": LONG_MS}, priority=-1) for _ in range(size)]


def running_long(directory: str, host: int) -> bool:
    """Whether the host's ledger shows a long job started and not yet ended."""
    open_runs: set[str] = set()
    with open(ledger_path(directory, host)) as f:
        for line in f:
            entry = json.loads(line)
            if entry.get("t") == "long" and entry["e"] == "s":
                open_runs.add(entry["c"])
            elif entry["e"] == "e":
                open_runs.discard(entry["c"])
    return bool(open_runs)


def batch(size: int, rng: random.Random) -> list[JobSpec]:
    """Jobs in the workload's mix: 60% plain, 20% serial queues, 10% rate-limited, 10% flaky."""
    specs = []
    for _ in range(size):
        roll = rng.random()
        ms = rng.randint(20, 80)
        if roll < 0.6:
            specs.append(JobSpec("plain", {"ms": ms}))
        elif roll < 0.8:
            queue = f"q{rng.randrange(QUEUES)}"
            specs.append(JobSpec("serial", {"ms": ms}, queue_name=queue))
        elif roll < 0.9:
            key = rng.choice(RATE_KEYS)
            specs.append(JobSpec("limited", {"ms": 10}, rate_limit_key=key))
        else:
            specs.append(JobSpec("flaky", {"ms": ms, "fail_first": True}))
    return specs
