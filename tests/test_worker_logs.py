"""The worker's log (SPEC §10): one line per attempt outcome on ``queuekit.worker``.

Completions at INFO, failures with their traceback at WARNING, exhaustions
at ERROR, each with task, job id, attempt, queue and duration in the
message and in the record's attributes; ``queuekit worker`` writes them as
rich lines on a terminal and as JSON lines with ``--log-format json``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.logging import RichHandler

from queuekit import JobContext, JobManager, RetryPolicy, Worker
from queuekit.cli import cli
from queuekit.cli.logs import JsonLineFormatter, stderr_handler

FIELDS = ("task_identifier", "job_id", "attempt", "queue_name", "worker_id", "duration_ms")


class Boom(Exception):
    """What the failing task raises."""


def fail_once(_payload: dict[str, Any], ctx: JobContext) -> None:
    if ctx.job.attempts == 1:
        raise Boom("first attempt fails")


def always_fail(_payload: dict[str, Any], _ctx: JobContext) -> None:
    raise Boom("never works")


async def async_ok(_payload: dict[str, Any], _ctx: JobContext) -> None:
    await asyncio.sleep(0)


def outcome_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "queuekit.worker" and hasattr(r, "outcome")]


def test_one_line_per_outcome_with_fields_and_tracebacks(
    clean_manager: JobManager, caplog: pytest.LogCaptureFixture
) -> None:
    manager = clean_manager
    # The retry lies beyond any drain, however slow the machine: one outcome per job.
    manager.retry = RetryPolicy(base_delay="1 hour", max_delay="2 hours")
    ok = manager.add_job("ok", {}, queue_name="mail")
    flaky = manager.add_job("flaky", {}, max_attempts=2)
    doomed = manager.add_job("doomed", {}, max_attempts=1)
    worker = Worker(
        manager,
        {"ok": async_ok, "flaky": fail_once, "doomed": always_fail},
        maintenance=False,
        worker_id="logging-worker",
    )
    with caplog.at_level(logging.INFO, logger="queuekit.worker"):
        worker.drain()

    by_job = {r.job_id: r for r in outcome_records(caplog)}  # type: ignore[attr-defined]
    assert len(outcome_records(caplog)) == 3 == len(by_job)

    done = by_job[ok.id]
    assert done.levelno == logging.INFO and done.exc_info is None
    assert {name: getattr(done, name) for name in FIELDS[:5]} == {
        "task_identifier": "ok",
        "job_id": ok.id,
        "attempt": 1,
        "queue_name": "mail",
        "worker_id": "logging-worker",
    }
    assert isinstance(done.duration_ms, int) and done.duration_ms >= 0  # type: ignore[attr-defined]
    assert done.outcome == "completed" and done.exhausted is False  # type: ignore[attr-defined]
    message = done.getMessage()
    assert "ok" in message and str(ok.id) in message and "attempt 1" in message
    assert "queue mail" in message and "completed" in message

    failed = by_job[flaky.id]
    assert failed.levelno == logging.WARNING and failed.outcome == "failed"  # type: ignore[attr-defined]
    assert failed.error == "first attempt fails" and failed.exc_info is not None  # type: ignore[attr-defined]
    assert failed.exc_info[0] is Boom
    assert "first attempt fails" in failed.getMessage()
    assert "fail_once" in caplog.text  # the traceback names the task's frame

    exhausted = by_job[doomed.id]
    assert exhausted.levelno == logging.ERROR and exhausted.exhausted is True  # type: ignore[attr-defined]
    assert exhausted.exc_info is not None and "exhausted" in exhausted.getMessage()


def test_json_formatter_writes_the_fields_and_the_traceback() -> None:
    try:
        raise Boom("kaput")
    except Boom as error:
        record = logging.LogRecord(
            "queuekit.worker", logging.WARNING, __file__, 1, "job %s failed", ("x",), None
        )
        record.exc_info = (Boom, error, error.__traceback__)
    record.job_id = "x"
    record.attempt = 2
    line = json.loads(JsonLineFormatter().format(record))
    assert line["message"] == "job x failed" and line["level"] == "warning"
    assert line["logger"] == "queuekit.worker" and line["job_id"] == "x" and line["attempt"] == 2
    assert "Boom: kaput" in line["traceback"]
    assert "msg" not in line and "args" not in line


def test_a_terminal_gets_the_rich_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Terminal())
    assert isinstance(stderr_handler("text"), RichHandler)
    assert not isinstance(stderr_handler("json"), RichHandler)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not isinstance(stderr_handler("text"), RichHandler)


def test_cli_worker_writes_json_log_lines(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    runner = CliRunner()
    assert runner.invoke(cli, ["--database-url", url, "db", "upgrade"]).exit_code == 0
    added = runner.invoke(
        cli,
        [
            "--database-url",
            url,
            "--json",
            "add",
            "demo.charge_card",
            '{"amount_cents": 5, "outcome": "declined"}',
            "--max-attempts",
            "1",
        ],
    )
    assert added.exit_code == 0, added.output
    job_id = json.loads(added.stdout)["id"]
    worked = runner.invoke(
        cli,
        [
            "--database-url",
            url,
            "worker",
            "--tasks",
            "queuekit.demo:TASKS",
            "--drain",
            "--no-maintenance",
            "--log-format",
            "json",
        ],
    )
    assert worked.exit_code == 0, (worked.stdout, worked.stderr)
    lines = [json.loads(line) for line in worked.stderr.splitlines() if line.strip()]
    [outcome] = [line for line in lines if line.get("job_id") == job_id]
    assert outcome["level"] == "error" and outcome["outcome"] == "failed"
    assert outcome["exhausted"] is True and outcome["task_identifier"] == "demo.charge_card"
    assert outcome["attempt"] == 1 and "duration_ms" in outcome
    assert "CardDeclined" in outcome["traceback"]
    assert any("started" in line["message"] for line in lines)
