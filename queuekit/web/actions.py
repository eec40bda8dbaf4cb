"""The dashboard's write actions: POSTs, admin only, same-origin, each one JobManager call.

Every action is logged with who did it (:func:`queuekit.web.access.log_action`)
and answers with a redirect back to the page it came from, saying what it did.
Bulk actions on "all jobs matching this filter" touch at most
:data:`~queuekit.web.dashboard.BULK_CAP` jobs and say so.
"""

from __future__ import annotations

from queuekit.durations import parse_duration
from queuekit.web.access import log_action
from queuekit.web.dashboard import BULK_CAP, View, parse_id
from queuekit.web.http import HTTPError, Response
from queuekit.web.queries import JOB_STATES, WINDOWS

#: Reason recorded when an operator fails a job from the dashboard without giving one.
DEFAULT_FAIL_REASON = "failed from the dashboard"


def field(view: View, name: str, default: str = "") -> str:
    """The first value of form field ``name``."""
    return view.request.form().get(name, [default])[0]


def required_field(view: View, name: str) -> str:
    """The first value of form field ``name``; a 400 that names it when absent or empty."""
    value = field(view, name)
    if not value:
        raise HTTPError(400, f"which {name}? (form field {name})")
    return value


def done(view: View, action: str, detail: str, count: int) -> Response:
    """Log the action, drop cached reads so its effect shows at once, go back."""
    log_action(view.request, action, detail, count)
    view.dashboard.cache.clear()
    return view.redirect(f"{action}: {count} affected")


def fail_job(view: View) -> Response:
    """Exhaust one job now with a reason (a running one loses its lock)."""
    job_id = parse_id(view.match["job_id"])
    reason = field(view, "reason").strip() or DEFAULT_FAIL_REASON
    failed = view.manager.permanently_fail_jobs([job_id], reason)
    return done(view, "fail", str(job_id), len(failed))


def retry_job(view: View) -> Response:
    """Run one job again now, with one more attempt if it had none left."""
    job_id = parse_id(view.match["job_id"])
    job = view.queries.job(job_id)
    if job is None:
        raise HTTPError(404, "no such job")
    now = view.queries.now()
    moved = view.manager.reschedule_jobs(
        [job_id], run_at=now, max_attempts=max(job.max_attempts, job.attempts + 1)
    )
    return done(view, "retry", str(job_id), len(moved))


def reschedule_job(view: View) -> Response:
    """Move one job's run_at to now plus a delay (``30 seconds``, ``2 hours``...)."""
    job_id = parse_id(view.match["job_id"])
    delay = parse_duration(field(view, "delay", "0 seconds"))
    moved = view.manager.reschedule_jobs([job_id], run_at=view.queries.now() + delay)
    return done(view, "reschedule", str(job_id), len(moved))


def unlock_job(view: View) -> Response:
    """Unlock the jobs of the worker holding this job (force_unlock_jobs works per worker)."""
    job_id = parse_id(view.match["job_id"])
    job = view.queries.job(job_id)
    if job is None or job.locked_by is None:
        raise HTTPError(409, "the job is not locked")
    unlocked = view.manager.force_unlock_jobs([job.locked_by])
    return done(view, "unlock", f"worker {job.locked_by}", len(unlocked))


def cancel_job(view: View) -> Response:
    """Cancel one job: a waiting one is deleted, a running one loses its lock first."""
    job_id = parse_id(view.match["job_id"])
    cancelled = view.manager.cancel_jobs([job_id])
    return done(view, "cancel", str(job_id), len(cancelled))


def replay_job(view: View) -> Response:
    """Enqueue a job again from its last failed attempt (replay_failed_jobs on that moment)."""
    job_id = parse_id(view.match["job_id"])
    failed = [a for a in view.queries.attempts(job_id) if a.status == "failed"]
    if not failed or failed[0].started_at is None:
        raise HTTPError(409, "the job has no failed attempt to replay")
    last = failed[0]
    replayed = view.manager.replay_failed_jobs(
        from_time=last.started_at, to_time=last.started_at, task_identifier=last.task_identifier
    )
    return done(view, "replay", str(job_id), len(replayed))


