"""The SQL each dialect receives for the claim, the settle and the enqueue, pinned as files.

The statements are built by the repository itself, exactly as a worker or
``add_jobs`` would build them, and compiled with ``compile(dialect=...)``
for each dialect. A change to any of them shows up as a diff of a file under
``tests/unit/snapshots/``; when the change is intended, regenerate the files
with ``QUEUEKIT_UPDATE_SNAPSHOTS=1 make unit`` and review the diff.

No database is involved: the repository gets a :class:`StatementRecorder`
in place of a connection. It records every statement and, to let the code
run on to its next statement, answers with the job rows it was given (plus
any rows an INSERT just sent). Nothing about behaviour is asserted through
it; the conformance tests prove what these statements do on real servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect

from queuekit import RetryPolicy
from queuekit.dialects import support_for
from queuekit.repository import Outcome, Repository
from queuekit.rows import job_from_row
from queuekit.types import JobSpec
from queuekit.validation import check_job_spec

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
UPDATE = os.environ.get("QUEUEKIT_UPDATE_SNAPSHOTS") == "1"
NOW = datetime(2030, 1, 1, tzinfo=UTC)

#: The SQLAlchemy dialects the snapshots are compiled for, with their default
#: capabilities (those of a current server: MariaDB has INSERT ... RETURNING,
#: MySQL has none).
DIALECTS: dict[str, Callable[[], Dialect]] = {
    "postgresql": postgresql.psycopg.dialect,
    "sqlite": sqlite.pysqlite.dialect,
    "mariadb": lambda: mysql.pymysql.dialect(is_mariadb=True),
    "mysql": mysql.pymysql.dialect,
}


class Row:
    """A result row: attribute access and ``_mapping``, like SQLAlchemy's."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._mapping = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


class Answer:
    """What ``execute`` returns: the rows, iterable, with ``scalars``/``scalar_one``/rowcount."""

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = list(rows)
        self.rowcount = len(self.rows)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)

    def scalars(self) -> Iterator[Any]:
        return iter(next(iter(row._mapping.values())) for row in self.rows)

    def scalar_one(self) -> Any:
        (row,) = self.rows
        return next(iter(row._mapping.values()))


def job_row(**changes: Any) -> dict[str, Any]:
    """Every column of a job row (what a claim's RETURNING gives back)."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "task_identifier": "mail",
        "payload": {},
        "priority": 0,
        "queue_name": None,
        "run_at": NOW,
        "attempts": 1,
        "max_attempts": 25,
        "last_error": None,
        "created_at": NOW,
        "updated_at": NOW,
        "job_key": None,
        "job_key_mode": None,
        "flags": [],
        "locked_at": NOW,
        "locked_by": "worker-1",
        "revision": 1,
        "rate_limit_key": None,
        "correlation_id": uuid.uuid4(),
    }
    return {**values, **changes}


class StatementRecorder:
    """Stands in for a Connection: records each statement sent, answers with known rows."""

    def __init__(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]] = ()) -> None:
        self.dialect = dialect
        self.rows = [dict(row) for row in rows]
        self.sent: list[tuple[Any, Any]] = []

    def execute(self, statement: Any, params: Any = None, **_options: Any) -> Answer:
        self.sent.append((statement, params))
        if isinstance(params, list) and params and "id" in params[0]:
            # An INSERT of new jobs: later reads (and its RETURNING) see them.
            self.rows += [{**job_row(), **p, "run_at": NOW} for p in params]
        return Answer([Row(row) for row in self.rows])

    def compiled(self) -> str:
        """Every statement sent, compiled for the recorder's dialect, in order."""
        texts = []
        for number, (statement, params) in enumerate(self.sent, start=1):
            keys = list(params[0]) if isinstance(params, list) and params else None
            sql = str(statement.compile(dialect=self.dialect, column_keys=keys))
            texts.append(f"-- statement {number}\n{sql.strip()}\n")
        return "\n".join(texts)


def check_snapshot(name: str, text: str) -> None:
    """Compare ``text`` with the stored snapshot ``name`` (rewrite it when updating)."""
    path = SNAPSHOTS / name
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"no snapshot {path.name}; run QUEUEKIT_UPDATE_SNAPSHOTS=1 make unit"
    assert text == path.read_text(), (
        f"the SQL of {path.name} changed; if intended, run QUEUEKIT_UPDATE_SNAPSHOTS=1 make unit "
        "and review the diff"
    )


