"""Running on many machines: self-fencing, connection labels, pooler-ready engines, listen_url.

The network faults themselves are exercised by the chaos suite
(``make chaos``); here a manager whose heartbeats and probes fail on demand
stands in for a cut link, against the real databases.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import InvalidArgumentError, JobContext, JobManager, RetryPolicy, Worker
from queuekit.connections import create_engine, worker_budget
from queuekit.types import Job

PATIENCE = 30.0


class CutOffManager(JobManager):
    """A manager whose lock refreshes and clock reads fail while ``cut`` is set."""

    cut = threading.Event()

    def heartbeat(self, worker_id: str, jobs: Sequence[Job], **kw: Any) -> int:
        if self.cut.is_set():
            raise OSError("link cut")
        return super().heartbeat(worker_id, jobs, **kw)

    def now(self, **kw: Any) -> Any:
        if self.cut.is_set():
            raise OSError("link cut")
        return super().now(**kw)


def test_a_worker_cut_off_gives_its_jobs_up_before_the_lock_expires_and_comes_back(
    engine: sa.Engine,
) -> None:
    manager = CutOffManager(engine, retry=RetryPolicy(base_delay="0.1 seconds"))
    manager.cut = threading.Event()
    first = manager.add_job("long", {})
    started = threading.Event()
    cancelled_after: list[float] = []
    done = threading.Event()

    def long(_payload: dict[str, Any], ctx: JobContext) -> None:
        if ctx.job.attempts > 1:
            done.set()
            return
        started.set()
        began = time.monotonic()
        manager.cut.set()  # from now on no lock refresh succeeds
        assert ctx.cancelled.wait(PATIENCE)
        cancelled_after.append(time.monotonic() - began)

    worker = Worker(
        manager, {"long": long}, lock_timeout="4 seconds", maintenance=False,
        poll_interval="0.05 seconds",
    )  # fmt: skip
    worker.start()
    try:
        assert started.wait(PATIENCE)
        deadline = time.monotonic() + PATIENCE
        while not cancelled_after and time.monotonic() < deadline:
            time.sleep(0.05)
        # Fenced after 3/4 of the lock timeout (3 s after the last refresh, which came
        # at most 0.8 s before the cut), before anyone could reset the lock.
        assert cancelled_after and 2.0 <= cancelled_after[0] < 4.0
        # Fenced: a new job is not claimed while the database seems unreachable.
        waiting = manager.add_job("other", {})
        time.sleep(0.5)
        assert manager.get_job(waiting.id).status == "available"  # type: ignore[union-attr]
        manager.cut.clear()  # the link heals: the worker claims again without a restart
        assert done.wait(PATIENCE)
    finally:
        manager.cut.clear()
        worker.stop()
    statuses = [h.status for h in manager.job_history(first.id)]
    assert statuses == ["completed", "failed"]
    failed = manager.job_history(first.id)[1]
    assert "lost contact with the database" in (failed.error_message or "")


def test_the_worker_labels_its_connections_and_states_its_budget(engine: sa.Engine) -> None:
    manager = JobManager(engine)
    names: list[str] = []

    def look(_payload: dict[str, Any], ctx: JobContext) -> None:
        if engine.dialect.name == "postgresql":
            with ctx.manager.engine.connect() as conn:
                names.append(conn.execute(sa.text("SHOW application_name")).scalar_one())

    manager.add_job("look", {})
    engine.dispose()  # the worker's connections are all new
    worker = Worker(manager, {"look": look}, worker_id="labelled-1", maintenance=False)
    worker.drain()
    if engine.dialect.name == "postgresql":
        assert names == ["labelled-1"]
        assert worker.connection_budget == worker_budget(
            maintenance=False, cron=False, listening=True
        )
    else:
        assert worker.connection_budget == worker_budget(
            maintenance=False, cron=False, listening=False
        )
    # Once stopped, the host's engine no longer labels its connections.
    if engine.dialect.name == "postgresql":
        engine.dispose()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SHOW application_name")).scalar_one() != "labelled-1"


def test_create_engine_turns_keepalives_on_and_prepared_statements_off_for_a_pooler() -> None:
    seen: dict[str, Any] = {}
    url = "postgresql+psycopg://u@127.0.0.1:1/db?keepalives_idle=9"
    engine = create_engine(url, pooler="transaction")

    @sa.event.listens_for(engine, "do_connect")
    def capture(_d: Any, _r: Any, _a: Any, params: dict[str, Any]) -> Any:
        seen.update(params)
        raise ConnectionRefusedError("not connecting")

    with pytest.raises(Exception, match="not connecting"):
        engine.connect()
    assert seen["keepalives"] == 1
    assert seen["tcp_user_timeout"] == 15000
    assert seen["keepalives_idle"] == "9"  # the URL wins
    assert seen["prepare_threshold"] is None
    with pytest.raises(InvalidArgumentError, match="PostgreSQL"):
        create_engine("sqlite://", pooler="transaction")
    with pytest.raises(InvalidArgumentError, match="pooler"):
        create_engine("postgresql+psycopg://u@h/db", pooler="session")


def test_listen_url_and_poll_only(engine: sa.Engine) -> None:
    manager = JobManager(engine)
    if engine.dialect.name != "postgresql":
        # Nothing to listen to: both options leave the worker polling.
        worker = Worker(manager, {}, listen_url="postgresql+psycopg://u@h/db")
        assert worker.settings.listen_engine is None
        return
    polling = Worker(manager, {}, listen=False)
    assert polling.settings.listen_engine is None
    url = engine.url.render_as_string(hide_password=False)
    ran = threading.Event()
    worker = Worker(
        manager, {"t": lambda _p, _c: ran.set()}, listen_url=url, poll_interval="60 seconds",
        maintenance=False,
    )  # fmt: skip
    listen_engine = worker.settings.listen_engine
    assert listen_engine is not None and listen_engine is not engine
    worker.start()
    try:
        time.sleep(0.5)  # let the listener connect; the poll is a minute away
        manager.add_job("t", {})
        assert ran.wait(PATIENCE)  # woken by the notification on the direct connection
    finally:
        worker.stop()
    with pytest.raises(InvalidArgumentError, match="listen"):
        Worker(manager, {}, listen="yes")  # type: ignore[arg-type]
