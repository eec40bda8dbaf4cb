"""What every benchmark shares: fresh databases, raw-SQL baselines, measurements.

Baselines talk to the database through the bare driver (psycopg, sqlite3,
PyMySQL) with hand-written SQL, against the same ``queuekit_jobs`` table
(same columns, same indexes), so a ratio measures what queuekit's own
work costs, not a difference of table design.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from queuekit import migrations
from queuekit.dialects import support_for
from queuekit.ids import uuid7

DIALECTS = ("sqlite", "postgresql", "mariadb")
PG_ADMIN_URL = os.environ.get(
    "QUEUEKIT_BENCH_PG",
    os.environ.get("QUEUEKIT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
)
MYSQL_ADMIN_URL = os.environ.get(
    "QUEUEKIT_BENCH_MYSQL",
    os.environ.get("QUEUEKIT_TEST_MYSQL", "mysql+pymysql://root@127.0.0.1:3306/test"),
)
#: The channel the raw LISTEN baseline uses (not queuekit's, so the two never mix).
RAW_CHANNEL = "queuekit_bench_raw"
JOB_COLUMNS = "id, task_identifier, payload, run_at, created_at, updated_at, flags"


@dataclass(frozen=True)
class Measurement:
    """One figure of queuekit beside the same figure of a raw-SQL baseline from the same run.

    ``target`` is the ratio queuekit should reach (at least, or with
    ``lower_is_better`` at most); ``limit`` an absolute bound the value
    should stay under. Both are reported, never asserted.
    """

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    lower_is_better: bool = False
    target: float | None = None
    limit: float | None = None

    @property
    def ratio(self) -> float:
        """queuekit's value divided by the baseline's."""
        if not self.baseline_value:
            return math.nan
        return self.value / self.baseline_value

    @property
    def verdict(self) -> str:
        """``meets``/``misses`` against the target and limit, or empty without either."""
        if self.target is None and self.limit is None:
            return ""
        ok = True
        if self.target is not None:
            ok = self.ratio <= self.target if self.lower_is_better else self.ratio >= self.target
        if self.limit is not None:
            ok = ok and self.value < self.limit
        return "meets" if ok else "misses"

    def target_text(self) -> str:
        """The target written out, e.g. ``>= 0.40`` or ``<= 1.5x, < 10 ms``."""
        parts = []
        if self.target is not None:
            parts.append(f"{'<=' if self.lower_is_better else '>='} {self.target:.2f}")
        if self.limit is not None:
            parts.append(f"< {self.limit:g} {self.unit}")
        return ", ".join(parts)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))
    return ordered[rank]


def timed(work: Callable[[], object]) -> float:
    """Seconds ``work()`` took."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# -- databases ----------------------------------------------------------------------------


def server_problem(dialect: str) -> str | None:
    """None when the dialect's server answers (SQLite always does), else why not."""
    if dialect == "sqlite":
        return None
    url = PG_ADMIN_URL if dialect == "postgresql" else MYSQL_ADMIN_URL
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return None
    except Exception as error:  # any failure means there is no server to measure
        return f"{dialect} server unavailable at {url}: {' '.join(str(error).split())}"
    finally:
        engine.dispose()


