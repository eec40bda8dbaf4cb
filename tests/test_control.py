"""Cancelling jobs, pausing tasks and the registry of live workers, on every dialect."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from queuekit import (
    InvalidArgumentError,
    InvalidWorkerIdError,
    JobContext,
    JobError,
    JobManager,
    Maintenance,
    Worker,
)
from queuekit.cli import cli
from queuekit.models import workers

WORKER = "control-worker"


def _backdate_worker(manager: JobManager, worker_id: str, by: timedelta) -> None:
    """Make a worker's row look as if it was last seen ``by`` earlier (a dead process)."""
    # Read, then write: on SQLite the transaction must hold the write lock from
    # BEGIN, as queuekit's own do, or a running worker's heartbeat in between
    # makes the write fail at once.
    with (
        manager.engine.connect() as conn,
        conn.execution_options(queuekit_own_transaction=True).begin(),
    ):
        seen = conn.execute(
            sa.select(workers.c.last_seen).where(workers.c.worker_id == worker_id)
        ).scalar_one()
        conn.execute(
            sa.update(workers).where(workers.c.worker_id == worker_id).values(last_seen=seen - by)
        )


# -- cancel ---------------------------------------------------------------------------


def test_cancel_a_waiting_job_deletes_it_and_records_cancelled(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {"to": "a"}, queue_name="outbox", flags=["x"])
    kept = manager.add_job("mail", {"to": "b"})
    cancelled = manager.cancel_jobs([job.id])
    assert [c.id for c in cancelled] == [job.id]
    assert cancelled[0].status == "available"
    assert manager.get_job(job.id) is None
    assert manager.get_job(kept.id) is not None
    [record] = manager.job_history(job.id)
    assert record.status == "cancelled"
    assert record.worker_id is None
    assert record.error_message == "cancelled"
    assert record.payload == {"to": "a"}
    assert record.attempt_number == 0
    assert record.completed_at is not None and record.expires_at is not None
    assert manager.query_history(status="cancelled") == [record]
    assert manager.stats().by_status == {"available": 1, "locked": 0, "exhausted": 0}


