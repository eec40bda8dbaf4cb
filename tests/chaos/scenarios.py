"""The faults, one scenario each, and how a scenario runs and is judged."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from tests.chaos import checks, workload
from tests.chaos.suite import CONTROLLER, HOSTS, LOCK_TIMEOUT, Fault, Run, Scenario, Suite


def _now() -> int:
    return time.monotonic_ns()


def worker_kill(run: Run, fault: Fault) -> None:
    run.kill_worker(1)
    fault.end = _now()


def host_kill(run: Run, fault: Fault) -> None:
    run.kill_host(3)
    time.sleep(3)
    run.start_host(3)
    fault.end = _now()


def short_cut(run: Run, fault: Fault) -> None:
    run.suite.topology.cut(2)
    time.sleep(2)
    run.suite.topology.heal(2)
    fault.end = _now()


def hold_long_job(run: Run, host: int, timeout: float = 90) -> None:
    """Enqueue long jobs until one runs on ``host``, so a cut finds a running attempt there.

    The workload's jobs last 20-80 ms: a cut host's attempts would all have
    finished (results waiting to be written) long before it fences itself,
    and the fence, which gives up *running* attempts, would have nothing to do.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        added = run.manager.add_jobs(workload.long_jobs(HOSTS))
        run.enqueued.update(str(job.id) for job in added)
        wait_until = min(deadline, time.monotonic() + 3)
        while time.monotonic() < wait_until:
            if workload.running_long(run.directory, host):
                return
            time.sleep(0.1)
    raise RuntimeError(f"no long job started on h{host} within {timeout:.0f} s")


def long_cut(run: Run, fault: Fault) -> None:
    hold_long_job(run, 2)
    fault.start = _now()
    run.suite.topology.cut(2)
    time.sleep(LOCK_TIMEOUT * 2)
    run.suite.topology.heal(2)
    fault.end = _now()


def one_way_drop(run: Run, fault: Fault) -> None:
    proxy = run.suite.proxies[run.mode]
    proxy.set(3, drop_answers=True)
    time.sleep(5)
    proxy.set(3, drop_answers=False)
    fault.end = _now()


def latency(run: Run, fault: Fault) -> None:
    proxy = run.suite.proxies[run.mode]
    proxy.set(4, latency=0.05)
    time.sleep(15)
    proxy.set(4, latency=0.0)
    fault.end = _now()


def db_crash(run: Run, fault: Fault) -> None:
    run.suite.cluster.crash_restart()
    fault.end = _now()


def backend_kill(run: Run, fault: Fault) -> None:
    assert run.suite.admin is not None
    query = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = :db AND application_name <> :me AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with run.suite.admin.connect() as conn:
            conn.execute(query, {"db": run.database, "me": CONTROLLER})
        time.sleep(0.5)
    fault.end = _now()


SCENARIOS = {
    s.name: s
    for s in [
        Scenario("worker-kill", "SIGKILL one worker process of h1", worker_kill, 1),
        Scenario("host-kill", "SIGKILL every process of h3, restart it 3 s later", host_kill, 3),
        Scenario("short-cut", "cut h2's link for 2 s (below the 8 s lock timeout)", short_cut, 2),
        Scenario(
            "long-cut",
            "cut h2's link for 16 s (twice the lock timeout) while it runs a long job",
            long_cut,
            2,
            fences=True,
        ),
        Scenario("one-way", "h3: server answers dropped for 5 s, then reset", one_way_drop, 3),
        Scenario("latency", "h4: +50 ms per packet each way for 15 s", latency, 4),
        Scenario("db-crash", "PostgreSQL killed (-m immediate) and restarted", db_crash),
        Scenario(
            "backend-kill",
            "pg_terminate_backend on every worker backend, 2/s for 5 s",
            backend_kill,
        ),
    ]
}
CI_CUT = {
    "direct": ["worker-kill", "long-cut", "one-way", "db-crash"],
    "pgbouncer": ["host-kill", "short-cut", "latency", "backend-kill"],
}


