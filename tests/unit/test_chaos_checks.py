"""The chaos suite's judges on hand-made evidence: each must catch what it is for.

The suite itself needs root and network namespaces; these run anywhere, so
a check that stopped failing on a violation is noticed in every test run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from tests.chaos import checks

SECOND = 10**9
T0 = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


def run(job: str, corr: str, start: float, end: float | None, *, host: str = "h1",
        pid: int = 4, queue: str | None = None) -> checks.Execution:  # fmt: skip
    return checks.Execution(
        job, corr, "serial" if queue else "plain", queue, None, host, pid,
        int(start * SECOND), None if end is None else int(end * SECOND),
        None if end is None else "ok",
    )  # fmt: skip


def history(job: str, corr: str, status: str = "completed") -> SimpleNamespace:
    return SimpleNamespace(
        job_id=job, correlation_id=corr, status=status,
        error_message=None if status == "completed" else "lock expired",
        started_at=T0, task_identifier="plain",
    )  # fmt: skip


def evidence(executions: list[checks.Execution], rows: list[SimpleNamespace],
             kill_log: list[dict[str, object]]) -> checks.Evidence:  # fmt: skip
    return checks.Evidence(
        executions, [], [], {}, rows, 0, {str(r.job_id) for r in rows},
        [(k["host"], k["pid"], k["gone"]) for k in kill_log],  # type: ignore[misc]
        kill_log,
    )  # fmt: skip


def test_a_run_started_while_its_process_was_dying_ends_at_the_death() -> None:
    kill = {"host": "h3", "pid": None, "asked": 10 * SECOND, "sent": 10.8 * SECOND,
            "gone": 11 * SECOND}  # fmt: skip
    dying = run("j1", "c1", 10.5, None, host="h3", queue="q4")
    later = run("j2", "c2", 20, 21, host="h1", queue="q4")
    seen = evidence([dying, later], [history("j1", "c1", "failed"), history("j1", "c1b"),
                                     history("j2", "c2")], [kill])  # fmt: skip
    problems, figures = checks.check(seen)
    assert checks.end_of(dying, seen) == 11 * SECOND
    assert figures["started_while_dying"] == 1
    assert not [p for p in problems if "queue" in p], problems


def test_overlapping_named_queue_runs_are_reported() -> None:
    first = run("j1", "c1", 10, 12, queue="q1")
    second = run("j2", "c2", 11, 13, host="h2", queue="q1")
    problems, _ = checks.check(
        evidence([first, second], [history("j1", "c1"), history("j2", "c2")], [])
    )
    assert any(p.startswith("queue q1: attempt c2 started 1000 ms before") for p in problems)


def test_a_run_with_no_end_and_no_death_is_reported() -> None:
    lost = run("j1", "c1", 10, None, queue="q1")
    problems, _ = checks.check(evidence([lost], [history("j1", "c1", "failed")], []))
    assert any("has no end and no death" in p for p in problems), problems


def test_one_job_running_twice_at_once_is_reported() -> None:
    cut_off = run("j1", "c1", 10, 30, host="h2")
    retry = run("j1", "c2", 20, 21, host="h1")
    problems, _ = checks.check(
        evidence([cut_off, retry], [history("j1", "c1", "failed"), history("j1", "c2")], [])
    )
    assert any(p.startswith("job j1: attempt c2 on h1 started 10000 ms") for p in problems)


def cron(ticks: dict[str, tuple[datetime, datetime | None]], minutes: int,
         last: datetime | None = None) -> checks.CronEvidence:  # fmt: skip
    """A run from T0 (12:00:30) to ``minutes`` minutes and 40 s later."""
    stopped = T0 + timedelta(minutes=minutes, seconds=40)
    return checks.CronEvidence(T0, last, stopped, ticks)


def at(minute: int, second: float) -> datetime:
    return datetime(2026, 1, 1, 12, minute, 0, tzinfo=UTC) + timedelta(seconds=second)


def test_cron_every_slot_inside_the_run_has_exactly_one_job() -> None:
    ticks = {"a": (at(1, 0.1), at(1, 0.2)), "b": (at(2, 0.3), at(2, 0.4))}
    problems, checked, skipped = checks.check_cron(cron(ticks, 2, last=at(2, 0)))
    assert (problems, checked, skipped) == ([], 2, 0)


def test_cron_slot_fired_twice_or_never_is_reported() -> None:
    twice = {"a": (at(1, 0.1), at(1, 0.2)), "b": (at(1, 5), at(1, 5.1))}
    problems, _, _ = checks.check_cron(cron(twice, 1, last=at(1, 0)))
    assert any("12:01 enqueued 2 jobs" in p for p in problems), problems
    never = {"a": (at(1, 0.1), at(1, 0.2))}
    problems, _, _ = checks.check_cron(cron(never, 2, last=at(1, 0)))
    assert any("12:02 passed with no job" in p for p in problems), problems


def test_cron_slot_skipped_while_the_previous_tick_still_runs_is_by_design() -> None:
    stranded = {"a": (at(1, 0.1), at(2, 9)), "c": (at(3, 0.2), at(3, 0.3))}
    problems, checked, skipped = checks.check_cron(cron(stranded, 3, last=at(3, 0)))
    assert (problems, checked, skipped) == ([], 3, 1)


def test_cron_slot_near_the_stop_is_not_required() -> None:
    # Stopped at 12:02:10: the 12:02 slot is within the grace, so it may be missing.
    ticks = {"a": (at(1, 0.1), at(1, 0.2))}
    evidence = checks.CronEvidence(T0, at(1, 0), at(2, 10), ticks)
    assert checks.check_cron(evidence) == ([], 1, 0)


def test_cron_slot_fired_near_the_stop_is_checked_too() -> None:
    ticks = {"a": (at(1, 0.1), at(1, 0.2)), "b": (at(2, 0.3), at(2, 0.4)), "c": (at(2, 1), None)}
    evidence = checks.CronEvidence(T0, at(2, 0), at(2, 10), ticks)
    problems, checked, _ = checks.check_cron(evidence)
    assert checked == 2
    assert any("12:02 enqueued 2 jobs" in p for p in problems), problems
