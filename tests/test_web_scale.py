"""The dashboard at scale on PostgreSQL: every page's queries use indexes and render fast.

Slow (marked ``slow``; CI runs it): loads :data:`JOBS` jobs and :data:`HISTORY`
history rows with generate_series, then renders every page, EXPLAINs every
statement the page ran and fails on a sequential scan of the big tables.
The sizes are what this project's 2-core CI machine loads in about two minutes;
``QUEUEKIT_SCALE_HISTORY`` / ``QUEUEKIT_SCALE_JOBS`` raise them (10 million
history rows take about seven minutes there).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import JobManager, migrations
from tests.conftest import create_database_url
from tests.web_helpers import Client
from tests.web_scale import load

pytestmark = pytest.mark.slow

HISTORY = int(os.environ.get("QUEUEKIT_SCALE_HISTORY", 2_000_000))
JOBS = int(os.environ.get("QUEUEKIT_SCALE_JOBS", 1_000_000))
BIG_TABLES = {"queuekit_jobs", "queuekit_job_history"}
#: The target is 300 ms per page (medians measured here: 60-320 ms on a shared
#: 2-core machine, 0.3-1 s for task filters matching few rows until an index on
#: (task_identifier, id) exists). Speed is measured and printed, not asserted
#: to the millisecond on a shared machine; the ceiling only catches a page
#: that reads a big table whole.
PAGE_CEILING_MS = 3_000


@pytest.fixture(scope="module")
def big_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobManager]:
    urls = create_database_url("postgresql", tmp_path_factory.mktemp("scale"))
    url = next(urls)
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    load(engine, jobs_count=JOBS, history_count=HISTORY)
    yield JobManager(engine)
    engine.dispose()
    next(urls, None)


def pages(manager: JobManager) -> list[str]:
    with manager.engine.connect() as conn:
        some_job = conn.exec_driver_sql("SELECT id FROM queuekit_jobs LIMIT 1").scalar()
        cursor = conn.exec_driver_sql(
            "SELECT id FROM queuekit_jobs ORDER BY id DESC OFFSET 5000 LIMIT 1"
        ).scalar()
    return [
        "/",
        "/?window=24h",
        "/jobs",
        "/jobs?state=waiting",
        "/jobs?state=exhausted",
        "/jobs?state=scheduled&task=task.3",
        f"/jobs?before={cursor}",
        f"/jobs/{some_job}",
        "/history",
        "/history?status=completed&window=24h",
        "/history?status=failed&task=task.0&window=7d",
        "/tasks",
        "/queues",
    ]


def seq_scans(plan: Any) -> list[str]:
    """Relations read by a sequential scan anywhere in an EXPLAIN (FORMAT JSON) plan."""
    found: list[str] = []
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan":
            found.append(str(plan.get("Relation Name")))
        for value in plan.values():
            found += seq_scans(value)
    elif isinstance(plan, list):
        for item in plan:
            found += seq_scans(item)
    return found


def test_pages_use_indexes_and_render_fast(big_manager: JobManager) -> None:
    engine = big_manager.engine
    client = Client("wsgi", big_manager, cache_ttl=0)
    report: list[str] = []
    for page in pages(big_manager):
        statements: list[tuple[str, Any]] = []

        def record(
            _conn: Any, _cursor: Any, statement: str, params: Any, *_: Any, into: Any = statements
        ) -> None:
            if statement.lstrip().upper().startswith("SELECT") or "WITH" in statement[:10]:
                into.append((statement, params))

        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            assert client.get(page).status == 200, page
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            assert client.get(page).status == 200
            timings.append((time.perf_counter() - start) * 1000)
        with engine.connect() as conn:
            for statement, params in statements:
                plan = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()
                plan = json.loads(plan) if isinstance(plan, str) else plan
                scanned = BIG_TABLES & set(seq_scans(plan))
                assert not scanned, f"{page}: sequential scan of {scanned} in\n{statement}"
        median = statistics.median(timings)
        report.append(f"{page}: {median:.0f} ms, {len(statements)} statements")
        print(report[-1])
        assert median < PAGE_CEILING_MS, f"{page} took {median:.0f} ms"
    Path(os.environ.get("QUEUEKIT_SCALE_REPORT", "/dev/null")).write_text("\n".join(report))
