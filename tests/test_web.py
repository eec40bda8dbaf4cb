"""The dashboard in process, on every dialect, through both adapters, under a mount prefix."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import JobManager
from queuekit.errors import DatabaseError
from queuekit.web import queries
from queuekit.web.cache import ResultCache
from tests.web_helpers import AUTH, PREFIX, USER, Client, assert_prefixed, post_form, seed

pytest.importorskip("jinja2")

PAGES = ["/", "/jobs", "/history", "/queues", "/tasks", "/rate-limits", "/cron", "/workers"]


@pytest.fixture(params=["wsgi", "asgi"])
def adapter(request: pytest.FixtureRequest) -> str:
    """Each test using it runs through both adapters."""
    return str(request.param)


def test_every_page_renders_under_the_prefix(clean_manager: JobManager, adapter: str) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager)
    for page in [*PAGES, f"/jobs/{seeded.exhausted}", "/jobs?state=exhausted"]:
        reply = client.get(page)
        assert reply.status == 200, (page, reply.text[:500])
        assert_prefixed(reply.text)
    overview = client.get("/").text
    assert 'id="count-waiting"' in overview
    assert f'href="{PREFIX}/jobs?state=exhausted"' in overview


def test_no_credentials_get_401_and_no_data(clean_manager: JobManager, adapter: str) -> None:
    seed(clean_manager, task="secret.task")
    client = Client(adapter, clean_manager)
    for page in [*PAGES, "/static/queuekit.js"]:
        reply = client.get(page, headers={})
        assert reply.status == 401
        assert "secret.task" not in reply.text
        assert reply.header("www-authenticate").startswith("Basic")
    wrong = client.get("/jobs", headers={"Authorization": "Basic b3BzOm5vcGU="})
    assert wrong.status == 401


def test_read_only_sees_no_actions_and_its_posts_get_403(
    clean_manager: JobManager, adapter: str
) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager, role="read_only")
    for page in [*PAGES, f"/jobs/{seeded.exhausted}", f"/jobs/{seeded.locked}"]:
        reply = client.get(page)
        assert reply.status == 200
        assert 'method="post"' not in reply.text, page
    reply = client.post(f"/jobs/{seeded.waiting}/fail", {"reason": "no"})
    assert reply.status == 403
    job = clean_manager.get_job(seeded.waiting)
    assert job is not None and job.status == "available"


def test_cross_site_posts_are_refused(clean_manager: JobManager, adapter: str) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager)
    evil = client.post(
        f"/jobs/{seeded.waiting}/fail", {"reason": "x"}, {"Origin": "http://evil.example"}
    )
    assert evil.status == 403
    referer = client.post(
        f"/jobs/{seeded.waiting}/fail",
        {"reason": "x"},
        {"Origin": "", "Referer": "http://evil.example/page"},
    )
    assert referer.status == 403
    bare = client.post(f"/jobs/{seeded.waiting}/fail", {"reason": "x"}, {"Origin": ""})
    assert bare.status == 403
    job = clean_manager.get_job(seeded.waiting)
    assert job is not None and job.status == "available"
    # Neither header, but the token from the page matches the cookie: accepted.
    page = client.get(f"/jobs/{seeded.waiting}").text
    fields = post_form(page, f"{PREFIX}/jobs/{seeded.waiting}/fail")
    ok = client.post(f"/jobs/{seeded.waiting}/fail", {**fields, "reason": "x"}, {"Origin": ""})
    assert ok.status == 303
    job = clean_manager.get_job(seeded.waiting)
    assert job is not None and job.status == "exhausted" and job.last_error == "x"


def test_everything_is_escaped(clean_manager: JobManager, adapter: str) -> None:
    payload = "<script>alert('xss')</script>"
    seeded = seed(clean_manager, task=payload, error=payload)
    clean_manager.add_job(payload, {"html": payload}, queue_name=payload, flags=[payload])
    client = Client(adapter, clean_manager)
    for page in [*PAGES, f"/jobs/{seeded.exhausted}", "/history?status=failed"]:
        reply = client.get(page)
        assert reply.status == 200
        assert "<script>alert" not in reply.text, page
    detail = client.get(f"/jobs/{seeded.exhausted}").text
    assert "&lt;script&gt;alert(" in detail  # the error message and the task, as text
    assert "RuntimeError" in detail  # the traceback is there, escaped


@pytest.mark.parametrize(
    "value", ['it\'s "quoted"', "100%_off", "naïve ☃ 日本", "x" * 10_240, "' OR 1=1 --"]
)
def test_filter_values_are_bound_parameters(clean_manager: JobManager, value: str) -> None:
    seed(clean_manager)
    client = Client("wsgi", clean_manager)
    from urllib.parse import quote

    for page in ["/jobs?task=", "/jobs?queue=", "/jobs?flag=", "/history?task="]:
        reply = client.get(page + quote(value))
        assert reply.status == 200, (page, reply.text[:300])
        assert "no jobs match" in reply.text or "nothing in this window" in reply.text


def test_a_job_id_that_is_not_a_uuid_is_a_404(clean_manager: JobManager, adapter: str) -> None:
    client = Client(adapter, clean_manager)
    for bad in ["nope", "1", "' OR 1=1", "%3Cscript%3E"]:
        assert client.get(f"/jobs/{bad}").status == 404
        assert client.post(f"/jobs/{bad}/fail", {"reason": "x"}).status == 404
    assert client.get(f"/jobs/{uuid.uuid4()}").status == 404
    assert client.get("/jobs?before=garbage").status == 400
    assert client.get("/jobs?state=bogus").status == 400


def test_counts_stop_at_the_cap(clean_manager: JobManager, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries, "COUNT_CAP", 5)
    clean_manager.add_jobs([_spec(i) for i in range(7)])
    text = Client("wsgi", clean_manager).get("/").text
    assert '<span class="n">5+</span><span class="k">waiting</span>' in text
    assert '<span class="n">0</span><span class="k">running</span>' in text


def _spec(i: int, **options: Any) -> Any:
    from queuekit import JobSpec

    return JobSpec("bulk.task", {"i": i}, **options)


def test_keyset_pages_cover_every_job_once(clean_manager: JobManager) -> None:
    ids = {job.id for job in clean_manager.add_jobs([_spec(i) for i in range(123)])}
    client = Client("wsgi", clean_manager)
    seen: list[str] = []
    path = "/jobs"
    pages = 0
    while path:
        text = client.get(path).text
        seen += _row_ids(text)
        pages += 1
        older = [link for link in _pager(text) if "before=" in link]
        path = older[0].removeprefix(PREFIX).replace("&amp;", "&") if older else ""
    assert pages == 3
    assert len(seen) == len(set(seen)) == 123
    assert {uuid.UUID(i) for i in seen} == ids
    assert seen == sorted(seen, reverse=True)
    # Back from the last page: the newer link gives the page before it.
    newer = [link for link in _pager(text) if "after=" in link]
    back = client.get(newer[0].removeprefix(PREFIX).replace("&amp;", "&")).text
    assert _row_ids(back) == seen[50:100]


def _walk(client: Client, path: str, rows: Any) -> tuple[list[str], str]:
    """Follow the ``older`` links from ``path``: every row id seen, and the last page."""
    seen: list[str] = []
    while path:
        text = client.get(path).text
        seen += rows(text)
        older = [link for link in _pager(text) if "before=" in link]
        path = older[0].removeprefix(PREFIX).replace("&amp;", "&") if older else ""
    return seen, text


@pytest.mark.parametrize("cap", [5, queries.COUNT_CAP])
def test_filtered_keyset_pages_cover_every_match_once(
    clean_manager: JobManager, monkeypatch: pytest.MonkeyPatch, cap: int
) -> None:
    # Past the cap a filter reads jobs in id order; under it, its matches through
    # their own index, sorted: both give the same pages.
    monkeypatch.setattr(queries, "COUNT_CAP", cap)
    from queuekit import JobSpec

    specs = [JobSpec("other.task" if i % 3 else "bulk.task", {"i": i}) for i in range(200)]
    ids = {job.id for job in clean_manager.add_jobs(specs) if job.task_identifier == "bulk.task"}
    client = Client("wsgi", clean_manager, cache_ttl=0)
    seen, last = _walk(client, "/jobs?state=waiting&task=bulk.task", _row_ids)
    assert len(seen) == len(set(seen)) == len(ids) == 67
    assert {uuid.UUID(i) for i in seen} == ids
    assert seen == sorted(seen, reverse=True)
    newer = [link for link in _pager(last) if "after=" in link]
    back = client.get(newer[0].removeprefix(PREFIX).replace("&amp;", "&")).text
    assert _row_ids(back) == seen[:50]


def test_history_pages_go_newest_first_by_start(clean_manager: JobManager) -> None:
    # Attempt ids are random claim ids: the order is the start time's, then the id's.
    for _ in range(3):
        clean_manager.add_jobs([_spec(i) for i in range(25)])
        claimed = clean_manager.get_jobs("w", batch_size=25)
        clean_manager.complete_jobs("w", claimed, 5)
    client = Client("wsgi", clean_manager, cache_ttl=0)
    seen, last = _walk(client, "/history?status=completed", _attempt_ids)
    from queuekit.models import job_history

    select_attempts = (
        sa.select(job_history.c.id)
        .where(job_history.c.status == "completed")
        .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
    )
    with clean_manager.engine.connect() as conn:
        expected = [str(row.id) for row in conn.execute(select_attempts)]
    assert len(seen) == len(set(seen)) == 75
    assert seen == expected
    newer = [link for link in _pager(last) if "after=" in link]
    back = client.get(newer[0].removeprefix(PREFIX).replace("&amp;", "&")).text
    assert _attempt_ids(back) == seen[:50]


def _attempt_ids(text: str) -> list[str]:
    import re

    return re.findall(r'<tr data-attempt-id="([0-9a-f-]+)">', text)


def _row_ids(text: str) -> list[str]:
    import re

    return re.findall(r'<tr data-job-id="([0-9a-f-]+)">', text)


def _pager(text: str) -> list[str]:
    import re

    block = text.split('<nav class="pager">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'href="([^"]+)"', block)


def test_actions_are_one_call_each_and_logged_with_the_user(
    clean_manager: JobManager, adapter: str, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager)
    caplog.set_level(logging.INFO, logger="queuekit.web")

    reply = client.post(f"/jobs/{seeded.exhausted}/retry", {"next": "/jobs?state=exhausted"})
    assert reply.status == 303
    assert reply.header("location").startswith(f"{PREFIX}/jobs?state=exhausted&notice=")
    retried = clean_manager.get_job(seeded.exhausted)
    assert retried is not None and retried.status == "available" and retried.max_attempts == 2

    client.post(f"/jobs/{seeded.waiting}/reschedule", {"delay": "2 hours"})
    moved = clean_manager.get_job(seeded.waiting)
    assert moved is not None
    assert moved.run_at > clean_manager.now() + timedelta(minutes=110)

    client.post(f"/jobs/{seeded.locked}/unlock", {})
    unlocked = clean_manager.get_job(seeded.locked)
    assert unlocked is not None and unlocked.locked_by is None

    client.post(f"/jobs/{seeded.waiting}/fail", {"reason": "operator says no"})
    failed = clean_manager.get_job(seeded.waiting)
    assert failed is not None and failed.status == "exhausted"
    assert failed.last_error == "operator says no"

    lines = [r for r in caplog.records if r.name == "queuekit.web"]
    assert [r.queuekit_action for r in lines] == ["retry", "reschedule", "unlock", "fail"]  # type: ignore[attr-defined]
    assert all(r.queuekit_user == USER for r in lines)  # type: ignore[attr-defined]
    assert all(r.queuekit_count == 1 for r in lines)  # type: ignore[attr-defined]


def test_replay_and_bulk_actions(clean_manager: JobManager, adapter: str) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager)
    assert client.post(f"/jobs/{seeded.exhausted}/replay", {}).status == 303
    replayed = clean_manager.list_jobs(status="available", task_identifier="mail.send")
    assert any("replay" in job.flags for job in replayed)
    assert client.post(f"/jobs/{seeded.waiting}/replay", {}).status == 409

    clean_manager.add_jobs([_spec(i) for i in range(5)])
    reply = client.post("/bulk", {"action": "fail", "state": "waiting", "task": "bulk.task"})
    assert reply.status == 303
    assert "5%20affected" in reply.header("location") or "5+affected" in reply.header("location")
    exhausted = clean_manager.list_jobs(status="exhausted", task_identifier="bulk.task")
    assert len(exhausted) == 5
    reply = client.post("/bulk", {"action": "retry", "state": "exhausted", "task": "bulk.task"})
    assert reply.status == 303
    assert len(clean_manager.list_jobs(status="available", task_identifier="bulk.task")) == 5
    assert client.post("/bulk", {"action": "retry", "state": "waiting"}).status == 400
    assert client.post("/bulk", {"action": "explode"}).status == 400


def test_unlock_a_stuck_named_queue(clean_manager: JobManager, adapter: str) -> None:
    seed(clean_manager)
    client = Client(adapter, clean_manager)
    page = client.get("/queues").text
    assert "reports" in page and "seed-worker" in page
    assert client.post("/queues/unlock", {"queue": "reports"}).status == 303
    assert all(q.locked_by is None for q in clean_manager.list_queues())


def test_charts_come_from_history(clean_manager: JobManager) -> None:
    seed(clean_manager)
    for _ in range(3):
        clean_manager.add_job("ok.task", {})
    done = clean_manager.get_jobs("w2", task_identifiers=["ok.task"], batch_size=3)
    clean_manager.complete_jobs("w2", done, 5)
    text = Client("wsgi", clean_manager).get("/?window=1h").text
    assert '<span class="n" id="completed">3</span>' in text
    assert '<span class="n" id="failed">1</span>' in text
    assert text.count('class="ok"><title>completed') >= 1
    assert '<svg class="chart"' in text


def test_a_busy_window_charts_its_newest_attempts(
    clean_manager: JobManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    from queuekit.web import history_chart

    monkeypatch.setattr(history_chart, "CHART_ROWS", 2)
    for _ in range(3):
        clean_manager.add_job("ok.task", {})
    done = clean_manager.get_jobs("w2", batch_size=3)
    clean_manager.complete_jobs("w2", done, 5)
    text = Client("wsgi", clean_manager).get("/?window=1h").text
    assert '<span class="n" id="completed">2</span>' in text
    assert 'id="chart-since">A busy window' in text
    assert "the newest 2 attempts" in text


def test_open_tabs_share_one_query_per_refresh(clean_manager: JobManager) -> None:
    seed(clean_manager)
    client = Client("wsgi", clean_manager, cache_ttl=60)
    statements: list[str] = []
    engine = clean_manager.engine

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/").status == 200
        first = len(statements)
        for _ in range(5):
            assert client.get("/").status == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert first > 0
    assert len(statements) == first  # five more "tabs", no more queries


def test_cache_recomputes_after_its_ttl() -> None:
    now = [0.0]
    cache = ResultCache(2.0, clock=lambda: now[0])
    calls: list[int] = []
    assert cache.get("k", lambda: calls.append(1) or len(calls)) == 1
    assert cache.get("k", lambda: calls.append(1) or len(calls)) == 1
    now[0] = 2.5
    assert cache.get("k", lambda: calls.append(1) or len(calls)) == 2


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_statement_timeout_cancels_slow_reads(
    request: pytest.FixtureRequest, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import create_database_url

    urls = create_database_url(server, request.config.rootpath)
    url = next(urls)
    try:
        engine = sa.create_engine(url)
        from queuekit import migrations

        migrations.upgrade(engine)
        manager = JobManager(engine)
        monkeypatch.setattr(queries, "STATEMENT_TIMEOUT_MS", 200)
        reads = queries.Queries(manager, ResultCache(0))
        sleep = sa.func.pg_sleep(2) if server == "postgresql" else sa.func.sleep(2)
        with pytest.raises(DatabaseError):
            reads.read("slow", lambda conn: conn.execute(sa.select(sleep)).all())
        # The limit does not outlive the dashboard's transaction.
        with engine.connect() as conn:
            short = sa.func.pg_sleep(0.5) if server == "postgresql" else sa.func.sleep(0.5)
            conn.execute(sa.select(short))
        engine.dispose()
    finally:
        next(urls, None)


def test_dashboard_reads_go_through_indexes_on_postgresql(pg_manager: JobManager) -> None:
    """The capped counts' plans must not flip to sequential scans on statistics."""
    reads = queries.Queries(pg_manager, ResultCache(0))
    show = sa.text("SHOW enable_seqscan")
    assert reads.read("plan", lambda conn: conn.execute(show).scalar()) == "off"
    with pg_manager.engine.connect() as conn:  # only for the dashboard's transaction
        assert conn.execute(show).scalar() == "on"