@contextmanager
def fresh_database(dialect: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database for ``dialect``, migrated to head (unless not ``migrate``); dropped after."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="queuekit-bench-") as directory:
            url = f"sqlite:///{Path(directory) / 'bench.db'}"
            if migrate:
                _migrate(url)
            yield url
        return
    name = f"qk_bench_{uuid.uuid4().hex[:12]}"
    admin_url = PG_ADMIN_URL if dialect == "postgresql" else MYSQL_ADMIN_URL
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        if migrate:
            _migrate(url)
        yield url
    finally:
        with admin.connect() as conn:
            force = " WITH (FORCE)" if dialect == "postgresql" else ""
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{force}"))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        migrations.upgrade(engine)
    finally:
        engine.dispose()


# -- raw-SQL baselines -------------------------------------------------------------------------


class RawQueue:
    """A bare driver connection running the minimal statements of a job queue.

    One job is one row of ``queuekit_jobs`` with the columns that have no
    default; a claim is ``SELECT ... FOR UPDATE SKIP LOCKED`` (a plain
    SELECT inside ``BEGIN IMMEDIATE`` on SQLite) followed by a DELETE.
    """

    def __init__(self, dialect: str, url: str, *, task: str | None = None) -> None:
        self.dialect = dialect
        parsed = sa.make_url(url)
        engine = sa.create_engine(url)
        # The database clock exactly as queuekit writes it, as literal SQL.
        self.now_sql = str(
            support_for(engine.dialect)
            .now()
            .compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        )
        engine.dispose()
        self.connection: Any
        if dialect == "sqlite":
            assert parsed.database is not None
            self.connection = sqlite3.connect(
                parsed.database, isolation_level=None, check_same_thread=False
            )
            # The settings queuekit applies to its own SQLite connections.
            for pragma in ("busy_timeout = 30000", "journal_mode = WAL", "synchronous = NORMAL"):
                self.connection.execute(f"PRAGMA {pragma}")
            self.mark = "?"
        elif dialect == "postgresql":
            import psycopg

            conninfo = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self.connection = psycopg.connect(conninfo)
            self.mark = "%s"
        else:
            import pymysql

            self.connection = pymysql.connect(
                host=parsed.host or "127.0.0.1",
                port=parsed.port or 3306,
                user=parsed.username or "root",
                password=parsed.password or "",
                database=parsed.database,
                autocommit=False,
            )
            with self.connection.cursor() as cursor:
                cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            self.connection.commit()
            self.mark = "%s"
        now = self.now_sql
        marks = ", ".join([self.mark] * 3)
        self.insert_sql = (
            f"INSERT INTO queuekit_jobs ({JOB_COLUMNS}) VALUES ({marks}, {now}, {now}, {now}, '[]')"
        )
        lock = "" if dialect == "sqlite" else " FOR UPDATE SKIP LOCKED"
        # A claimer given a task claims only that task's jobs (a literal: benchmark-made).
        only = "" if task is None else f" AND task_identifier = '{task}'"
        self.claim_sql = (
            "SELECT id FROM queuekit_jobs"
            f" WHERE locked_at IS NULL AND attempts < max_attempts AND run_at <= {now}{only}"
            f" ORDER BY priority, run_at, id LIMIT {self.mark}{lock}"
        )

    def close(self) -> None:
        """Close the driver connection."""
        self.connection.close()

    def row(self, task: str, payload: dict[str, Any]) -> tuple[Any, str, Any]:
        """The (id, task, payload) parameters of one new job, in the driver's format."""
        job_id = uuid7()
        if self.dialect == "postgresql":
            from psycopg.types.json import Jsonb

            return job_id, task, Jsonb(payload)
        if self.dialect == "sqlite":
            return job_id.hex, task, json.dumps(payload)
        return str(job_id), task, json.dumps(payload)

    def _begin(self, cursor: Any) -> None:
        if self.dialect == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")

    def _commit(self, cursor: Any) -> None:
        if self.dialect == "sqlite":
            cursor.execute("COMMIT")
        else:
            self.connection.commit()

    def insert_one(self, task: str, payload: dict[str, Any]) -> None:
        """INSERT one job in its own transaction."""
        cursor = self.connection.cursor()
        self._begin(cursor)
        cursor.execute(self.insert_sql, self.row(task, payload))
        self._commit(cursor)
        cursor.close()

    def insert_many(self, task: str, payloads: Sequence[dict[str, Any]]) -> None:
        """Insert jobs in one transaction: COPY on PostgreSQL, multi-row INSERTs elsewhere."""
        cursor = self.connection.cursor()
        if self.dialect == "postgresql":
            moment = datetime.now(UTC)
            statement = f"COPY queuekit_jobs ({JOB_COLUMNS}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for payload in payloads:
                    job_id, _, document = self.row(task, payload)
                    copy.write_row((job_id, task, document, moment, moment, moment, "[]"))
            self.connection.commit()
            cursor.close()
            return
        self._begin(cursor)
        now = self.now_sql
        for start in range(0, len(payloads), 1000):
            part = payloads[start : start + 1000]
            values = ", ".join(
                f"({self.mark}, {self.mark}, {self.mark}, {now}, {now}, {now}, '[]')" for _ in part
            )
            params = [value for payload in part for value in self.row(task, payload)]
            cursor.execute(f"INSERT INTO queuekit_jobs ({JOB_COLUMNS}) VALUES {values}", params)
        self._commit(cursor)
        cursor.close()

    def claim_and_delete(self, batch: int) -> int:
        """One transaction claiming up to ``batch`` jobs and deleting them; returns how many."""
        cursor = self.connection.cursor()
        self._begin(cursor)
        cursor.execute(self.claim_sql, (batch,))
        ids = [row[0] for row in cursor.fetchall()]
        if ids:
            marks = ", ".join([self.mark] * len(ids))
            cursor.execute(f"DELETE FROM queuekit_jobs WHERE id IN ({marks})", ids)
        self._commit(cursor)
        cursor.close()
        return len(ids)

    def insert_and_notify(self, task: str, payload: dict[str, Any]) -> None:
        """INSERT one job and NOTIFY the raw channel in one transaction (PostgreSQL)."""
        cursor = self.connection.cursor()
        cursor.execute(self.insert_sql, self.row(task, payload))
        cursor.execute(f"NOTIFY {RAW_CHANNEL}")
        self.connection.commit()
        cursor.close()


__all__ = [
    "DIALECTS",
    "Measurement",
    "RawQueue",
    "fresh_database",
    "percentile",
    "server_problem",
    "timed",
]
