"""Shared plumbing of the repository: constants, outcome values, execution."""

from __future__ import annotations

import threading
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Executable,
    and_,
    case,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.sql.dml import (
    Update,
)

from queuekit.dialects import DialectSupport
from queuekit.limits import MAX_DOCUMENT_BYTES, storable_text
from queuekit.models import (
    job_history,
    job_queues,
    jobs,
)
from queuekit.types import (
    Job,
    PartialSuccess,
)

T = TypeVar("T")

#: Rows per statement for bulk writes and for ``IN`` lists.
CHUNK = 1000
#: Bytes of JSON payload one statement carries at most: MySQL/MariaDB send a
#: statement as one packet of at most ``max_allowed_packet`` (16 MiB by default
#: on MariaDB), and escaping inside the statement can double the JSON text.
STATEMENT_PAYLOAD_BYTES = MAX_DOCUMENT_BYTES
#: Keyless jobs from which a bulk enqueue uses the dialect's bulk-load path (COPY).
COPY_THRESHOLD = 200
#: The columns a bulk load writes; the others take their server defaults.
COPIED_COLUMNS = (
    "id",
    "task_identifier",
    "payload",
    "priority",
    "queue_name",
    "run_at",
    "max_attempts",
    "flags",
    "rate_limit_key",
    "created_at",
    "updated_at",
)
#: How often (seconds) one process refreshes a task identifier's ``last_used``.
TOUCH_INTERVAL = 60.0
EXPIRED_LOCK_MESSAGE = "lock expired"
FORCE_UNLOCK_MESSAGE = "force unlocked"
CANCELLED_MESSAGE = "cancelled"
PARTIAL_AT_MAX_MESSAGE = "max-attempts reached on partial-success"

#: Candidate rounds of one claim at most (see :meth:`Repository.claim_jobs`).
CLAIM_ROUNDS = 3
#: Rounds of one keyed enqueue at most: each round re-reads the keys that
#: concurrent enqueues inserted or deleted meanwhile (see ``Enqueue._add_keyed``).
KEY_ROUNDS = 10

OutcomeKind = Literal["completed", "failed", "partial_success"]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sized_chunks(
    items: Sequence[T],
    weights: Sequence[int],
    size: int = CHUNK,
    budget: int = STATEMENT_PAYLOAD_BYTES,
) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items whose weights add up to at most ``budget``.

    A slice always holds at least one item, so one heavy item still goes alone.
    """
    start = total = 0
    for index, weight in enumerate(weights):
        if index > start and (index - start >= size or total + weight > budget):
            yield items[start:index]
            start, total = index, 0
        total += weight
    if start < len(items):
        yield items[start:]


def error_text(error: BaseException | str | None) -> tuple[str | None, str | None]:
    """The message and formatted traceback stored for an attempt's error."""
    if error is None:
        return None, None
    if isinstance(error, BaseException):
        try:
            message = str(error) or type(error).__name__
        except Exception:  # a broken __str__ must not cost the attempt its outcome
            message = f"{type(error).__name__} (its message could not be rendered)"
        try:
            stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        except Exception:
            stack = None
        return storable_text(message), None if stack is None else storable_text(stack)
    return storable_text(str(error)), None


def history_window(
    from_time: datetime | None, to_time: datetime | None, task_identifier: str | None
) -> list[ColumnElement[bool]]:
    """Conditions on history rows: started within ``[from_time, to_time]``, of one task."""
    conditions: list[ColumnElement[bool]] = []
    if from_time is not None:
        conditions.append(job_history.c.started_at >= from_time)
    if to_time is not None:
        conditions.append(job_history.c.started_at <= to_time)
    if task_identifier is not None:
        conditions.append(job_history.c.task_identifier == task_identifier)
    return conditions


@dataclass(frozen=True)
class Outcome:
    """How one claimed attempt ended, for :meth:`Repository.finish_jobs`."""

    job: Job
    kind: OutcomeKind
    execution_time_ms: int
    error: BaseException | str | None = None
    partial: PartialSuccess | None = None
    #: Exhaust the job whatever attempts it has left (a failure that retrying cannot fix).
    exhaust: bool = False


@dataclass(frozen=True)
class FinishedJob:
    """What :meth:`Repository.finish_jobs` did to one owned job."""

    outcome: Outcome
    job: Job
    exhausted: bool


class RepositoryBase:
    """Execution with queuekit's options, and the helpers every part of the repository uses."""

    def __init__(self, dialect: DialectSupport, *, schema: str | None = None) -> None:
        self.dialect = dialect
        self.schema = schema
        self._options: dict[str, Any] = (
            {"schema_translate_map": {None: schema}} if schema is not None else {}
        )
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()
        #: Statements built once per shape, their values sent as bind parameters.
        self._statements: dict[Any, Any] = {}

    def run(self, conn: Connection, statement: Executable, params: Any = None) -> Any:
        """Execute one statement with queuekit's execution options (named schema)."""
        return conn.execute(statement, params, execution_options=self._options)

    def now(self, conn: Connection) -> datetime:
        """The database clock."""
        value: datetime = self.run(conn, select(self.dialect.now())).scalar_one()
        return value

    def _select_jobs(
        self, conn: Connection, ids: Sequence[uuid.UUID], *, locking: bool = False
    ) -> dict[uuid.UUID, Any]:
        """Job rows by id; ``locking`` reads the latest versions even under REPEATABLE READ."""
        found: dict[uuid.UUID, Any] = {}
        for part in chunks(list(ids)):
            statement = select(jobs).where(jobs.c.id.in_(part))
            if locking:
                statement = statement.order_by(jobs.c.id).with_for_update()
            for row in self.run(conn, statement):
                found[row.id] = row
        return found

    def _update_returning_jobs(
        self, conn: Connection, statement: Any, ids: Sequence[uuid.UUID]
    ) -> dict[uuid.UUID, Any]:
        """Run an UPDATE of ``queuekit_jobs`` and return the new rows by id."""
        if conn.dialect.update_returning:
            return {row.id: row for row in self.run(conn, statement.returning(*jobs.c))}
        self.run(conn, statement)
        return self._select_jobs(conn, ids)

    def ensure_queues(self, conn: Connection, names: Iterable[str]) -> None:
        """Make sure a queue row exists for each named queue (never touching existing rows)."""
        wanted = sorted(set(names))
        if not wanted:
            return  # most enqueues name no queue: build nothing
        now = self.dialect.now()
        for part in chunks(wanted):
            rows = [{"queue_name": n, "created_at": now, "updated_at": now} for n in part]
            self.run(conn, self.dialect.upsert(job_queues, rows, ["queue_name"], None))

    def close_history_rows(
        self, conn: Connection, correlations: Sequence[Any], values: Mapping[str, Any]
    ) -> None:
        """Update the ``started`` history rows of these claims (terminal rows never change)."""
        for part in chunks(list(correlations)):
            self.run(
                conn,
                update(job_history)
                .where(
                    job_history.c.correlation_id.in_(list(part)),
                    job_history.c.status == "started",
                )
                .values(dict(values)),
            )

    def _unlock_queues(
        self,
        conn: Connection,
        names: Iterable[str | None],
        holder: str | None = None,
        *,
        wake: bool = True,
    ) -> None:
        """Free named queues (only those held by ``holder`` when given)."""
        wanted = sorted({n for n in names if n is not None})
        if wanted:
            self.run(conn, self._unlock_queues_statement(wanted, holder, wake=wake))

    def _unlock_queues_statement(
        self, names: Any, holder: str | BindParameter[str] | None, *, wake: bool = True
    ) -> Update:
        """The UPDATE that frees ``names`` (a list or a subquery) and wakes workers at commit.

        Without ``wake`` it wakes nobody: the caller claims in the same
        transaction and wakes workers itself if anything is left for them.
        """
        condition: ColumnElement[bool] = job_queues.c.queue_name.in_(names)
        if holder is not None:
            condition = and_(condition, job_queues.c.locked_by == holder)
        wake_up = self.dialect.wake_up_condition() if wake else None
        if wake_up is not None:
            condition = and_(condition, wake_up)
        return (
            update(job_queues)
            .where(condition)
            .values(locked_at=None, locked_by=None, updated_at=self.dialect.now())
        )

    @staticmethod
    def _per_row(key: Any, column: Any, per_row: Mapping[Any, Any]) -> Any:
        """A literal when every row gets the same value, else a CASE over ``key``.

        The CASE lists only the rows that differ from the most common value,
        its ELSE: a batch of quick jobs mostly shares one execution time, and
        a short CASE is cheaper to build, send and evaluate.
        """
        by_value: dict[str, list[Any]] = {}
        for k, v in per_row.items():
            by_value.setdefault(repr(v), []).append(k)
        common = max(by_value.values(), key=len)
        common_value = per_row[common[0]]
        usual = null() if common_value is None else literal(common_value, column.type)
        if len(by_value) == 1:
            return usual
        others = {
            k: (null() if per_row[k] is None else literal(per_row[k], column.type))
            for keys in by_value.values()
            if keys is not common
            for k in keys
        }
        return case(others, value=key, else_=usual)