def run_scenario(suite: Suite, scenario: Scenario, mode: str, *, warm: float = 6,
                 after: float = 8) -> dict[str, Any]:  # fmt: skip
    """Run one scenario; returns its row of the table (with ``problems``)."""
    run = suite.new_run(mode)
    fault = Fault(scenario.name, scenario.host)
    try:
        began = time.monotonic()
        for host in range(1, HOSTS + 1):
            run.start_host(host)
        run.wait_up(HOSTS * suite.procs)
        phases = {"up": time.monotonic() - began}
        run.background()
        run.feeding.set()
        time.sleep(warm)
        fault.start = _now()
        scenario.inject(run, fault)
        time.sleep(after)
        stop_at = _now()
        run.feeding.clear()
        mark = time.monotonic()
        run.drain(60 + 2 * LOCK_TIMEOUT)
        phases["drain"] = time.monotonic() - mark
        mark = time.monotonic()
        run.stop_hosts()
        run.stop.set()
        phases["stop"] = time.monotonic() - mark
        row = judge(suite, run, scenario, fault, stop_at, warm)
        row["phases"] = phases
        return row
    finally:
        run.stop.set()
        run.stop_hosts()
        run.engine.dispose()
        for host in range(1, HOSTS + 1):
            suite.topology.heal(host)
        for proxy in suite.proxies.values():
            for host in range(1, HOSTS + 1):
                proxy.set(host, latency=0.0, drop_answers=False)


def judge(
    suite: Suite, run: Run, scenario: Scenario, fault: Fault, stop_at: int, warm: float
) -> dict[str, Any]:
    runs, cron, fences, budgets = checks.read_ledgers(run.directory)
    history, _ = checks.read_database(run.engine)
    with run.engine.connect() as conn:
        leftover = conn.execute(
            sa.text(
                "SELECT count(*) FROM queuekit_jobs "
                "WHERE task_identifier <> 'tick' OR locked_at IS NOT NULL"
            )
        ).scalar_one()
    evidence = checks.Evidence(
        runs, cron, fences, budgets, history, int(leftover), set(run.enqueued), run.kills,
        run.kill_log, checks.read_cron(run.engine, "tick"),
    )  # fmt: skip
    with open(f"{run.directory}/kills.json", "w") as f:
        json.dump(run.kill_log, f)
    problems, figures = checks.check(evidence)
    if scenario.fences and not figures["fences"]:
        problems.append(f"h{fault.host} ran a long job through the cut but never fenced itself")
    # Connections within budget, outside the fault and the keepalive time after it
    # (a cut worker's old backends linger until the server's keepalives reap them).
    quiet_after = fault.end + 20 * 10**9
    limit = suite.budget_limit(run.mode, budgets)
    worst_total = 0
    for moment, counts, total in run.samples:
        if fault.start - 10**9 <= moment <= quiet_after:
            continue
        worst_total = max(worst_total, total)
        if run.mode == "direct":
            for name, count in counts.items():
                if name in budgets and count > budgets[name]:
                    problems.append(f"{name} held {count} connections (budget {budgets[name]})")
    if worst_total > limit:
        problems.append(f"{worst_total} connections to the database (limit {limit})")
    baseline_start = fault.start - int((warm - 2) * 1e9)
    baseline = checks.throughput(runs, None, baseline_start, fault.start)
    healthy = {f"h{h}" for h in range(1, HOSTS + 1) if h != fault.host}
    healthy_before = checks.throughput(runs, healthy, baseline_start, fault.start)
    healthy_during = checks.throughput(
        runs, healthy, fault.start, max(fault.end, fault.start + 10**9)
    )
    recovery = checks.recovery_seconds(runs, baseline, fault.end, stop_at)
    return {
        "scenario": fault.name,
        "mode": run.mode,
        "jobs": len(run.enqueued),
        "executions": figures["executions"],
        "duplicates": figures["duplicates"],
        "fences": figures["fences"],
        "baseline": baseline,
        "healthy_before": healthy_before,
        "healthy_during": healthy_during,
        "recovery": recovery,
        "connections": worst_total,
        "limit": limit,
        "rate_window_max": figures["rate_window_max"],
        "cron_slots": figures["cron_slots"],
        "cron_skipped": figures["cron_skipped"],
        "started_while_dying": figures["started_while_dying"],
        "problems": problems,
    }