@pytest.fixture(autouse=True)
def no_transaction_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder has no transaction whose end caches could wait for."""
    import queuekit.learning
    import queuekit.repository.catalog

    for module in (queuekit.learning, queuekit.repository.catalog):
        monkeypatch.setattr(module, "after_transaction", lambda *_args, **_kwargs: None)


@pytest.fixture(params=sorted(DIALECTS))
def sa_dialect(request: pytest.FixtureRequest) -> tuple[str, Dialect]:
    """A name and a SQLAlchemy dialect object (no connection) to compile for."""
    return str(request.param), DIALECTS[str(request.param)]()


def repository_for(dialect: Dialect) -> Repository:
    return Repository(support_for(dialect))


def test_claim(sa_dialect: tuple[str, Dialect]) -> None:
    name, dialect = sa_dialect
    recorder = StatementRecorder(dialect, [job_row(attempts=0), job_row(attempts=0)])
    claimed = repository_for(dialect).claim_jobs(
        recorder,  # type: ignore[arg-type]
        "worker-1",
        task_identifiers=["mail"],
        forbidden_flags=["slow"],
        batch_size=2,
        retention_ms=30 * 86_400_000,
    )
    assert len(claimed) == 2
    check_snapshot(f"claim.{name}.sql", recorder.compiled())


def test_settle(sa_dialect: tuple[str, Dialect]) -> None:
    name, dialect = sa_dialect
    done, failed = job_row(), job_row()
    recorder = StatementRecorder(dialect, [done, failed])
    outcomes = [
        Outcome(job_from_row(Row(done), with_correlation=True), "completed", 5),
        Outcome(job_from_row(Row(failed), with_correlation=True), "failed", 7, error="boom"),
    ]
    finished = repository_for(dialect).finish_jobs(
        recorder,  # type: ignore[arg-type]
        "worker-1",
        outcomes,
        RetryPolicy(jitter=0),
    )
    assert [f.outcome.kind for f in finished] == ["completed", "failed"]
    check_snapshot(f"settle.{name}.sql", recorder.compiled())


def test_settle_completions(sa_dialect: tuple[str, Dialect]) -> None:
    """A flush of completions alone: on PostgreSQL one statement built once, values bound."""
    name, dialect = sa_dialect
    first, second = job_row(), job_row()
    recorder = StatementRecorder(dialect, [first, second])
    outcomes = [
        Outcome(job_from_row(Row(row), with_correlation=True), "completed", ms)
        for row, ms in ((first, 5), (second, 9))
    ]
    finished = repository_for(dialect).finish_jobs(
        recorder,  # type: ignore[arg-type]
        "worker-1",
        outcomes,
        RetryPolicy(jitter=0),
    )
    assert [f.outcome.kind for f in finished] == ["completed", "completed"]
    check_snapshot(f"settle-completions.{name}.sql", recorder.compiled())


def test_enqueue(sa_dialect: tuple[str, Dialect]) -> None:
    name, dialect = sa_dialect
    recorder = StatementRecorder(dialect)
    added = repository_for(dialect).add_jobs(
        recorder,  # type: ignore[arg-type]
        [check_job_spec(JobSpec("mail", {"to": "ada"}, queue_name="emails", flags=["slow"]))],
    )
    assert len(added) == 1
    check_snapshot(f"enqueue.{name}.sql", recorder.compiled())


def test_enqueue_with_a_job_key(sa_dialect: tuple[str, Dialect]) -> None:
    name, dialect = sa_dialect
    recorder = StatementRecorder(dialect)
    added = repository_for(dialect).add_jobs(
        recorder,  # type: ignore[arg-type]
        [check_job_spec(JobSpec("mail", {"to": "ada"}, job_key="welcome-ada"))],
    )
    assert len(added) == 1
    check_snapshot(f"enqueue-keyed.{name}.sql", recorder.compiled())


def test_every_snapshot_file_belongs_to_a_test() -> None:
    expected = {
        f"{case}.{name}.sql"
        for case in ("claim", "settle", "settle-completions", "enqueue", "enqueue-keyed")
        for name in DIALECTS
    }
    assert {path.name for path in SNAPSHOTS.glob("*.sql")} == expected
