"""Observability across processes: ``queuekit worker --metrics-port`` and the cost of none.

A real ``queuekit worker`` subprocess serves Prometheus text that this test
scrapes; a plain worker run imports neither OpenTelemetry nor
prometheus_client.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from queuekit import JobManager, JobSpec

TESTS = Path(__file__).parent
PATIENCE = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            text: str = answer.read().decode()
            return text
    except OSError:
        return None


def sample(text: str, name: str, labels: str) -> float | None:
    """The value of one Prometheus sample whose label set contains ``labels``."""
    for line in text.splitlines():
        match = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
        if match and labels in match.group(1):
            return float(match.group(2))
    return None


def test_worker_serves_prometheus_metrics(manager: JobManager, empty_url: str) -> None:
    manager.add_jobs([JobSpec("slow", {"seconds": 0.01}) for _ in range(5)])
    manager.add_job("waiting", {})  # no worker runs it: it stays in the backlog
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "queuekit"),
            "--database-url",
            empty_url,
            "worker",
            "--tasks",
            "worker_app:TASKS",
            "--only-mapped",
            "--poll-interval",
            "0.05 seconds",
            "--no-maintenance",
            "--metrics-port",
            str(port),
            "--backlog-metrics",
        ],
        cwd=TESTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    task = 'queuekit_task_identifier="slow"'
    try:
        deadline = time.monotonic() + PATIENCE
        text = ""
        while sample(text, "queuekit_jobs_completed_total", task) != 5.0:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"no metrics:\n{text}\n{process.communicate()[0]}")
            time.sleep(0.1)
            text = scrape(port) or ""
        assert sample(text, "queuekit_jobs_enqueued_total", task) is None  # enqueued elsewhere
        assert sample(text, "queuekit_attempt_duration_seconds_count", task) == 5.0
        assert 'queuekit_outcome="completed"' in text
        assert sample(text, "queuekit_job_queue_time_seconds_count", task) == 5.0
        waiting = 'queuekit_task_identifier="waiting"'
        assert sample(text, "queuekit_backlog_available", waiting) == 1.0
        assert re.search(r"^queuekit_backlog_oldest_waiting_age_seconds(\{[^}]*\})? ", text, re.M)
        assert_dashboard_metrics_exist(text)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=PATIENCE)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}/metrics" in output


def assert_dashboard_metrics_exist(scraped: str) -> None:
    """Every metric the Grafana dashboard queries is one the worker serves."""
    dashboard = json.loads((TESTS.parent / "docs" / "grafana-queuekit.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\bqueuekit_[a-z_]+", target["expr"])
        if name not in ("queuekit_task_identifier", "queuekit_outcome")
    }
    served = set(re.findall(r"^(queuekit_[a-z_]+)", scraped, re.M))
    # Counters appear once something was counted; these never were in this run.
    served |= {"queuekit_jobs_enqueued_total", "queuekit_jobs_failed_total"}
    served |= {"queuekit_jobs_exhausted_total", "queuekit_jobs_cancelled_total"}
    assert len(queried) >= 10
    assert queried <= served, queried - served


def test_a_plain_worker_imports_no_observability_library(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import sqlalchemy as sa
        import queuekit
        from queuekit import JobManager, JobSpec, Worker, migrations

        engine = sa.create_engine("sqlite:///{tmp_path / "plain.db"}")
        migrations.upgrade(engine)
        manager = JobManager(engine)
        manager.add_jobs([JobSpec("sync", {{}}), JobSpec("async", {{}})])

        async def run_async(payload, ctx):
            ctx.manager.add_job("sync", {{}})

        tasks = {{"sync": lambda payload, ctx: None, "async": run_async}}
        stats = Worker(manager, tasks, maintenance=False).drain()
        assert stats.completed == 3, stats
        assert manager.get_job(manager.add_job("sync", {{}}).id).trace_context is None
        loaded = sorted(
            name for name in sys.modules
            if name.startswith(("opentelemetry", "prometheus_client"))
        )
        print("loaded:", loaded)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=PATIENCE
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout
