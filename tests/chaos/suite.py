"""The chaos controller: builds the hosts, runs each scenario, checks it, tears down.

Everything it makes (namespaces, bridge, veths, the private cluster,
PgBouncer, proxies, processes) is removed in ``finally`` blocks and on
SIGTERM/SIGINT, also when a scenario fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from queuekit import JobManager, migrations
from queuekit.connections import create_engine
from queuekit.models import jobs
from tests.chaos import checks, workload
from tests.chaos.cluster import BOUNCER_POOL, BOUNCER_PORT, PORT, Cluster
from tests.chaos.proxy import FaultProxy
from tests.chaos.topology import Topology

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOSTS = 4
#: Lock timeout of every worker and maintenance: short, so scenarios are quick.
LOCK_TIMEOUT = 8.0
#: Jobs kept waiting by the feeder, so workers are always busy.
BACKLOG = 200
CONTROLLER = "chaos-controller"


@dataclass
class Fault:
    """What one scenario did: when (monotonic ns), to which host."""

    name: str
    host: int | None
    start: int = 0
    end: int = 0


@dataclass
class Scenario:
    name: str
    what: str
    inject: Callable[[Run, Fault], None]
    host: int | None = None
    #: The fault must make its host fence itself (at least one fence in the ledger).
    fences: bool = False


@dataclass
class Run:
    """One scenario's live state."""

    suite: Suite
    mode: str
    directory: str
    database: str
    engine: sa.Engine
    manager: JobManager
    agents: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    enqueued: set[str] = field(default_factory=set)
    feeding: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    samples: list[tuple[int, dict[str, int], int]] = field(default_factory=list)
    kills: list[tuple[str, int | None, int]] = field(default_factory=list)
    kill_log: list[dict[str, Any]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    # -- hosts ------------------------------------------------------------------

    def start_host(self, host: int) -> None:
        suite = self.suite
        gateway = suite.topology.gateway
        proxy = suite.proxies[self.mode]
        config = {
            "host": host,
            "dir": self.directory,
            "url": suite.cluster.url(self.database, port=proxy.port(host)),
            "pooler": "transaction" if self.mode == "pgbouncer" else None,
            "listen_url": (suite.cluster.url(self.database) if self.mode == "pgbouncer" else None),
            "procs": suite.procs,
            "concurrency": suite.concurrency,
            "lock_timeout": LOCK_TIMEOUT,
            "gateway": gateway,
        }
        command = (
            f"hostname h{host} && cd {REPO} && exec {sys.executable} -m tests.chaos.agent "
            + "'"
            + json.dumps(config)
            + "'"
        )
        errors = open(f"{self.directory}/agent-h{host}.err", "ab")  # noqa: SIM115
        self.agents[host] = subprocess.Popen(
            ["ip", "netns", "exec", suite.topology.namespace(host),
             "unshare", "--uts", "--pid", "--mount", "--fork", "--mount-proc",
             "sh", "-c", command],
            stdout=subprocess.DEVNULL, stderr=errors,
        )  # fmt: skip
        errors.close()

    def worker_pids(self, host: int) -> list[int]:
        """Root-namespace pids of the host's worker processes (children of its PID 1)."""
        pids = self.suite.topology.pids(host)
        inner_one = [p for p in pids if _nspid(p) == 1]
        return [p for p in pids if inner_one and _ppid(p) == inner_one[0]]

    def kill_host(self, host: int) -> None:
        asked = time.monotonic_ns()
        pids = self.suite.topology.pids(host)
        sent = time.monotonic_ns()
        for pid in pids:
            _kill(pid)
        agent = self.agents.pop(host, None)
        if agent is not None:
            agent.wait()
        self._record_kill(host, None, asked, sent, _gone(pids))

    def kill_worker(self, host: int) -> None:
        asked = time.monotonic_ns()
        pid = self.worker_pids(host)[0]
        inner = _nspid(pid)
        sent = time.monotonic_ns()
        _kill(pid)
        self._record_kill(host, inner, asked, sent, _gone([pid]))

    def _record_kill(self, host: int, pid: int | None, asked: int, sent: int, gone: int) -> None:
        """Note when the processes were known dead: an execution they ran ended by then.

        Neither the decision to kill (``asked``, before the processes are
        listed) nor the signal (``sent``) bounds an execution: a task may
        still start until the kernel has torn its process down (the ledger
        then shows a start after them and no end line), so the checks use ``gone``.
        """
        self.kills.append((f"h{host}", pid, gone))
        self.kill_log.append(
            {"host": f"h{host}", "pid": pid, "asked": asked, "sent": sent, "gone": gone}
        )

    def wait_up(self, expected: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _runs, _cron, _f, budgets = checks.read_ledgers(self.directory)
            if len(budgets) >= expected:
                return
            time.sleep(0.3)
        raise RuntimeError(f"only {len(budgets)} of {expected} workers came up")

    def stop_hosts(self) -> None:
        """SIGTERM every host (SIGKILL after 20 s); records when each host's processes were gone.

        A task still running when its worker's shutdown timeout ran out dies
        with the process and writes no end line; the stop bounds it like a kill.
        """
        stopping = {host: self.suite.topology.pids(host) for host in self.agents}
        for pids in stopping.values():
            for pid in pids:
                if _nspid(pid) == 1:
                    _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for agent in self.agents.values():
            try:
                agent.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                agent.kill()
        for host, pids in stopping.items():
            for pid in self.suite.topology.pids(host):
                _kill(pid)
            sent = time.monotonic_ns()
            self._record_kill(host, None, sent, sent, _gone(pids))
        self.agents.clear()

    # -- feeder and sampler -----------------------------------------------------

    def feed(self) -> None:
        rng = random.Random(7)
        while not self.stop.is_set():
            if self.feeding.is_set():
                try:
                    with self.engine.connect() as conn:
                        waiting = conn.execute(
                            sa.select(sa.func.count()).select_from(jobs)
                        ).scalar_one()
                    if waiting < BACKLOG:
                        added = self.manager.add_jobs(workload.batch(BACKLOG - waiting, rng))
                        self.enqueued.update(str(job.id) for job in added)
                except Exception:  # the database may be down: try again
                    pass
            self.stop.wait(0.3)

    def sample(self) -> None:
        query = sa.text(
            "SELECT application_name, count(*) FROM pg_stat_activity "
            "WHERE datname = :db AND application_name <> :me GROUP BY 1"
        )
        while not self.stop.is_set():
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(query, {"db": self.database, "me": CONTROLLER}).all()
                counts = {name: n for name, n in rows}
                self.samples.append((time.monotonic_ns(), counts, sum(counts.values())))
            except Exception:
                pass
            self.stop.wait(0.5)

    def background(self) -> None:
        for target in (self.feed, self.sample):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with self.engine.connect() as conn:
                    left = conn.execute(sa.select(sa.func.count()).select_from(jobs)).scalar_one()
                if left == 0:
                    return
            except Exception:
                pass
            time.sleep(0.5)


def _proc_field(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _nspid(pid: int) -> int:
    values = _proc_field(pid, "NSpid").split()
    return int(values[-1]) if values else -1


def _ppid(pid: int) -> int:
    value = _proc_field(pid, "PPid")
    return int(value) if value else -1


def _gone(pids: list[int], timeout: float = 30) -> int:
    """Wait until none of ``pids`` runs any more (gone or a zombie); returns that instant."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(_proc_field(pid, "State")[:1] in ("", "Z", "X") for pid in pids):
            break
        time.sleep(0.01)
    return time.monotonic_ns()


def _kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Suite:
    """The topology, cluster and proxies shared by all scenarios of one invocation."""

    def __init__(self, *, procs: int, concurrency: int, keep: bool = False) -> None:
        self.tag = f"{random.randrange(16**4):04x}"
        self.topology = Topology(self.tag, random.randrange(100, 250), HOSTS)
        self.root = tempfile.mkdtemp(prefix=f"queuekit-chaos-{self.tag}-")
        os.chmod(self.root, 0o755)
        self.cluster = Cluster(os.path.join(self.root, "pg"), self.topology.gateway)
        self.proxies: dict[str, FaultProxy] = {}
        self.procs = procs
        self.concurrency = concurrency
        self.keep = keep
        self.admin: sa.Engine | None = None
        self.counter = 0

    def setup(self) -> None:
        self.topology.create()
        self.cluster.create()
        gateway = self.topology.gateway
        self.proxies["direct"] = FaultProxy(gateway, 55440, (gateway, PORT))
        self.proxies["pgbouncer"] = FaultProxy(gateway, 55460, (gateway, BOUNCER_PORT))
        for proxy in self.proxies.values():
            proxy.start(HOSTS)
        self.admin = sa.create_engine(
            self.cluster.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool
        )

    def teardown(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        if self.admin is not None:
            self.admin.dispose()
        self.topology.destroy()
        self.cluster.destroy()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def new_run(self, mode: str) -> Run:
        assert self.admin is not None
        self.counter += 1
        database = f"chaos{self.counter}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {database}"))
        engine = create_engine(
            self.cluster.url(database), connect_args={"application_name": CONTROLLER}
        )
        migrations.upgrade(engine)
        manager = JobManager(engine)
        for key in workload.RATE_KEYS:
            manager.register_rate_limit(key, workload.RATE_CAPACITY, workload.RATE_INTERVAL)
        directory = os.path.join(self.root, f"{self.counter:02d}-{mode}")
        os.makedirs(directory)
        os.chmod(directory, 0o777)
        return Run(self, mode, directory, database, engine, manager)

    def budget_limit(self, mode: str, budgets: dict[str, int]) -> int:
        if mode == "pgbouncer":
            return BOUNCER_POOL + len(budgets)  # the pool plus one direct listener per worker
        return sum(budgets.values())
