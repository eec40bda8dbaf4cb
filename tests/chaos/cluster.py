"""A private PostgreSQL cluster (and PgBouncer) made for one run and removed after it.

It listens only on the bridge address and a socket in its own directory,
so crashing or restarting it never touches the machine's shared server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass

from tests.chaos.topology import sh

PORT = 55432
BOUNCER_PORT = 56432
#: Server settings: fast (fsync off: a server crash keeps the OS cache, so a
#: committed transaction survives; synchronous_commit stays on, or a crash would
#: lose acknowledged commits), keepalives so a cut host's backends are reaped,
#: and an open transaction of a cut host ended well before the lock timeout,
#: so the row locks it holds cannot stall the healthy hosts past it.
SETTINGS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "idle_in_transaction_session_timeout": "3s",
    "shared_buffers": "64MB",
}
#: PgBouncer's server connections per database/user pair.
BOUNCER_POOL = 20


def server_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return found[-1]


def as_postgres(*args: str) -> subprocess.CompletedProcess[str]:
    return sh("runuser", "-u", "postgres", "--", *args)


@dataclass
class Cluster:
    """initdb into ``root``, started on ``host:PORT``."""

    root: str
    host: str
    started: bool = False
    bouncer: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> str:
        return os.path.join(self.root, "data")

    def url(self, database: str, *, port: int = PORT) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{port}/{database}"

    def create(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        user = pwd.getpwnam("postgres")
        os.chown(self.root, user.pw_uid, user.pw_gid)
        as_postgres(
            f"{server_bindir()}/initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "-N"
        )
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as hba:
            hba.write(f"host all all {self.host.rsplit('.', 1)[0]}.0/24 trust\n")
        self.start()

    def _options(self) -> str:
        options = [f"-c listen_addresses={self.host}", f"-p {PORT}"]
        options.append(f"-c unix_socket_directories={self.root}")
        options += [f"-c {name}={value}" for name, value in SETTINGS.items()]
        return " ".join(options)

    def start(self) -> None:
        as_postgres(
            f"{server_bindir()}/pg_ctl", "-D", self.data, "-l", f"{self.root}/log", "-w",
            "-o", self._options(), "start",
        )  # fmt: skip
        self.started = True

    def crash_restart(self) -> None:
        """Kill the server without a checkpoint (``-m immediate``) and start it again."""
        as_postgres(
            f"{server_bindir()}/pg_ctl", "-D", self.data, "-m", "immediate", "-w",
            "-o", self._options(), "restart", "-l", f"{self.root}/log",
        )  # fmt: skip

    def start_bouncer(self) -> None:
        """PgBouncer in transaction-pooling mode in front of ``database``."""
        if shutil.which("pgbouncer") is None and not os.path.exists("/usr/sbin/pgbouncer"):
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        ini = os.path.join(self.root, "pgbouncer.ini")
        with open(ini, "w") as f:
            f.write(
                "[databases]\n"
                f"* = host={self.host} port={PORT} user=postgres\n"
                "[pgbouncer]\n"
                f"listen_addr = {self.host}\nlisten_port = {BOUNCER_PORT}\n"
                f"unix_socket_dir = {self.root}\n"
                "auth_type = any\npool_mode = transaction\n"
                f"default_pool_size = {BOUNCER_POOL}\nmax_client_conn = 2000\n"
                "server_login_retry = 1\nserver_connect_timeout = 3\n"
                "tcp_keepalive = 1\ntcp_keepidle = 5\ntcp_keepintvl = 2\ntcp_keepcnt = 3\n"
                "ignore_startup_parameters = extra_float_digits\n"
                f"logfile = {self.root}/pgbouncer.log\n"
            )
        user = pwd.getpwnam("postgres")
        os.chown(ini, user.pw_uid, user.pw_gid)
        self.bouncer = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", binary, ini],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        if self.bouncer.poll() is not None:
            raise RuntimeError(f"pgbouncer did not start; see {self.root}/pgbouncer.log")

    def stop_bouncer(self) -> None:
        if self.bouncer is not None:
            self.bouncer.terminate()
            try:
                self.bouncer.wait(5)
            except subprocess.TimeoutExpired:
                self.bouncer.kill()
            self.bouncer = None

    def destroy(self) -> None:
        """Stop PgBouncer and the server and delete the cluster; never raises."""
        self.stop_bouncer()
        if self.started:
            sh(
                "runuser", "-u", "postgres", "--", f"{server_bindir()}/pg_ctl",
                "-D", self.data, "-m", "immediate", "stop", check=False,
            )  # fmt: skip
            self.started = False
        for name in ("log", "pgbouncer.log"):  # kept beside the runs' ledgers (--keep)
            with contextlib.suppress(OSError):
                shutil.copy(os.path.join(self.root, name), f"{self.root}-{name}")
        shutil.rmtree(self.root, ignore_errors=True)
