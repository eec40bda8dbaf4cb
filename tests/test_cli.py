"""The ``queuekit`` command line, against real databases.

Commands run in-process through click's CliRunner (stdout and stderr kept
apart), and a few through the installed ``queuekit`` script in a
subprocess. Every ``--json`` answer is parsed and compared with what a
JobManager reads from the same database; every error path must give exactly
one line on stderr, the documented exit status and no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from queuekit import JobManager, migrations
from queuekit.cli import cli, jsonable

HEAD = migrations.head()
UNREACHABLE_URL = "postgresql+psycopg://postgres@127.0.0.1:1/x"
EMAIL_SCHEMA = {
    "type": "object",
    "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
    "required": ["to"],
}


def invoke(url: str, *args: str, input: str | None = None) -> Result:
    """Run ``queuekit --database-url URL ARGS...`` in-process."""
    return CliRunner().invoke(cli, ["--database-url", url, *args], input=input)


def succeed(url: str, *args: str, input: str | None = None) -> Result:
    """Run a command that must succeed (exit 0, nothing on stderr but log lines)."""
    result = invoke(url, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Error:" not in result.stderr
    return result


def answer(url: str, *args: str, input: str | None = None) -> Any:
    """Run a command with ``--json`` and return its parsed answer."""
    return json.loads(succeed(url, "--json", *args, input=input).stdout)


def refused(url: str, *args: str, code: int, input: str | None = None) -> str:
    """Run a command that must fail with ``code``: one line on stderr, no traceback."""
    result = invoke(url, *args, input=input)
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def manager_for() -> Iterator[Any]:
    """Open JobManagers on URLs (after the CLI migrated them); disposed at the end."""
    engines: list[sa.Engine] = []

    def open_manager(url: str) -> JobManager:
        engine = sa.create_engine(url)
        engines.append(engine)
        return JobManager(engine)

    yield open_manager
    for engine in engines:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database file."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    succeed(url, "db", "upgrade")
    return url


# -- the main commands, on every dialect ----------------------------------------------------


def test_main_commands_answer_what_the_database_holds(
    empty_url: str, tmp_path: Path, manager_for: Any
) -> None:
    url = empty_url
    # db commands work on an empty database.
    assert answer(url, "db", "current") == {
        "current": None,
        "head": HEAD,
        "up_to_date": False,
        "merged": False,
    }
    assert "queuekit db upgrade" in refused(url, "db", "check", code=1)
    assert answer(url, "db", "upgrade") == {"from": None, "to": HEAD, "head": HEAD}
    assert answer(url, "db", "check")["up_to_date"] is True
    manager = manager_for(url)

    limit = answer(url, "rate-limit", "set", "mail", "5", "1 minute")
    assert (limit["capacity"], limit["interval"], limit["available_tokens"]) == (5, 60.0, 5)
    schema_file = tmp_path / "email.json"
    schema_file.write_text(json.dumps(EMAIL_SCHEMA))
    assert answer(url, "schema", "set", "demo.send_email", str(schema_file))["payload_schema"] == (
        EMAIL_SCHEMA
    )
    stored = manager.get_task("demo.send_email")
    assert stored is not None and stored.payload_schema == EMAIL_SCHEMA
    assert answer(url, "schema", "show", "demo.send_email")["payload_schema"] == EMAIL_SCHEMA

    email = answer(
        url,
        "add",
        "demo.send_email",
        '{"to": "a@example.com", "subject": "hi"}',
        "--rate-limit-key",
        "mail",
        "--priority",
        "3",
        "--flag",
        "urgent",
        "--queue",
        "outbox",
    )
    in_db = manager.get_job(uuid.UUID(email["id"]))
    assert in_db is not None and email == jsonable(in_db)
    assert (in_db.priority, in_db.flags, in_db.queue_name) == (3, ("urgent",), "outbox")
    later = answer(
        url,
        "add",
        "demo.index_document",
        '{"document": 1}',
        "--job-key",
        "doc-1",
        "--job-key-mode",
        "preserve_run_at",
        "--run-at",
        "2030-01-01T00:00:00+02:00",
    )
    assert (later["job_key"], later["job_key_mode"]) == ("doc-1", "preserve_run_at")
    assert later["run_at"].startswith("2029-12-31T22:00:00")
    declined = answer(
        url,
        "add",
        "demo.charge_card",
        '{"amount_cents": 1, "outcome": "declined"}',
        "--max-attempts",
        "1",
    )
    plain = answer(url, "add", "demo.index_document", "-", input='{"document": 2}')

    listed = answer(url, "jobs", "list")
    assert [j["id"] for j in listed] == [str(j.id) for j in manager.list_jobs()]
    assert len(listed) == 4
    available_emails = answer(
        url, "jobs", "list", "--status", "available", "--task", "demo.send_email"
    )
    assert [j["id"] for j in available_emails] == [email["id"]]
    shown = answer(url, "jobs", "show", later["id"])
    assert shown == {"job": later, "history": []}
    stats = answer(url, "stats")
    expected = jsonable(manager.stats())
    assert {k: stats[k] for k in ("by_status", "by_task", "by_queue")} == {
        k: expected[k] for k in ("by_status", "by_task", "by_queue")
    }
    assert stats["by_status"] == {"available": 4, "locked": 0, "exhausted": 0}

    # A worker drains what is due: two completions, one exhausting failure (whose
    # traceback the worker logs, at ERROR).
    worked = invoke(
        url,
        "--json",
        "worker",
        "--tasks",
        "queuekit.demo:TASKS",
        "--drain",
        "--poll-interval",
        "0.1 seconds",
        "--no-maintenance",
        "--log-level",
        "warning",
    )
    assert worked.exit_code == 0, (worked.exit_code, worked.stdout, worked.stderr)
    assert worked.stderr.count("Traceback") == 1 and "CardDeclined" in worked.stderr
    drained = json.loads(worked.stdout)
    counts = {k: drained["stats"][k] for k in ("claimed", "completed", "failed", "exhausted")}
    assert counts == {"claimed": 3, "completed": 2, "failed": 1, "exhausted": 1}
    assert manager.get_job(uuid.UUID(email["id"])) is None
    assert manager.get_job(uuid.UUID(plain["id"])) is None

    history = answer(url, "history")
    assert [h["id"] for h in history] == [str(h.id) for h in manager.query_history()]
    assert sorted(h["status"] for h in history) == ["completed", "completed", "failed"]
    failed = answer(url, "history", "--status", "failed", "--task", "demo.charge_card")
    assert [h["job_id"] for h in failed] == [declined["id"]]
    gone = answer(url, "jobs", "show", plain["id"])
    assert gone["job"] is None and [h["status"] for h in gone["history"]] == ["completed"]
    assert answer(url, "rate-limit", "show", "mail")["available_tokens"] == 4

    replayed = answer(url, "replay", "--task", "demo.charge_card")
    assert len(replayed) == 1
    assert replayed[0]["job_key"] == declined["id"] and "replay" in replayed[0]["flags"]
    assert manager.get_job(uuid.UUID(replayed[0]["id"])) is not None

    rescheduled = answer(url, "reschedule", later["id"], "--priority", "7", "--max-attempts", "4")
    assert [(j["id"], j["priority"], j["max_attempts"]) for j in rescheduled] == [
        (later["id"], 7, 4)
    ]
    job = manager.get_job(uuid.UUID(later["id"]))
    assert job is not None and (job.priority, job.max_attempts) == (7, 4)
    failed_now = answer(url, "fail", replayed[0]["id"], "--reason", "operator said so")
    assert [j["status"] for j in failed_now] == ["exhausted"]
    job = manager.get_job(uuid.UUID(replayed[0]["id"]))
    assert job is not None and job.last_error == "operator said so"

    # Unlocking: a job claimed by worker w1, and a named queue held by w2.
    loose = manager.add_job("demo.index_document", {"document": 3})
    queued = manager.add_job("demo.index_document", {"document": 4}, queue_name="serial")
    assert [j.id for j in manager.get_jobs("w1", task_identifiers=["demo.index_document"])] == [
        loose.id
    ]
    assert [j.id for j in manager.get_jobs("w2", task_identifiers=["demo.index_document"])] == [
        queued.id
    ]
    assert [j["id"] for j in answer(url, "unlock", "jobs", "w1")] == [str(loose.id)]
    unlocked_queues = answer(url, "unlock", "queues", "serial")
    assert [q["queue_name"] for q in unlocked_queues] == ["serial"]
    assert {j.status for j in manager.list_jobs(task_identifier="demo.index_document")} == {
        "available"
    }

    assert set(answer(url, "gc")) == {"job_history", "job_queues", "task_identifiers"}
    report = answer(url, "maintain", "--once")
    assert (report["reset"], report["gc"]) == (0, None)
    removed = answer(url, "schema", "remove", "demo.send_email")
    assert removed["payload_schema"] is None

    downgraded = answer(url, "db", "downgrade", "base", "--yes")
    assert (downgraded["from"], downgraded["to"]) == (HEAD, None)
    assert answer(url, "db", "current")["current"] is None


# -- human output, on SQLite -------------------------------------------------------------------


def test_human_output_shows_tables_and_summaries(sqlite_url: str, tmp_path: Path) -> None:
    url = sqlite_url
    added = succeed(url, "add", "demo.index_document", '{"document": 1}', "--queue", "docs")
    assert "Added job" in added.stdout
    job_id = added.stdout.split()[2]
    assert uuid.UUID(job_id)
    assert uuid.UUID(job_id).hex[:8] in succeed(url, "jobs", "list").stdout
    shown = succeed(url, "jobs", "show", job_id).stdout
    assert "task_identifier" in shown and "demo.index_document" in shown
    stats = succeed(url, "stats").stdout
    assert "By task" in stats and "By named queue" in stats and "docs" in stats
    drained = succeed(url, "worker", "--tasks", "queuekit.demo:TASKS", "--drain")
    assert "Draining" in drained.stdout and "completed" in drained.stdout
    assert "started" in drained.stderr  # the worker's log lines go to stderr
    assert "demo.index_document" in succeed(url, "history").stdout
    assert "Replayed 0 job(s)" in succeed(url, "replay", "--since", "1 hour").stdout
    assert "Unlocked 0 job(s)" in succeed(url, "unlock", "jobs", "--all").stdout
    assert "Unlocked 0 queue(s)" in succeed(url, "unlock", "queues", "--all").stdout
    assert "Deleted" in succeed(url, "gc").stdout
    assert "Maintenance pass" in succeed(url, "maintain", "--once").stdout
    assert "capacity" in succeed(url, "rate-limit", "set", "k", "2", "1 second").stdout
    assert "available tokens" in succeed(url, "rate-limit", "show", "k").stdout
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(EMAIL_SCHEMA))
    assert "Stored" in succeed(url, "schema", "set", "mail", str(schema_file)).stdout
    assert json.loads(succeed(url, "schema", "show", "mail").stdout) == EMAIL_SCHEMA
    assert "up to date" in succeed(url, "db", "check").stdout
    assert HEAD in succeed(url, "db", "current").stdout
    assert "Already at revision" in succeed(url, "db", "upgrade").stdout
    # --json is accepted after the command name too.
    assert json.loads(succeed(url, "stats", "--json").stdout)["by_status"]["available"] == 0


def test_fail_and_reschedule_check_every_id_before_changing_anything(
    sqlite_url: str, manager_for: Any
) -> None:
    manager = manager_for(sqlite_url)
    job = manager.add_job("t", {})
    unknown = str(uuid.uuid4())
    message = refused(sqlite_url, "fail", str(job.id), unknown, "--reason", "x", code=2)
    assert unknown in message and "nothing was changed" in message
    refused(sqlite_url, "reschedule", str(job.id), unknown, "--priority", "1", code=2)
    after = manager.get_job(job.id)
    assert after is not None and (after.status, after.priority) == ("available", 0)


# -- error paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("add", "t", "{bad json"), "not valid JSON"),
        (("add", "t", "[1, 2]"), "Invalid payload"),
        (("add", "t", "{}", "--run-at", "2030-01-01T00:00:00"), "no UTC offset"),
        (("add", "t", "{}", "--delay", "soon"), "malformed duration"),
        (("add", "t", "{}", "--rate-limit-key", "nope"), "`queuekit rate-limit set nope"),
        (("add", "t", "{}", "--job-key-mode", "replace"), "job-key"),
        (("add", "t", "{}", "--max-attempts", "0"), "--max-attempts"),
        (("add",), "Missing argument"),
        (("add", "t", "{}", "--colour"), "No such option"),
        (("jobs", "show", "not-a-uuid"), "not a job id"),
        (("jobs", "show", "0190b6a0-0000-7000-8000-000000000000"), "no job"),
        (("history", "--since", "-1 hour"), "duration"),
        (("history", "--from", "2030-01-02T00:00:00Z", "--to", "2030-01-01T00:00:00Z"), "after"),
        (("schema", "show", "no.such.task"), "unknown task identifier"),
        (("schema", "set", "t", "/no/such/file.json"), "cannot read"),
        (("rate-limit", "show", "nope"), "unknown rate-limit key"),
        (("rate-limit", "set", "k", "10", "0 seconds"), "greater than zero"),
        (("unlock", "jobs"), "--all"),
        (("reschedule", "0190b6a0-0000-7000-8000-000000000000"), "nothing to change"),
        (("worker", "--tasks", "no_such_module_qk:TASKS"), "cannot import"),
        (("worker", "--tasks", "queuekit.demo"), "module:attribute"),
        (("worker", "--tasks", "queuekit.demo:CRONTABS"), "mapping"),
        (("db", "downgrade", "base"), "--yes"),
        (("nonsense",), "No such command"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    sqlite_url: str, manager_for: Any, args: tuple[str, ...], needle: str
) -> None:
    message = refused(sqlite_url, *args, code=2)
    assert needle in message
    assert manager_for(sqlite_url).list_jobs() == []  # nothing was written


def test_schema_violation_names_the_path_and_writes_nothing(
    sqlite_url: str, tmp_path: Path, manager_for: Any
) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps(EMAIL_SCHEMA))
    succeed(sqlite_url, "schema", "set", "mail", str(schema_file))
    message = refused(sqlite_url, "add", "mail", '{"to": 5}', code=2)
    assert "Invalid payload" in message and "$.to" in message
    assert "must hold a JSON object" in refused(
        sqlite_url, "schema", "set", "mail", "-", input="[1]", code=2
    )
    invalid_schema = tmp_path / "invalid.json"
    invalid_schema.write_text(json.dumps({"type": "no-such-type"}))
    refused(sqlite_url, "schema", "set", "mail", str(invalid_schema), code=2)
    assert manager_for(sqlite_url).list_jobs() == []


def test_unreachable_database_is_exit_status_1() -> None:
    message = refused(UNREACHABLE_URL, "stats", code=1)
    assert "cannot use the database at postgresql+psycopg://postgres@127.0.0.1:1/x" in message
    refused(UNREACHABLE_URL, "db", "current", code=1)


def test_malformed_url_and_missing_sqlite_file(tmp_path: Path) -> None:
    assert "not a database URL" in refused("nonsense", "stats", code=2)
    missing = tmp_path / "missing.db"
    message = refused(f"sqlite:///{missing}", "jobs", "list", code=1)
    assert "does not exist" in message and "queuekit db upgrade" in message
    assert not missing.exists()


def test_unmigrated_database_names_the_upgrade_command(empty_url: str) -> None:
    if empty_url.startswith("sqlite:///"):
        sqlite3.connect(empty_url.removeprefix("sqlite:///")).close()  # an empty file
    for args in (("stats",), ("jobs", "list"), ("add", "t", "{}"), ("db", "check")):
        assert "queuekit db upgrade" in refused(empty_url, *args, code=1)
    assert answer(empty_url, "db", "current")["current"] is None


def test_database_url_comes_from_the_environment(sqlite_url: str) -> None:
    result = CliRunner().invoke(cli, ["--json", "stats"], env={"QUEUEKIT_DATABASE_URL": sqlite_url})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["by_status"]["available"] == 0


# -- the installed script --------------------------------------------------------------------------


def script() -> str:
    """The ``queuekit`` script of the environment running the tests."""
    found = shutil.which("queuekit", path=str(Path(sys.executable).parent))
    assert found is not None, "the queuekit script is not installed next to the interpreter"
    return found


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed script with a clean QUEUEKIT_DATABASE_URL."""
    env = {k: v for k, v in os.environ.items() if k != "QUEUEKIT_DATABASE_URL"}
    return subprocess.run(
        [script(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_script_demo_runs_on_a_fresh_sqlite_file(tmp_path: Path, manager_for: Any) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    done = run_script("--database-url", url, "demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "What happened, per task" in done.stdout and "A few history rows" in done.stdout
    manager = manager_for(url)
    stats = manager.stats()
    assert stats.by_status == {"available": 0, "locked": 0, "exhausted": 10}
    completed = manager.query_history(status="completed", limit=1000)
    assert len({r.job_id for r in completed}) == 291  # 300 jobs + 1 cron run - 10 declined
    assert len(manager.query_history(status="partial_success", limit=1000)) == 30
    assert {r.task_identifier for r in completed} >= {"demo.hourly_report", "demo.resize_image"}


def test_script_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    done = run_script("--database-url", UNREACHABLE_URL, "jobs", "list", cwd=tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("Error: ")
    assert "Traceback" not in done.stderr and done.stdout == ""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert run_script("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    bad = run_script("--database-url", url, "add", "t", "{oops", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1
    listed = run_script("--database-url", url, "--json", "jobs", "list", cwd=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
