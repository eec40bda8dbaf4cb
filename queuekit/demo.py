"""``queuekit demo``: a few hundred jobs of every kind flowing through one worker.

On a fresh database (an SQLite file by default) the demo migrates, registers
payload schemas and a rate limit, enqueues jobs that succeed, fail and
retry, fail for good, succeed partly, run one at a time in named queues or
wait for rate-limit tokens, plus a cron entry whose missed slot fires at
start-up. A worker then runs them all with a progress bar, and a summary
table and a few history rows show what happened.

The tasks are ordinary module-level functions, so the same jobs can also be
run with ``queuekit worker --tasks queuekit.demo:TASKS``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from queuekit.cron import CronJob, latest_slot
from queuekit.errors import PayloadValidationError
from queuekit.events import Event
from queuekit.manager import JobManager
from queuekit.types import HistoryRecord, JobSpec, PartialSuccess, WorkerStats
from queuekit.worker import JobContext, Worker

#: Task-run time of the "work" the demo tasks pretend to do, in seconds.
WORK_SECONDS = (0.0005, 0.003)
RATE_LIMIT_KEY = "demo-smtp"
RATE_LIMIT = (40, "1 second")
CRON_ENTRY = "demo.hourly_report"
#: The demo gives up waiting after this long (it normally takes a few seconds).
DEADLINE_SECONDS = 120.0

EMAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "pattern": "^[^@]+@[^@]+$"},
        "subject": {"type": "string"},
    },
    "required": ["to", "subject"],
}
CHARGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "amount_cents": {"type": "integer", "minimum": 1},
        "outcome": {"type": "string"},
    },
    "required": ["amount_cents"],
}


class CardDeclined(Exception):
    """What the pretend payment provider raises."""


def _work() -> None:
    time.sleep(random.uniform(*WORK_SECONDS))


def send_email(payload: dict[str, Any], ctx: JobContext) -> None:
    """Always succeeds; its jobs share a rate limit, so they start at most 40 a second."""
    _work()


def resize_image(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Runs in a per-owner named queue: one image of each owner at a time."""
    _work()
    return {"width": payload.get("width", 640)}


def charge_card(payload: dict[str, Any], ctx: JobContext) -> None:
    """``outcome: flaky`` fails the first attempt; ``outcome: declined`` fails every attempt."""
    _work()
    outcome = payload.get("outcome", "ok")
    if outcome == "declined":
        raise CardDeclined(f"card declined for {payload['amount_cents']} cents")
    if outcome == "flaky" and ctx.job.attempts == 1:
        raise ConnectionError("payment provider timed out, will retry")


def import_rows(payload: dict[str, Any], ctx: JobContext) -> PartialSuccess | None:
    """Imports rows in steps; the first attempt leaves one step failed, the retry resumes there."""
    _work()
    steps = [f"rows-{n}" for n in range(payload.get("steps", 4))]
    if ctx.job.attempts == 1:
        return PartialSuccess(
            completed_steps=steps[:2],
            failed_steps=steps[2:3],
            retry_from_step=steps[2],
            results={"imported": 200},
        )
    return None


def index_document(payload: dict[str, Any], ctx: JobContext) -> None:
    """Plain, quick work."""
    _work()


def hourly_report(payload: dict[str, Any], ctx: JobContext) -> None:
    """The cron entry's task."""
    _work()


TASKS: dict[str, Callable[[dict[str, Any], JobContext], object]] = {
    "demo.send_email": send_email,
    "demo.resize_image": resize_image,
    "demo.charge_card": charge_card,
    "demo.import_rows": import_rows,
    "demo.index_document": index_document,
    CRON_ENTRY: hourly_report,
}

CRONTABS = [CronJob(CRON_ENTRY, "0 * * * *", {"recipients": ["ops@example.com"]})]


def demo_jobs() -> list[JobSpec]:
    """The jobs the demo enqueues (300 of them)."""
    specs: list[JobSpec] = []
    specs += [
        JobSpec(
            "demo.send_email",
            {"to": f"user{n}@example.com", "subject": f"Welcome #{n}"},
            rate_limit_key=RATE_LIMIT_KEY,
        )
        for n in range(100)
    ]
    specs += [
        JobSpec("demo.resize_image", {"image": f"{owner}-{n}.png"}, queue_name=f"images-{owner}")
        for owner in ("alice", "bob")
        for n in range(20)
    ]
    outcomes = ["ok"] * 30 + ["flaky"] * 20 + ["declined"] * 10
    specs += [
        JobSpec(
            "demo.charge_card",
            {"amount_cents": 100 + n, "outcome": outcome},
            max_attempts=3,
            priority=-1,
        )
        for n, outcome in enumerate(outcomes)
    ]
    specs += [JobSpec("demo.import_rows", {"batch": n, "steps": 4}) for n in range(30)]
    specs += [JobSpec("demo.index_document", {"document": n}, flags=("search",)) for n in range(70)]
    return specs


@dataclass
class DemoResult:
    """What the demo did, for tests and the JSON output."""

    enqueued: int
    rejected: str
    cron_fired: int
    worker: WorkerStats
    by_task: dict[str, dict[str, int]]
    seconds: float
    records: list[HistoryRecord]


