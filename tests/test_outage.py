"""A database outage under a busy worker: PostgreSQL restarts mid-drain, nothing is lost.

The test starts a private PostgreSQL server of its own (``initdb`` and
``pg_ctl`` on a free port, in a temporary directory), because restarting
the shared one would break every other test. As root, the server runs as
the ``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from queuekit import JobContext, JobManager, JobSpec, Worker, migrations
from queuekit.models import job_history, jobs

JOBS = 5000
PATIENCE = 120.0


@dataclass
class PrivateServer:
    """A PostgreSQL server this test owns: it may stop and restart it at will."""

    data: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, "pg_ctl", "-D", str(self.data), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
            text=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self.pg_ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def restart(self) -> None:
        # "fast" ends every session at once: the worker's connections die mid-use.
        self.pg_ctl("-m", "fast", "stop")
        self.start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    missing = [tool for tool in ("initdb", "pg_ctl") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the outage test needs {', '.join(missing)} on PATH (PostgreSQL server)")
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = Path(tempfile.mkdtemp(prefix="queuekit-outage-"))
    if owner is not None:
        os.chown(data, owner.pw_uid, owner.pw_gid)
    server = PrivateServer(data, free_port(), as_user)
    subprocess.run(
        [*as_user, "initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
    )
    server.start()
    try:
        yield server
    finally:
        subprocess.run(
            [*as_user, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


def test_worker_survives_a_server_restart_mid_drain(private_server: PrivateServer) -> None:
    engine = sa.create_engine(private_server.url)
    migrations.upgrade(engine)
    manager = JobManager(engine)
    added = manager.add_jobs([JobSpec("count", {"n": n}) for n in range(JOBS)])
    runs: Counter[uuid.UUID] = Counter()
    lock = threading.Lock()
    restarted = threading.Event()

    def count(_payload: dict[str, Any], ctx: JobContext) -> None:
        with lock:
            runs[ctx.job.id] += 1
        if not restarted.is_set():
            time.sleep(0.005)  # keep jobs flowing until the restart is over

    worker = Worker(manager, {"count": count}, poll_interval="0.1 seconds", worker_id="survivor")
    worker.start()
    try:
        deadline = time.monotonic() + PATIENCE
        while worker.stats.completed < JOBS // 5:
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.01)
        private_server.restart()
        restarted.set()
        assert worker.stats.completed < JOBS, "the drain ended before the restart"
        while True:
            assert time.monotonic() < deadline, f"stuck at {worker.stats}"
            try:
                with engine.connect() as conn:
                    left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar()
                if left == 0 and worker.stats.completed == JOBS:
                    break
            except sa.exc.DBAPIError:
                pass  # the server is still coming back
            time.sleep(0.05)
    finally:
        worker.stop()

    stats = worker.stats
    assert stats.errors >= 1, "the restart went unnoticed: it happened after the drain"
    assert (stats.completed, stats.failed, stats.exhausted) == (JOBS, 0, 0)
    assert set(runs) == {job.id for job in added}
    assert max(runs.values()) == 1, "a job ran twice"
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(
                sa.select(job_history.c.status, sa.func.count()).group_by(job_history.c.status)
            ).all()
        )
        per_job = conn.execute(sa.select(sa.func.count(sa.distinct(job_history.c.job_id)))).scalar()
    # One attempt per job: no started row left, no failed attempt, no second run.
    assert statuses == {"completed": JOBS}
    assert per_job == JOBS
    engine.dispose()
