"""What must hold after every scenario, checked from the ledger and the database.

Each check returns a list of violations (empty when it holds); figures the
table reports (duplicates, throughput, recovery) are computed here too.
"""

from __future__ import annotations

import glob
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from queuekit.models import job_history, jobs, known_crontabs
from tests.chaos import workload

#: History error messages that mean "the lock was taken from this attempt".
LOST_LOCK = ("lock expired", "lost contact with the database", "force unlocked")


@dataclass
class Execution:
    job: str
    corr: str
    task: str
    queue: str | None
    key: str | None
    host: str
    pid: int
    start: int
    end: int | None = None
    result: str | None = None


@dataclass
class Evidence:
    """Everything one scenario left behind."""

    executions: list[Execution]
    cron_fired: list[dict[str, Any]]
    fences: list[dict[str, Any]]
    budgets: dict[str, int]
    history: list[Any]
    leftover_jobs: int
    enqueued: set[str]
    #: Monotonic ns by which SIGKILLed (or stopped) processes were gone, per
    #: (host name, pid or None for all of the host's).
    kills: list[tuple[str, int | None, int]] = field(default_factory=list)
    #: Each kill's instants: ``{"host", "pid", "asked", "sent", "gone"}`` (decided,
    #: signalled, processes gone).
    kill_log: list[dict[str, Any]] = field(default_factory=list)
    cron: CronEvidence | None = None


@dataclass
class CronEvidence:
    """The cron entry's state and every tick job, on the database clock, read after the stop."""

    known_since: datetime
    last_execution: datetime | None
    #: The database's time once every host had stopped (no scheduler left to fire).
    stopped: datetime
    #: Per tick job id: when it was enqueued (its first ``run_at``) and when it
    #: stopped waiting or running (None: still in ``queuekit_jobs``).
    ticks: dict[str, tuple[datetime, datetime | None]]


#: Longest a cron scheduler may sleep after a failed pass (its backoff's ceiling,
#: ``queuekit.cron.MAX_SLEEP``) plus a margin: a slot this close to the stop may
#: legitimately fire after it.
CRON_GRACE = timedelta(seconds=35)
#: The workload's cron schedule fires every minute.
CRON_PERIOD = timedelta(minutes=1)


def read_ledgers(
    directory: str,
) -> tuple[list[Execution], list[dict[str, Any]], list[dict[str, Any]], dict[str, int]]:
    runs: dict[tuple[str, int, str], Execution] = {}
    cron: list[dict[str, Any]] = []
    fences: list[dict[str, Any]] = []
    budgets: dict[str, int] = {}
    for path in sorted(glob.glob(f"{directory}/ledger-h*.jsonl")):
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                kind = entry["e"]
                if kind == "s":
                    runs[(entry["h"], entry["p"], entry["c"])] = Execution(
                        entry["j"], entry["c"], entry["t"], entry["q"], entry["k"],
                        entry["h"], entry["p"], entry["m"],
                    )  # fmt: skip
                elif kind == "e":
                    run = runs[(entry["h"], entry["p"], entry["c"])]
                    run.end, run.result = entry["m"], entry["r"]
                elif kind == "cron":
                    cron.append(entry)
                elif kind == "fence":
                    fences.append(entry)
                elif kind == "up":
                    budgets[entry["w"]] = entry["budget"]
    return list(runs.values()), cron, fences, budgets


def read_cron(engine: sa.Engine, identifier: str) -> CronEvidence:
    """The cron entry's row and its jobs (history and queued), after every host stopped."""
    ticks: dict[str, tuple[datetime, datetime | None]] = {}
    with engine.connect() as conn:
        stopped = conn.execute(sa.select(sa.func.now())).scalar_one()
        state = conn.execute(
            sa.select(known_crontabs.c.known_since, known_crontabs.c.last_execution).where(
                known_crontabs.c.identifier == identifier
            )
        ).one()
        for row in conn.execute(
            sa.select(
                job_history.c.job_id,
                job_history.c.attempt_number,
                job_history.c.started_at,
                job_history.c.queue_time_ms,
                job_history.c.completed_at,
            ).where(job_history.c.task_identifier == identifier)
        ):
            job = str(row.job_id)
            enqueued, done = ticks.get(job, (None, None))
            if row.attempt_number == 1:
                enqueued = row.started_at - timedelta(milliseconds=row.queue_time_ms or 0)
            if row.completed_at is not None and (done is None or row.completed_at > done):
                done = row.completed_at
            ticks[job] = (enqueued or row.started_at, done)
        for row in conn.execute(
            sa.select(jobs.c.id, jobs.c.run_at, jobs.c.attempts).where(
                jobs.c.task_identifier == identifier
            )
        ):
            job = str(row.id)
            enqueued = ticks[job][0] if job in ticks else row.run_at
            ticks[job] = (enqueued, None)  # still waiting or running
    return CronEvidence(state.known_since, state.last_execution, stopped, ticks)


