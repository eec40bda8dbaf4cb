"""The dashboard's pages (all GET, all working with JavaScript off)."""

from __future__ import annotations

from markupsafe import Markup

from queuekit.types import HISTORY_STATUSES
from queuekit.web import charts
from queuekit.web.dashboard import View, parse_cursor, parse_id
from queuekit.web.http import HTTPError, Response
from queuekit.web.queries import DEFAULT_WINDOW, JOB_STATES, WINDOWS


def overview(view: View) -> Response:
    """Counts by state, oldest waiting job, throughput, failures and wait time over a window."""
    window = chosen_window(view)
    chart = view.queries.chart(window)
    buckets = chart.buckets
    return view.render(
        "overview.html",
        counts=view.queries.state_counts(),
        oldest=view.queries.oldest_waiting(),
        window=window,
        windows=list(WINDOWS),
        chart=chart,
        completed=sum(b.completed for b in buckets),
        failed=sum(b.failed for b in buckets),
        throughput=Markup(charts.stacked_bars("attempts by outcome", buckets, charts.THROUGHPUT)),
        wait_chart=Markup(
            charts.stacked_bars("mean wait before start", buckets, charts.QUEUE_TIME)
        ),
        run_chart=Markup(charts.stacked_bars("mean run time", buckets, charts.RUN_TIME)),
    )


def jobs_list(view: View) -> Response:
    """Jobs filtered by state, task, queue and flag, newest first, keyset-paginated."""
    state = view.request.arg("state")
    if state and state not in JOB_STATES:
        raise HTTPError(400, f"unknown state; choose one of {', '.join(JOB_STATES)}")
    filters = {
        "state": state,
        "task": view.request.arg("task"),
        "queue": view.request.arg("queue"),
        "flag": view.request.arg("flag"),
    }
    page = view.queries.jobs_page(
        state=state or None,
        task=filters["task"] or None,
        queue=filters["queue"] or None,
        flag=filters["flag"] or None,
        before=parse_cursor(view.request.arg("before")),
        after=parse_cursor(view.request.arg("after")),
    )
    return view.render(
        "jobs.html",
        page=page,
        filters=filters,
        states=JOB_STATES,
        counts=view.queries.state_counts(filters["task"] or None),
    )


def job_detail(view: View) -> Response:
    """One job (or what history remembers of it) and every attempt with its traceback."""
    job_id = parse_id(view.match["job_id"])
    job = view.queries.job(job_id)
    attempts = view.queries.attempts(job_id)
    if job is None and not attempts:
        raise HTTPError(404, "no such job (it may have completed and its history expired)")
    return view.render("job.html", job_id=job_id, job=job, attempts=attempts)


def history(view: View) -> Response:
    """Attempts inside a time window, newest first, with replay of the failures."""
    window = chosen_window(view)
    status = view.request.arg("status", "failed")
    if status and status not in HISTORY_STATUSES:
        raise HTTPError(400, f"unknown status; choose one of {', '.join(HISTORY_STATUSES)}")
    task = view.request.arg("task")
    page = view.queries.history_page(
        window=window,
        status=status or None,
        task=task or None,
        before=parse_cursor(view.request.arg("before")),
        after=parse_cursor(view.request.arg("after")),
    )
    return view.render(
        "history.html",
        page=page,
        window=window,
        windows=list(WINDOWS),
        history_status=status,
        statuses=HISTORY_STATUSES,
        task=task,
    )


def queues(view: View) -> Response:
    """Named queues: which is locked, for how long, how many jobs wait in each."""
    return view.render("queues.html", queues=view.queries.queues())


def tasks(view: View) -> Response:
    """Task identifiers with counts, and pause/resume."""
    return view.render("tasks.html", tasks=view.queries.tasks())


def rate_limits(view: View) -> Response:
    """Rate-limit buckets and their tokens."""
    return view.render("rate_limits.html", limits=view.queries.rate_limits())


def cron(view: View) -> Response:
    """Known cron entries and their last fired slot."""
    return view.render("cron.html", crontabs=view.queries.crontabs())


def workers(view: View) -> Response:
    """Live workers, as they registered themselves."""
    found = view.dashboard.cache.get(("workers",), view.manager.list_workers)
    return view.render("workers.html", workers=found)


def health(view: View) -> Response:
    """Liveness: answers when the database does."""
    view.queries.now()
    return Response(200, b"ok", content_type="text/plain; charset=utf-8")


def chosen_window(view: View) -> str:
    """The history window from the query string (default one hour)."""
    window = view.request.arg("window", DEFAULT_WINDOW)
    if window not in WINDOWS:
        raise HTTPError(400, f"unknown window; choose one of {', '.join(WINDOWS)}")
    return window


ROUTES = [
    ("GET", "/?", overview),
    ("GET", "/jobs", jobs_list),
    ("GET", "/jobs/(?P<job_id>[^/]+)", job_detail),
    ("GET", "/history", history),
    ("GET", "/queues", queues),
    ("GET", "/tasks", tasks),
    ("GET", "/rate-limits", rate_limits),
    ("GET", "/cron", cron),
    ("GET", "/workers", workers),
    ("GET", "/healthz", health),
]
