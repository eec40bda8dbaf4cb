"""The command line in an ordinary terminal: 80 columns, short ids, clear wording.

Tables are rendered on a rich Console fixed at 80 columns (and the commands
run with ``COLUMNS=80``): every line fits, and no cell is cut to an ellipsis.
"""

from __future__ import annotations

import io
import json
import re
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from rich.console import Console

from queuekit import JobError, JobManager, JobSpec, migrations
from queuekit.cli import cli
from queuekit.cli.app import history_table, jobs_table

WIDTH = 80
NARROW = {"COLUMNS": str(WIDTH)}


def rendered(renderable: Any, width: int = WIDTH) -> str:
    """What ``renderable`` prints on a terminal ``width`` columns wide."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False).print(renderable)
    return out.getvalue()


def assert_fits(text: str, width: int = WIDTH) -> None:
    """Every line within ``width`` columns and no cell cut short."""
    for line in text.splitlines():
        assert len(line) <= width, line
    assert "…" not in text


def run(url: str, *args: str, env: dict[str, str] | None = None) -> Result:
    """``queuekit --database-url URL ARGS...`` in-process, 80 columns wide."""
    return CliRunner().invoke(cli, ["--database-url", url, *args], env={**NARROW, **(env or {})})


def ok(url: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = run(url, *args, env=env)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result.stdout


def refused(url: str, *args: str) -> str:
    result = run(url, *args)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    (line,) = result.stderr.splitlines()
    return line


@pytest.fixture
def url(empty_url: str) -> Iterator[str]:
    """A migrated database of each dialect, for the command line."""
    engine = sa.create_engine(empty_url)
    migrations.upgrade(engine)
    engine.dispose()
    yield empty_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'terminal.db'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def open_manager() -> Iterator[Any]:
    engines: list[sa.Engine] = []

    def opened(url: str) -> JobManager:
        engine = sa.create_engine(url)
        engines.append(engine)
        return JobManager(engine)

    yield opened
    for engine in engines:
        engine.dispose()


def failing_job(
    manager: JobManager, task: str, worker: str = "worker-a", error: str = "smtp said no"
) -> uuid.UUID:
    """A job whose one attempt failed with a real exception (so with a traceback)."""
    job = manager.add_job(task, {"n": 1}, max_attempts=1)
    (claimed,) = manager.get_jobs(worker, task_identifiers=[task])
    try:
        raise RuntimeError(error)
    except RuntimeError as raised:
        manager.fail_jobs(worker, [JobError(claimed, raised)], 12)
    return job.id


# -- 80 columns ----------------------------------------------------------------------------


def test_job_and_history_tables_fit_80_columns(sqlite_url: str, open_manager: Any) -> None:
    manager = open_manager(sqlite_url)
    manager.add_jobs(
        [
            JobSpec("reports.generate_monthly_statement", {}, queue_name="statements-eu"),
            JobSpec("mail.send_welcome_email", {}, priority=5),
            JobSpec("mail.send_welcome_email", {}, job_key="k", flags=["bulk"]),
        ]
    )
    manager.get_jobs("web-3", task_identifiers=["mail.send_welcome_email"])
    failing_job(manager, "billing.charge_card", error="smtp: no")
    listed = manager.list_jobs()

    table = rendered(jobs_table(listed))
    assert_fits(table)
    for job in listed:
        assert job.id.hex[:8] in table
        assert job.status in table
    for header in ("id", "task", "status", "run at", "tries", "locked by", "error"):
        assert header in table
    assert "web-3" in table  # `unlock jobs` needs the lock holder
    assert "smtp: no" in table
    assert "Not shown at this width: prio, queue (--json has every field)." in table

    records = manager.query_history()
    table = rendered(history_table(records))
    assert_fits(table)
    for header in ("started", "job", "task", "status", "error", "worker"):
        assert header in table
    assert "failed" in table and "smtp: no" in table

    # Narrower still, the least useful columns go, and the caption says which.
    tiny = rendered(jobs_table(listed), width=60)
    assert_fits(tiny, 60)
    assert "Not shown at this width: prio, queue, error" in tiny


def test_commands_fit_80_columns(sqlite_url: str, open_manager: Any) -> None:
    manager = open_manager(sqlite_url)
    manager.add_job("reports.generate_monthly_statement", {}, queue_name="statements-eu")
    failing_job(manager, "billing.charge_card")
    for args in (("jobs", "list"), ("history",), ("stats",)):
        assert_fits(ok(sqlite_url, *args))


def test_demo_history_table_fits_80_columns(tmp_path: Path) -> None:
    output = ok(f"sqlite:///{tmp_path / 'demo.db'}", "demo")
    table = output[output.index("A few history rows") :]
    table = table[: table.index("Worker totals")]
    assert_fits(table)
    assert "failed" in table and "completed" in table


def test_stats_headers_say_which_lock(sqlite_url: str, open_manager: Any) -> None:
    open_manager(sqlite_url).add_job("t", {}, queue_name="q")
    output = ok(sqlite_url, "stats")
    headers = [line.split() for line in output.splitlines() if "available" in line]
    for words in headers:
        assert words.count("locked") <= 1, words
    assert "queue lock" in output and "free" in output


# -- short ids -----------------------------------------------------------------------------


def test_short_ids_are_shown_and_unique_prefixes_accepted(url: str, open_manager: Any) -> None:
    manager = open_manager(url)
    first, second = manager.add_jobs([JobSpec("t", {"n": 1}), JobSpec("t", {"n": 2})])
    done = failing_job(manager, "gone")
    listed = ok(url, "jobs", "list")
    shown = [word for line in listed.splitlines() for word in line.split()[:1]]
    for job in (first, second):
        prefix = next(word for word in shown if job.id.hex.startswith(word) and len(word) >= 8)
        assert len(prefix) < 32
        assert "available" in ok(url, "jobs", "show", prefix)
    # A prefix works for a job that only history remembers, dashes or not.
    assert "smtp said no" in ok(url, "jobs", "show", str(done)[:13])
    assert "smtp said no" in ok(url, "history", "--job", done.hex[:12])
    # Ambiguous, unknown and too short prefixes are clean errors.
    common = 0
    while first.id.hex[common] == second.id.hex[common]:
        common += 1
    assert common >= 8  # ids made in one batch share their time digits
    assert "ambiguous" in refused(url, "jobs", "show", first.id.hex[:common])
    unknown = "ffff" + first.id.hex[4:12]
    assert "no job id starts with" in refused(url, "jobs", "show", unknown)
    assert "too short" in refused(url, "jobs", "show", "01a")
    assert "not a job id" in refused(url, "jobs", "show", "xyz-123")
    # Commands that change jobs take prefixes too.
    ok(url, "reschedule", first.id.hex[: common + 4], "--priority", "3")
    job = manager.get_job(first.id)
    assert job is not None and job.priority == 3


# -- wording -------------------------------------------------------------------------------


def test_add_says_whether_it_added_replaced_or_kept(sqlite_url: str) -> None:
    assert ok(sqlite_url, "add", "t", '{"v": 1}').startswith("Added job")
    assert ok(sqlite_url, "add", "t", '{"v": 1}', "--job-key", "k").startswith("Added job")
    replaced = ok(sqlite_url, "add", "t", '{"v": 2}', "--job-key", "k")
    assert replaced.startswith("Replaced job") and "(key 'k') with job" in replaced
    kept = ok(
        sqlite_url, "add", "t", '{"v": 3}', "--job-key", "k", "--job-key-mode", "unsafe_dedupe"
    )
    assert kept.startswith("Kept job") and "nothing changed" in kept


def test_add_with_an_unknown_rate_limit_key_names_the_command(sqlite_url: str) -> None:
    message = refused(sqlite_url, "add", "t", "{}", "--rate-limit-key", "nokey")
    assert "queuekit rate-limit set nokey CAPACITY INTERVAL" in message
    assert "register_rate_limit" not in message


def test_jobs_show_and_history_show_the_error_and_traceback(
    sqlite_url: str, open_manager: Any
) -> None:
    manager = open_manager(sqlite_url)
    job_id = failing_job(manager, "mail")
    shown = ok(sqlite_url, "jobs", "show", str(job_id))
    assert "RuntimeError: smtp said no" in shown or "smtp said no" in shown
    assert "Traceback (most recent call last)" in shown
    plain = ok(sqlite_url, "history")
    assert "Traceback" not in plain and "--errors" in plain
    full = ok(sqlite_url, "history", "--errors")
    assert "Traceback (most recent call last)" in full
    assert "raise RuntimeError(error)" in full


def test_replay_dry_run_changes_nothing_and_long_lists_are_capped(
    sqlite_url: str, open_manager: Any
) -> None:
    manager = open_manager(sqlite_url)
    for _ in range(25):
        failing_job(manager, "sync")
    before = {job.id: job for job in manager.list_jobs()}
    dry = ok(sqlite_url, "replay", "--dry-run")
    assert "Would replay 25 job(s)" in dry and "Nothing was changed" in dry
    assert "Showing 20 of them" in dry
    assert {job.id: job for job in manager.list_jobs()} == before
    answer = json.loads(ok(sqlite_url, "--json", "replay", "--dry-run"))
    assert answer["dry_run"] is True and len(answer["jobs"]) == 25
    assert {job.id: job for job in manager.list_jobs()} == before
    done = ok(sqlite_url, "replay")
    assert "Replayed 25 job(s)" in done and "Showing 20 of them" in done
    assert len(re.findall(r"\bsync\b", done)) == 20
    assert sum("replay" in job.flags for job in manager.list_jobs()) == 25


def test_drain_progress_counts_only_what_this_worker_can_claim(
    sqlite_url: str, open_manager: Any
) -> None:
    manager = open_manager(sqlite_url)
    manager.add_job("demo.index_document", {"document": 1})
    manager.add_job("demo.index_document", {"document": 2})
    manager.add_job(
        "demo.index_document", {"document": 3}, run_at=manager.now() + timedelta(days=1)
    )
    manager.add_job("not.mine", {})
    output = ok(sqlite_url, "worker", "--tasks", "queuekit.demo:TASKS", "--only-mapped", "--drain")
    assert "2/2" in output and "/3" not in output and "/4" not in output


def test_a_tasks_module_that_raises_says_where_and_how_to_see_the_traceback(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "broken_tasks_qk.py"
    module.write_text(textwrap.dedent("TASKS = {}\nraise ZeroDivisionError('division by zero')\n"))
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run(sqlite_url, "worker", "--tasks", "broken_tasks_qk:TASKS")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "ZeroDivisionError: division by zero" in line
    assert f"{module}:2" in line
    assert "QUEUEKIT_DEBUG=1" in line
    sys.modules.pop("broken_tasks_qk", None)
    debug = run(
        sqlite_url, "worker", "--tasks", "broken_tasks_qk:TASKS", env={"QUEUEKIT_DEBUG": "1"}
    )
    assert isinstance(debug.exception, ZeroDivisionError)
    sys.modules.pop("broken_tasks_qk", None)