def check_cron(cron: CronEvidence) -> tuple[list[str], int, int]:
    """Exactly one job per slot wholly inside the run; returns (violations, slots, skipped).

    The slots checked are those after the entry was first seen and up to the
    later of the last slot fired (the entry's ``last_execution``) and
    :data:`CRON_GRACE` before every host stopped. A tick job belongs to the
    slot its enqueue time falls in (a minute schedule: the slot is that
    minute; a firing later than a minute collapses into the latest slot).
    One skip is by design: a slot that finds the previous tick still waiting
    or running adds nothing (its job key's ``unsafe_dedupe``) — a fault that
    strands the previous tick on a dead host until its lock expires can cause it.
    """
    problems: list[str] = []

    def slot_of(moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(second=0, microsecond=0)

    by_slot: dict[datetime, list[str]] = defaultdict(list)
    for job, (enqueued, _done) in cron.ticks.items():
        by_slot[slot_of(enqueued)].append(job)
    first = slot_of(cron.known_since) + CRON_PERIOD
    limit = cron.stopped - CRON_GRACE
    if cron.last_execution is not None:
        limit = max(limit, cron.last_execution)
    slot, checked, skipped = first, 0, 0
    while slot <= limit:
        fired = by_slot.get(slot, [])
        checked += 1
        if len(fired) > 1:
            problems.append(f"cron slot {slot:%H:%M} enqueued {len(fired)} jobs: {fired}")
        elif not fired:
            busy = [
                job
                for job, (enqueued, done) in cron.ticks.items()
                if enqueued < slot and (done is None or done >= slot)
            ]
            if busy:
                skipped += 1
            else:
                problems.append(f"cron slot {slot:%H:%M} passed with no job and none running")
        slot += CRON_PERIOD
    for slot, fired in by_slot.items():
        if slot < first or (len(fired) > 1 and slot > limit):
            problems.append(f"cron slot {slot:%H:%M} outside the run enqueued {fired}")
    if cron.last_execution is not None and cron.last_execution not in by_slot:
        skipped_last = any(
            enqueued < cron.last_execution and (done is None or done >= cron.last_execution)
            for enqueued, done in cron.ticks.values()
        )
        if not skipped_last:
            problems.append(f"cron's last slot {cron.last_execution:%H:%M} has no job")
    return problems, checked, skipped


def read_database(engine: sa.Engine) -> tuple[list[Any], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                job_history.c.job_id,
                job_history.c.correlation_id,
                job_history.c.status,
                job_history.c.error_message,
                job_history.c.started_at,
                job_history.c.task_identifier,
            )
        ).all()
        left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
    return list(rows), int(left)


def end_of(run: Execution, evidence: Evidence) -> int | None:
    """When an execution stopped: its end line, else the first death of its process after
    its start (None: no end line and no death recorded, which the checks report)."""
    if run.end is not None:
        return run.end
    times = [t for host, pid, t in evidence.kills if host == run.host and pid in (None, run.pid)]
    later = [t for t in times if t >= run.start]
    return min(later) if later else None


def started_while_dying(evidence: Evidence) -> int:
    """Executions that started after a kill was decided but before the process was gone.

    Had the kill been dated when it was decided, these would have had no
    end: neither an end line nor a kill at or after their start.
    """
    count = 0
    for kill in evidence.kill_log:
        for run in evidence.executions:
            if run.host == kill["host"] and kill["pid"] in (None, run.pid):
                count += kill.get("asked", kill["sent"]) <= run.start < kill["gone"]
    return count