def test_no_authorize_no_dashboard(clean_manager: JobManager) -> None:
    from queuekit.web import wsgi_app

    with pytest.raises(TypeError, match="never open"):
        wsgi_app(clean_manager, authorize=None)  # type: ignore[arg-type]
    assert AUTH


def test_cancel_pause_resume_and_workers(clean_manager: JobManager, adapter: str) -> None:
    seeded = seed(clean_manager)
    client = Client(adapter, clean_manager)
    assert client.post(f"/jobs/{seeded.waiting}/cancel", {}).status == 303
    assert clean_manager.get_job(seeded.waiting) is None
    assert clean_manager.job_history(seeded.waiting)[0].status == "cancelled"

    assert client.post("/tasks/pause", {"task": "mail.send"}).status == 303
    page = client.get("/tasks").text
    assert f'action="{PREFIX}/tasks/resume"' in page
    clean_manager.add_job("mail.send", {})
    assert clean_manager.get_jobs("w3", task_identifiers=["mail.send"]) == []
    assert client.post("/tasks/resume", {"task": "mail.send"}).status == 303
    assert len(clean_manager.get_jobs("w3", task_identifiers=["mail.send"])) == 1
    assert client.post("/tasks/pause", {"task": ""}).status == 400

    workers = client.get("/workers")
    assert workers.status == 200 and "no live workers" in workers.text