def replay_window(view: View) -> Response:
    """Replay every final failure of the chosen window (and task)."""
    window = field(view, "window")
    if window not in WINDOWS:
        raise HTTPError(400, f"unknown window; choose one of {', '.join(WINDOWS)}")
    task = field(view, "task") or None
    start = view.queries.now() - WINDOWS[window][0]
    replayed = view.manager.replay_failed_jobs(from_time=start, task_identifier=task)
    return done(view, "replay", f"failures of the last {window} task={task or '*'}", len(replayed))


def bulk(view: View) -> Response:
    """Cancel, fail or retry up to BULK_CAP jobs matching the jobs page's filter."""
    action = field(view, "action")
    state = field(view, "state")
    if state and state not in JOB_STATES:
        raise HTTPError(400, f"unknown state; choose one of {', '.join(JOB_STATES)}")
    where = view.queries.job_filter(
        state=state or None,
        task=field(view, "task") or None,
        queue=field(view, "queue") or None,
        flag=field(view, "flag") or None,
    )
    ids = view.queries.matching_ids(where, BULK_CAP)
    detail = (
        f"state={state or '*'} task={field(view, 'task') or '*'} "
        f"queue={field(view, 'queue') or '*'} flag={field(view, 'flag') or '*'} (cap {BULK_CAP})"
    )
    if action == "cancel":
        count = len(view.manager.cancel_jobs(ids))
    elif action == "fail":
        count = len(view.manager.permanently_fail_jobs(ids, DEFAULT_FAIL_REASON) if ids else [])
    elif action == "retry":
        if state != "exhausted":
            raise HTTPError(400, "bulk retry applies to exhausted jobs only")
        # One call for all: each gets max_attempts = the most attempts among them + 1.
        most = view.queries.most_attempts(ids)
        count = len(
            view.manager.reschedule_jobs(ids, run_at=view.queries.now(), max_attempts=most + 1)
        )
    else:
        raise HTTPError(400, "unknown bulk action; choose cancel, fail or retry")
    return done(view, f"bulk {action}", detail, count)


def pause_task(view: View) -> Response:
    """Stop claims of one task identifier until it is resumed (enqueue goes on)."""
    task = required_field(view, "task")
    paused = view.manager.pause_tasks([task])
    return done(view, "pause", task, len(paused))


def resume_task(view: View) -> Response:
    """Let workers claim a paused task identifier's jobs again."""
    task = required_field(view, "task")
    resumed = view.manager.resume_tasks([task])
    return done(view, "resume", task, len(resumed))


def unlock_queue(view: View) -> Response:
    """Free one named queue whose lock is stuck."""
    queue = required_field(view, "queue")
    unlocked = view.manager.force_unlock_queues([queue])
    return done(view, "unlock queue", queue, len(unlocked))


ROUTES = [
    ("POST", "/jobs/(?P<job_id>[^/]+)/fail", fail_job),
    ("POST", "/jobs/(?P<job_id>[^/]+)/retry", retry_job),
    ("POST", "/jobs/(?P<job_id>[^/]+)/reschedule", reschedule_job),
    ("POST", "/jobs/(?P<job_id>[^/]+)/unlock", unlock_job),
    ("POST", "/jobs/(?P<job_id>[^/]+)/cancel", cancel_job),
    ("POST", "/jobs/(?P<job_id>[^/]+)/replay", replay_job),
    ("POST", "/history/replay", replay_window),
    ("POST", "/bulk", bulk),
    ("POST", "/tasks/pause", pause_task),
    ("POST", "/tasks/resume", resume_task),
    ("POST", "/queues/unlock", unlock_queue),
]