def check(evidence: Evidence) -> tuple[list[str], dict[str, Any]]:
    """All invariants; returns (violations, figures)."""
    problems: list[str] = []
    figures: dict[str, Any] = {}
    by_corr = {str(row.correlation_id): row for row in evidence.history}
    completed: dict[str, int] = defaultdict(int)
    for row in evidence.history:
        if row.status == "completed":
            completed[str(row.job_id)] += 1

    # 1. No job lost; 2. one success per job; no started row left.
    lost = [j for j in evidence.enqueued if completed.get(j, 0) == 0]
    if lost:
        problems.append(f"{len(lost)} enqueued job(s) never completed, e.g. {lost[:3]}")
    if evidence.leftover_jobs:
        problems.append(f"{evidence.leftover_jobs} row(s) left in queuekit_jobs after the drain")
    twice = [j for j, n in completed.items() if n > 1]
    if twice:
        problems.append(f"{len(twice)} job(s) completed more than once, e.g. {twice[:3]}")
    open_rows = [r for r in evidence.history if r.status == "started"]
    if open_rows:
        problems.append(f"{len(open_rows)} started history row(s) left open after maintenance")

    # 3. Every execution explained; duplicates only after a lost lock.
    unexplained = [r for r in evidence.executions if r.corr not in by_corr]
    if unexplained:
        problems.append(
            f"{len(unexplained)} execution(s) with no history row, e.g. {unexplained[0]}"
        )
    runs_of: dict[str, list[Execution]] = defaultdict(list)
    for run in evidence.executions:
        runs_of[run.corr].append(run)
    for row in evidence.history:
        ok_runs = [r for r in runs_of[str(row.correlation_id)] if r.result == "ok"]
        if row.status == "completed" and not ok_runs:
            problems.append(f"job {row.job_id} recorded completed without a finished run")
    finished: dict[str, list[Execution]] = defaultdict(list)
    for run in evidence.executions:
        if run.result == "ok":
            finished[run.job].append(run)
    duplicates = 0
    for job, runs in finished.items():
        if len(runs) < 2:
            continue
        duplicates += len(runs) - 1
        for run in runs:
            row = by_corr.get(run.corr)
            message = "" if row is None else (row.error_message or "")
            lost_lock = any(cause in message for cause in LOST_LOCK)
            if row is not None and row.status != "completed" and not lost_lock:
                problems.append(
                    f"job {job} ran to the end twice; attempt {run.corr} closed "
                    f"as {row.status} ({row.error_message!r}), not by a lost lock"
                )
    figures["duplicates"] = duplicates
    figures["executions"] = len(evidence.executions)
    figures["fences"] = len(evidence.fences)

    # 4. Named queues never run two jobs at once.
    figures["started_while_dying"] = started_while_dying(evidence)
    per_queue: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for run in evidence.executions:
        end = end_of(run, evidence)
        if end is None:
            problems.append(f"execution {run.corr} on {run.host} has no end and no death")
            continue
        if run.queue is not None:
            per_queue[run.queue].append((run.start, end, run.corr))
    # 4b. No job runs twice at once: a worker cut off gives its attempts up (fences)
    # before their locks can expire and another worker may take the job.
    per_job: dict[str, list[tuple[int, int, str, str]]] = defaultdict(list)
    for run in evidence.executions:
        end = end_of(run, evidence)
        if end is not None:
            per_job[run.job].append((run.start, end, run.corr, run.host))
    for job, spans in per_job.items():
        spans.sort()
        for (_s1, e1, c1, h1), (s2, _e2, c2, h2) in itertools.pairwise(spans):
            if s2 < e1:
                problems.append(
                    f"job {job}: attempt {c2} on {h2} started {(e1 - s2) / 1e6:.0f} ms "
                    f"before attempt {c1} on {h1} ended"
                )
    for queue, spans in per_queue.items():
        spans.sort()
        for (_s1, e1, c1), (s2, _e2, c2) in itertools.pairwise(spans):
            if s2 < e1:
                problems.append(
                    f"queue {queue}: attempt {c2} started {(e1 - s2) / 1e6:.0f} ms "
                    f"before attempt {c1} ended"
                )

    # 5. Rate limits: claims per key never beyond two buckets in any interval window
    # (refill instants are unknown; a window meets at most two refill periods).
    per_key: dict[str, list[datetime]] = defaultdict(list)
    key_of = {r.corr: r.key for r in evidence.executions}
    for row in evidence.history:
        if row.task_identifier == "limited":
            per_key[key_of.get(str(row.correlation_id)) or "?"].append(row.started_at)
    worst = 0
    for times in per_key.values():
        times.sort()
        lo = 0
        for hi, moment in enumerate(times):
            while (moment - times[lo]).total_seconds() >= workload.RATE_INTERVAL:
                lo += 1
            worst = max(worst, hi - lo + 1)
    figures["rate_window_max"] = worst
    if worst > 2 * workload.RATE_CAPACITY:
        problems.append(f"rate limit exceeded: {worst} claims of one key within one interval")

    # 6. Cron: the ledger's firings name one job per slot, and the database shows
    # exactly one job for every slot wholly inside the run.
    slots: dict[str, set[str]] = defaultdict(set)
    for fired in evidence.cron_fired:
        slots[fired["slot"]].add(fired["j"])
    for slot, fired_jobs in slots.items():
        if len(fired_jobs) > 1:
            problems.append(f"cron slot {slot} fired {len(fired_jobs)} jobs")
    figures["cron_slots"], figures["cron_skipped"] = 0, 0
    if evidence.cron is not None:
        cron_problems, figures["cron_slots"], figures["cron_skipped"] = check_cron(evidence.cron)
        problems += cron_problems
    return problems, figures


def throughput(runs: list[Execution], hosts: set[str] | None, start: int, end: int) -> float:
    """Successful executions per second of ``hosts`` (None: all) between two monotonic times."""
    if end <= start:
        return 0.0
    count = sum(
        1
        for r in runs
        if r.result == "ok" and r.end is not None and start <= r.end < end
        and (hosts is None or r.host in hosts)
    )  # fmt: skip
    return count / ((end - start) / 1e9)


def recovery_seconds(
    runs: list[Execution], baseline: float, fault_end: int, stop: int
) -> float | None:
    """Seconds from the fault's end until a 1 s window reaches 75% of the baseline throughput."""
    second = 10**9
    t = fault_end
    while t + second <= stop:
        if throughput(runs, None, t, t + second) >= 0.75 * baseline:
            return (t - fault_end) / 1e9
        t += second // 4
    return None