def prepare(manager: JobManager, out: Console) -> tuple[int, str]:
    """Register schemas, the rate limit and the cron state; enqueue the jobs."""
    manager.register_task("demo.send_email", schema=EMAIL_SCHEMA)
    manager.register_task("demo.charge_card", schema=CHARGE_SCHEMA)
    capacity, interval = RATE_LIMIT
    manager.register_rate_limit(RATE_LIMIT_KEY, capacity, interval)
    # Pretend the application last ran two hours ago: the cron entry's missed
    # slot fires once when the worker starts (one catch-up run, not two).
    manager.ensure_crontabs([CRON_ENTRY])

    def backdate(known_since: datetime, last: datetime | None, now: datetime) -> datetime:
        return latest_slot("0 * * * *", now - timedelta(hours=2))

    manager.claim_due_slot(CRON_ENTRY, backdate)
    try:
        manager.add_job("demo.send_email", {"to": "not-an-address", "subject": "Hi"})
        rejected = "(accepted?)"
    except PayloadValidationError as error:
        rejected = str(error)
    specs = demo_jobs()
    manager.add_jobs(specs)
    out.print(
        f"Enqueued {len(specs)} jobs in one transaction: 100 rate-limited e-mails "
        f"({capacity} per {interval}), 40 images in 2 named queues, 60 card charges "
        "(20 flaky, 10 declined), 30 partial imports, 70 documents; plus cron entry "
        f"{CRON_ENTRY} ('0 * * * *') with a missed slot."
    )
    out.print(f"Rejected at enqueue, nothing written: {rejected}")
    return len(specs), rejected


def run_worker(manager: JobManager, expected: int, progress: Progress | None) -> tuple[Worker, int]:
    """Run a worker until ``expected`` jobs reached a final state; returns it and cron firings."""
    worker = Worker(
        manager,
        TASKS,
        concurrency=8,
        poll_interval="0.05 seconds",
        shutdown_timeout="5 seconds",
        crontabs=CRONTABS,
    )
    done = threading.Event()
    final = Counter[str]()
    lock = threading.Lock()
    task = None if progress is None else progress.add_task("Working", total=expected)

    def on_event(event: Event) -> None:
        with lock:
            final[event.name] += 1
            finished = final["job/completed"] + final["job/exhausted"]
            if progress is not None and task is not None:
                progress.update(
                    task,
                    completed=finished,
                    description=(
                        f"Working: {final['job/failed']} failed attempts, "
                        f"{final['job/partial-success']} partial"
                    ),
                )
            if finished >= expected:
                done.set()

    for name in ("job/completed", "job/exhausted", "job/failed", "job/partial-success"):
        worker.on(name, on_event)
    fired: list[Event] = []
    worker.on("cron/fired", fired.append)
    worker.start()
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not done.wait(0.2):
            if time.monotonic() > deadline:
                break
    finally:
        worker.stop()
    return worker, len(fired)


def summarize(
    manager: JobManager, since: datetime
) -> tuple[dict[str, dict[str, int]], list[HistoryRecord]]:
    """Attempts per task and outcome since ``since``, and the history rows."""
    records = manager.query_history(from_time=since, limit=100_000)
    by_task: dict[str, dict[str, int]] = defaultdict(Counter)
    for record in records:
        by_task[record.task_identifier][record.status] += 1
    for task, counts in manager.stats().by_task.items():
        if task in by_task:
            by_task[task]["exhausted"] = counts.get("exhausted", 0)
    return {task: dict(counts) for task, counts in sorted(by_task.items())}, records


def summary_table(by_task: Mapping[str, Mapping[str, int]], records: list[HistoryRecord]) -> Table:
    """Per task: attempts by outcome, jobs exhausted, mean run time."""
    runtime: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record.execution_time_ms is not None:
            runtime[record.task_identifier].append(record.execution_time_ms)
    table = Table(title="What happened, per task")
    for column in ("task", "completed", "failed attempts", "partial", "exhausted", "mean ms"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for task, counts in by_task.items():
        times = runtime.get(task) or [0]
        table.add_row(
            task,
            str(counts.get("completed", 0)),
            str(counts.get("failed", 0)),
            str(counts.get("partial_success", 0)),
            str(counts.get("exhausted", 0)),
            f"{sum(times) / len(times):.1f}",
        )
    return table


def sample_rows(records: list[HistoryRecord]) -> list[HistoryRecord]:
    """A few telling history rows: failures, partial successes, and completions."""
    picked: list[HistoryRecord] = []
    for status, count in (("failed", 3), ("partial_success", 2), ("completed", 3)):
        picked += [r for r in records if r.status == status][:count]
    return sorted(picked, key=lambda r: (r.started_at is None, r.started_at), reverse=True)


def run_demo(manager: JobManager, out: Console, progress: Progress | None) -> DemoResult:
    """Prepare, work, and collect the figures (printing is left to the caller)."""
    began = time.monotonic()
    since = manager.now()
    enqueued, rejected = prepare(manager, out)
    expected = enqueued + 1  # the cron entry's catch-up job
    worker, fired = run_worker(manager, expected, progress)
    by_task, records = summarize(manager, since)
    return DemoResult(
        enqueued=enqueued,
        rejected=rejected,
        cron_fired=fired,
        worker=worker.stats,
        by_task=by_task,
        seconds=time.monotonic() - began,
        records=records,
    )


__all__ = ["CRONTABS", "TASKS", "DemoResult", "demo_jobs", "run_demo"]