def test_cancel_a_running_job_closes_its_attempt_and_frees_its_queue(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    first = manager.add_job("mail", {"n": 1}, queue_name="outbox", priority=0)
    second = manager.add_job("mail", {"n": 2}, queue_name="outbox", priority=1)
    [claimed] = manager.get_jobs(WORKER, batch_size=5)
    assert claimed.id == first.id
    assert manager.get_jobs("other", batch_size=5) == []  # the queue is held

    [cancelled] = manager.cancel_jobs([first.id])
    assert cancelled.status == "locked" and cancelled.locked_by == WORKER
    assert manager.get_job(first.id) is None
    [record] = manager.job_history(first.id)
    assert record.correlation_id == claimed.correlation_id
    assert (record.status, record.error_message) == ("cancelled", "cancelled")
    assert record.worker_id == WORKER and record.completed_at is not None
    assert [q.locked_at for q in manager.list_queues()] == [None]
    # The worker's late outcome matches no job: nothing is written over the cancel.
    assert manager.complete_jobs(WORKER, [claimed], 5) == []
    assert manager.job_history(first.id)[0].status == "cancelled"
    assert manager.heartbeat(WORKER, [claimed]) == []
    # The queue's next job is claimable at once.
    [next_job] = manager.get_jobs("other", batch_size=5)
    assert next_job.id == second.id


def test_cancel_ignores_unknown_ids_and_keeps_the_order_asked(clean_manager: JobManager) -> None:
    manager = clean_manager
    a = manager.add_job("mail", {"n": 1})
    b = manager.add_job("mail", {"n": 2})
    unknown = uuid.uuid4()
    cancelled = manager.cancel_jobs([b.id, unknown, a.id, b.id])
    assert [job.id for job in cancelled] == [b.id, a.id]
    assert len(manager.job_history(b.id)) == 1
    assert manager.cancel_jobs([a.id, b.id]) == []
    assert manager.cancel_jobs([]) == []
    assert manager.query_history(status="cancelled", limit=10) != []


def test_cancel_of_an_exhausted_job_leaves_the_failure_history(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {}, max_attempts=1)
    [claimed] = manager.get_jobs(WORKER)
    manager.fail_jobs(WORKER, [JobError(claimed, "boom")], 1)
    exhausted = manager.get_job(job.id)
    assert exhausted is not None and exhausted.status == "exhausted"
    manager.cancel_jobs([job.id])
    statuses = [record.status for record in manager.job_history(job.id)]
    assert statuses == ["cancelled", "failed"]
    # Cancelled means the operator decided: the failure is not replayed.
    assert manager.replay_failed_jobs() == []


def test_cancel_in_the_callers_transaction_rolls_back_with_it(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {})
    with manager.engine.connect() as conn, conn.begin() as transaction:
        assert [c.id for c in manager.cancel_jobs([job.id], session=conn)] == [job.id]
        transaction.rollback()
    assert manager.get_job(job.id) is not None
    assert manager.job_history(job.id) == []


def test_cancel_refuses_bad_ids_before_writing(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {})
    with pytest.raises(InvalidArgumentError, match="not a job id"):
        manager.cancel_jobs([job.id, "nope"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="list of UUIDs"):
        manager.cancel_jobs(str(job.id))  # type: ignore[arg-type]
    assert manager.get_job(job.id) is not None


# -- pause and resume -------------------------------------------------------------------


def test_claims_skip_paused_tasks_until_resumed(clean_manager: JobManager) -> None:
    manager = clean_manager
    report = manager.add_job("report", {})
    mail = manager.add_job("mail", {})
    [paused] = manager.pause_tasks(["report"])
    assert paused.identifier == "report" and paused.paused_at is not None

    assert [job.id for job in manager.get_jobs(WORKER, batch_size=10)] == [mail.id]
    later = manager.add_job("report", {"late": True})  # enqueueing still works
    assert manager.get_jobs(WORKER, batch_size=10) == []
    assert manager.get_jobs(WORKER, task_identifiers=["report"], batch_size=10) == []
    # Reading is unaffected: the jobs wait as available.
    assert {job.id for job in manager.list_jobs(status="available")} == {report.id, later.id}
    assert manager.stats().by_task["report"]["available"] == 2

    [resumed] = manager.resume_tasks(["report"])
    assert resumed.paused_at is None
    claimed = manager.get_jobs(WORKER, batch_size=10)
    assert {job.id for job in claimed} == {report.id, later.id}


def test_pausing_an_unknown_task_creates_it_and_keeps_the_first_pause_time(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    assert manager.get_task("future") is None
    [first] = manager.pause_tasks(["future"])
    assert first.paused_at is not None
    [again] = manager.pause_tasks(["future", "future"])
    assert again.paused_at == first.paused_at
    stored = manager.get_task("future")
    assert stored is not None and stored.paused_at == first.paused_at
    job = manager.add_job("future", {})
    assert manager.get_jobs(WORKER) == []
    assert manager.resume_tasks(["future", "never-seen"])[0].identifier == "future"
    assert [j.id for j in manager.get_jobs(WORKER)] == [job.id]
    assert manager.resume_tasks(["never-seen"]) == []
    assert manager.get_task("never-seen") is None


def test_pause_keeps_schema_and_gc_keeps_paused_tasks(clean_manager: JobManager) -> None:
    manager = clean_manager
    schema = {"type": "object", "required": ["to"]}
    manager.register_task("mail", schema=schema)
    manager.pause_tasks(["mail", "idle"])
    manager.resume_tasks(["mail"])
    mail = manager.get_task("mail")
    assert mail is not None and mail.payload_schema == schema
    manager.pause_tasks(["unused"])
    manager.resume_tasks(["unused"])
    # "idle" is paused: GC keeps it; "unused" has nothing to keep it.
    assert manager.gc_task_identifiers(keep=0) == 1
    assert manager.get_task("unused") is None
    idle = manager.get_task("idle")
    assert idle is not None and idle.paused_at is not None


def test_pause_refuses_bad_names(clean_manager: JobManager) -> None:
    with pytest.raises(InvalidArgumentError):
        clean_manager.pause_tasks("mail")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        clean_manager.pause_tasks(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        clean_manager.resume_tasks([""])
    assert clean_manager.pause_tasks([]) == []
    assert clean_manager.get_task("mail") is None


# -- the workers table --------------------------------------------------------------------


def test_register_lists_touches_and_removes_a_worker(clean_manager: JobManager) -> None:
    manager = clean_manager
    info = manager.register_worker(
        "w1", concurrency=4, heartbeat_interval="30 seconds", task_identifiers=["mail"]
    )
    assert (info.worker_id, info.concurrency, info.task_identifiers) == ("w1", 4, ("mail",))
    assert info.hostname and info.pid > 0 and info.version
    assert info.started_at == info.last_seen
    other = manager.register_worker("w2", concurrency=1, heartbeat_interval=30)
    assert other.task_identifiers is None
    assert [w.worker_id for w in manager.list_workers()] == ["w1", "w2"]

    _backdate_worker(manager, "w1", timedelta(seconds=20))
    before = manager.list_workers()[0].last_seen
    assert manager.touch_worker("w1") is True
    assert manager.list_workers()[0].last_seen > before
    assert manager.remove_worker("w1") is True
    assert manager.remove_worker("w1") is False
    assert manager.touch_worker("w1") is False
    assert [w.worker_id for w in manager.list_workers()] == ["w2"]


def test_a_live_worker_id_is_refused_and_a_stale_one_taken_over(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    first = manager.register_worker("dup", concurrency=2, heartbeat_interval="10 seconds")
    # Seen 20 s ago: within three heartbeat periods (30 s), so still live.
    _backdate_worker(manager, "dup", timedelta(seconds=20))
    with pytest.raises(InvalidWorkerIdError, match="held by a live worker"):
        manager.register_worker("dup", concurrency=8, heartbeat_interval="10 seconds")
    [row] = manager.list_workers()
    assert (row.concurrency, row.started_at) == (2, first.started_at)  # nothing written

    _backdate_worker(manager, "dup", timedelta(seconds=15))  # 35 s: a dead process
    taken = manager.register_worker("dup", concurrency=8, heartbeat_interval="10 seconds")
    assert taken.concurrency == 8 and taken.started_at > first.started_at
    assert [w.concurrency for w in manager.list_workers()] == [8]


def test_dead_workers_are_removed_by_maintenance(clean_manager: JobManager) -> None:
    manager = clean_manager
    manager.register_worker("dead", concurrency=1, heartbeat_interval=30)
    manager.register_worker("alive", concurrency=1, heartbeat_interval=30)
    _backdate_worker(manager, "dead", timedelta(minutes=11))
    upkeep = Maintenance(manager, lock_timeout="10 minutes")
    assert upkeep.run_once().dead_workers == 1
    assert [w.worker_id for w in manager.list_workers()] == ["alive"]
    assert manager.remove_dead_workers(older_than="1 minute") == 0


def test_register_refuses_bad_arguments(clean_manager: JobManager) -> None:
    manager = clean_manager
    with pytest.raises(InvalidWorkerIdError):
        manager.register_worker("", concurrency=1, heartbeat_interval=30)
    with pytest.raises(InvalidArgumentError, match="concurrency"):
        manager.register_worker("w", concurrency=0, heartbeat_interval=30)
    with pytest.raises(InvalidArgumentError, match="heartbeat_interval"):
        manager.register_worker("w", concurrency=1, heartbeat_interval=0)
    assert manager.list_workers() == []


# -- command line -----------------------------------------------------------------------------


def _cli(manager: JobManager, *args: str) -> Result:
    url = manager.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--database-url", url, *args])
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr)
    return result


def test_cli_cancel_pause_resume_and_workers(clean_manager: JobManager) -> None:
    manager = clean_manager
    job = manager.add_job("mail", {})
    manager.add_job("report", {})
    gone = uuid.uuid4()
    human = _cli(manager, "cancel", str(job.id), str(gone)).stdout
    assert "Cancelled 1 job(s)." in human and str(gone) in human
    assert manager.get_job(job.id) is None
    assert json.loads(_cli(manager, "--json", "cancel", str(job.id)).stdout) == []

    paused = json.loads(_cli(manager, "--json", "pause", "report").stdout)
    assert [t["identifier"] for t in paused] == ["report"] and paused[0]["paused_at"]
    assert manager.get_jobs(WORKER) == []
    assert "Paused 1 task(s)" in _cli(manager, "pause", "report").stdout
    resumed = json.loads(_cli(manager, "--json", "resume", "report").stdout)
    assert resumed[0]["paused_at"] is None
    assert "Resumed 0 task(s)." in _cli(manager, "resume", "unknown-task").stdout

    manager.register_worker("cli-w", concurrency=3, heartbeat_interval=30, task_identifiers=["a"])
    listed = json.loads(_cli(manager, "workers", "--json").stdout)
    assert [(w["worker_id"], w["concurrency"], w["task_identifiers"]) for w in listed] == [
        ("cli-w", 3, ["a"])
    ]
    table = _cli(manager, "workers").stdout
    assert "cli-w" in table and "1 worker(s) registered." in table


def test_cli_cancel_needs_a_job_id(clean_manager: JobManager) -> None:
    url = clean_manager.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, ["--database-url", url, "cancel", "not-a-uuid"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output


# -- workers register themselves ------------------------------------------------------------


def test_a_worker_is_listed_while_it_runs_and_removed_when_it_stops(
    clean_manager: JobManager,
) -> None:
    manager = clean_manager
    seen: list[list[str]] = []

    def look(payload: dict[str, object], ctx: JobContext) -> None:
        seen.append([w.worker_id for w in ctx.manager.list_workers()])

    manager.add_job("look", {})
    worker = Worker(manager, {"look": look}, worker_id="listed", maintenance=False, concurrency=3)
    assert worker.drain().completed == 1
    assert seen == [["listed"]]
    assert manager.list_workers() == []


def test_a_second_worker_with_a_live_id_refuses_to_start(clean_manager: JobManager) -> None:
    manager = clean_manager
    first = Worker(
        manager,
        {"other": lambda payload, ctx: None},
        worker_id="twin",
        task_identifiers=["other"],
        poll_interval="0.05 seconds",
        maintenance=False,
    )
    first.start()
    try:
        job = manager.add_job("mail", {})
        second = Worker(manager, {"mail": lambda payload, ctx: None}, worker_id="twin")
        for begin in (second.drain, second.start, second.run):
            with pytest.raises(InvalidWorkerIdError, match="twin"):
                begin()
            assert not second.running
        waiting = manager.get_job(job.id)
        assert waiting is not None and waiting.status == "available" and waiting.attempts == 0
        [row] = manager.list_workers()
        assert row.task_identifiers == ("other",)
    finally:
        first.stop()
    assert second.drain().completed == 1
    assert manager.list_workers() == []


def test_a_worker_takes_over_a_dead_workers_id(clean_manager: JobManager) -> None:
    manager = clean_manager
    manager.register_worker("ghost", concurrency=1, heartbeat_interval=30)
    _backdate_worker(manager, "ghost", timedelta(minutes=2))
    manager.add_job("mail", {})
    worker = Worker(manager, {"mail": lambda payload, ctx: None}, worker_id="ghost")
    assert worker.drain().completed == 1
    assert manager.list_workers() == []


def test_the_heartbeat_keeps_the_workers_row_fresh(clean_manager: JobManager) -> None:
    manager = clean_manager
    # A 0.5 s lock timeout makes the worker heartbeat every 0.1 s.
    worker = Worker(manager, {}, worker_id="beating", lock_timeout="0.5 seconds", maintenance=False)
    worker.start()
    try:
        _backdate_worker(manager, "beating", timedelta(hours=1))
        stale = manager.list_workers()[0].last_seen
        deadline = time.monotonic() + 10
        while manager.list_workers()[0].last_seen == stale and time.monotonic() < deadline:
            time.sleep(0.05)
        assert manager.list_workers()[0].last_seen > stale
        # Removed as dead meanwhile (a long stall): the next heartbeat registers again.
        manager.remove_worker("beating")
        deadline = time.monotonic() + 10
        while not manager.list_workers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w.worker_id for w in manager.list_workers()] == ["beating"]
    finally:
        worker.stop()
    assert manager.list_workers() == []


def test_a_running_job_cancelled_stops_its_task_within_a_heartbeat(
    clean_manager: JobManager,
) -> None:
    from test_worker_lost_locks import (
        HEARTBEAT,
        SLACK,
        assert_lock_lost_reported,
        start_blocking_worker,
        take_lock_and_wait,
    )

    manager = clean_manager
    scenario = start_blocking_worker(manager, max_attempts=3)
    job = scenario.job
    noticed = take_lock_and_wait(scenario, lambda: manager.cancel_jobs([job.id]))

    assert noticed < HEARTBEAT + SLACK
    assert_lock_lost_reported(scenario)
    assert manager.get_job(job.id) is None
    [record] = manager.job_history(job.id)
    assert record.status == "cancelled" and record.worker_id == scenario.worker.worker_id
