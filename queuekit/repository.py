"""Every statement queuekit runs, in SQLAlchemy Core, shared by all dialects.

Methods take the caller's :class:`~sqlalchemy.engine.Connection` and never
commit: the transaction belongs to whoever opened it. Arguments arrive
already checked (see :mod:`queuekit.validation`); what differs between
databases comes from the dialect seam (:mod:`queuekit.dialects`).
"""

from __future__ import annotations

import functools
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
)

from queuekit.dialects import DialectSupport
from queuekit.ids import uuid7
from queuekit.models import (
    UTCDateTime,
    job_history,
    job_queues,
    jobs,
    known_crontabs,
    rate_limits,
    task_identifiers,
)
from queuekit.rows import (
    history_from_row,
    job_from_row,
    job_queue_from_row,
    rate_limit_from_row,
    task_identifier_from_row,
)
from queuekit.types import (
    JOB_STATUSES,
    HistoryRecord,
    Job,
    JobQueue,
    PartialSuccess,
    QueueStats,
    RateLimit,
    RetryPolicy,
    TaskIdentifier,
)
from queuekit.validation import NewJob, SchemaRow

T = TypeVar("T")

#: Rows per statement for bulk writes and for ``IN`` lists.
CHUNK = 1000
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
PARTIAL_AT_MAX_MESSAGE = "max-attempts reached on partial-success"

#: Candidate rounds of one claim at most (see :meth:`Repository.claim_jobs`).
CLAIM_ROUNDS = 3

OutcomeKind = Literal["completed", "failed", "partial_success"]


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


#: Longest error message or traceback stored, in characters. MySQL's TEXT holds
#: 65,535 bytes, so four bytes per character must still fit.
ERROR_TEXT_LIMIT = 16_000


def _storable(text: str) -> str:
    """``text`` as every dialect can store it: no NUL characters, bounded length.

    PostgreSQL rejects NUL in text columns, and an over-long traceback (a
    RecursionError's runs to hundreds of kilobytes) overflows MySQL's TEXT; either
    would make the whole outcome unwritable. The middle of an over-long text goes.
    """
    text = text.replace("\x00", "\\x00")
    if len(text) <= ERROR_TEXT_LIMIT:
        return text
    marker = f"\n[... {len(text) - ERROR_TEXT_LIMIT} characters omitted ...]\n"
    keep = ERROR_TEXT_LIMIT - len(marker)
    head = keep // 2
    return text[:head] + marker + text[len(text) - (keep - head) :]


def error_text(error: BaseException | str | None) -> tuple[str | None, str | None]:
    """The message and formatted traceback stored for an attempt's error."""
    if error is None:
        return None, None
    if isinstance(error, BaseException):
        message = str(error) or type(error).__name__
        stack = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return _storable(message), _storable(stack)
    return _storable(str(error)), None


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


class Repository:
    """queuekit's statements over one dialect and an optional named schema."""

    def __init__(self, dialect: DialectSupport, *, schema: str | None = None) -> None:
        self.dialect = dialect
        self.schema = schema
        self._options: dict[str, Any] = (
            {"schema_translate_map": {None: schema}} if schema is not None else {}
        )
        self._touched: dict[str, float] = {}
        self._touch_lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------

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

    # -- task identifiers and schemas ----------------------------------------

    def fetch_schemas(self, conn: Connection, identifiers: Sequence[str]) -> dict[str, SchemaRow]:
        """Stored schema and version of each identifier that has a row."""
        statement = select(
            task_identifiers.c.identifier,
            task_identifiers.c.schema_version,
            task_identifiers.c.payload_schema,
        ).where(task_identifiers.c.identifier.in_(list(identifiers)))
        return {row[0]: (row[1], row[2]) for row in self.run(conn, statement)}

    def register_task(
        self, conn: Connection, identifier: str, schema: dict[str, Any] | None
    ) -> TaskIdentifier:
        """Store (or replace, or with None remove) the schema of a task identifier."""
        now = self.dialect.now()
        statement = self.dialect.upsert(
            task_identifiers,
            [
                {
                    "identifier": identifier,
                    "payload_schema": schema,
                    "schema_version": 1,
                    "created_at": now,
                    "last_used": now,
                }
            ],
            ["identifier"],
            {
                "payload_schema": "new",
                "schema_version": task_identifiers.c.schema_version + 1,
            },
        )
        self.run(conn, statement)
        task = self.get_task(conn, identifier)
        assert task is not None
        return task

    def get_task(self, conn: Connection, identifier: str) -> TaskIdentifier | None:
        """One task identifier row, or None."""
        row = self.run(
            conn, select(task_identifiers).where(task_identifiers.c.identifier == identifier)
        ).first()
        return None if row is None else task_identifier_from_row(row)

    def schema_version(self, conn: Connection, identifier: str) -> int:
        """The schema version stored for an identifier (0 when none)."""
        version = self.run(
            conn,
            select(task_identifiers.c.schema_version).where(
                task_identifiers.c.identifier == identifier
            ),
        ).scalar()
        return int(version or 0)

    def touch_tasks(self, conn: Connection, identifiers: Iterable[str]) -> None:
        """Create task identifier rows and refresh ``last_used``, at most once a minute each.

        Refreshing on every job would make every enqueue and completion of a
        busy task update one hot row; the GC that reads ``last_used`` counts
        in days, so a minute of lag costs nothing.
        """
        moment = time.monotonic()
        with self._touch_lock:
            due = sorted(
                {
                    i
                    for i in identifiers
                    if moment - self._touched.get(i, -TOUCH_INTERVAL) >= TOUCH_INTERVAL
                }
            )
            for identifier in due:
                self._touched[identifier] = moment
        if not due:
            return
        now = self.dialect.now()
        rows = [{"identifier": i, "created_at": now, "last_used": now} for i in due]
        self.run(
            conn,
            self.dialect.upsert(task_identifiers, rows, ["identifier"], {"last_used": now}),
        )

    def forget_touches(self) -> None:
        """Drop the touch throttle (after a rollback that may have undone the rows)."""
        with self._touch_lock:
            self._touched.clear()

    # -- rate limits ----------------------------------------------------------

    def known_rate_limit_keys(self, conn: Connection, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` are registered."""
        statement = select(rate_limits.c.key).where(rate_limits.c.key.in_(list(keys)))
        return set(self.run(conn, statement).scalars())

    def register_rate_limit(
        self, conn: Connection, key: str, capacity: int, interval_ms: int
    ) -> RateLimit:
        """Create a full bucket, or change capacity and window keeping the current window start."""
        now = self.dialect.now()
        statement = self.dialect.upsert(
            rate_limits,
            [
                {
                    "key": key,
                    "capacity": capacity,
                    "interval_ms": interval_ms,
                    "available_tokens": capacity,
                    "last_refill_at": now,
                    "next_refill_at": self.dialect.add_ms(now, interval_ms),
                    "created_at": now,
                }
            ],
            ["key"],
            {
                "available_tokens": case(
                    (rate_limits.c.available_tokens > capacity, literal(capacity)),
                    else_=rate_limits.c.available_tokens,
                ),
                "next_refill_at": self.dialect.add_ms(rate_limits.c.last_refill_at, interval_ms),
                "capacity": literal(capacity),
                "interval_ms": literal(interval_ms),
            },
        )
        self.run(conn, statement)
        limit = self.get_rate_limit(conn, key)
        assert limit is not None
        return limit

    def get_rate_limit(self, conn: Connection, key: str) -> RateLimit | None:
        """One bucket, or None."""
        row = self.run(conn, select(rate_limits).where(rate_limits.c.key == key)).first()
        return None if row is None else rate_limit_from_row(row)

    def refill_rate_limits(self, conn: Connection) -> int:
        """Refill every bucket whose window has passed; returns how many."""
        now = self.dialect.now()
        # Lock in key order, as claims do, so refill and claims never deadlock.
        due = list(
            self.run(
                conn,
                select(rate_limits.c.key)
                .where(rate_limits.c.next_refill_at <= now)
                .order_by(rate_limits.c.key)
                .with_for_update(),
            ).scalars()
        )
        for part in chunks(due):
            self._refill(conn, part)
        return len(due)

    def _refill(self, conn: Connection, keys: Sequence[str]) -> None:
        now = self.dialect.now()
        self.run(
            conn,
            update(rate_limits)
            .where(rate_limits.c.key.in_(list(keys)))
            .values(
                available_tokens=rate_limits.c.capacity,
                last_refill_at=now,
                next_refill_at=self.dialect.add_ms(now, rate_limits.c.interval_ms),
            ),
        )

    # -- enqueue ------------------------------------------------------------------

    def ensure_queues(self, conn: Connection, names: Iterable[str]) -> None:
        """Make sure a queue row exists for each named queue (never touching existing rows)."""
        wanted = sorted(set(names))
        now = self.dialect.now()
        for part in chunks(wanted):
            rows = [{"queue_name": n, "created_at": now, "updated_at": now} for n in part]
            self.run(conn, self.dialect.upsert(job_queues, rows, ["queue_name"], None))

    def add_jobs(self, conn: Connection, new_jobs: Sequence[NewJob]) -> list[Job]:
        """Insert jobs in bulk, applying job-key modes; results in input order."""
        self.ensure_queues(conn, (j.queue_name for j in new_jobs if j.queue_name))
        self.touch_tasks(conn, (j.task_identifier for j in new_jobs))
        results: list[Job | None] = [None] * len(new_jobs)
        plain = [(i, j) for i, j in enumerate(new_jobs) if j.job_key is None]
        if plain:
            inserted = self._insert_plain(conn, [self._new_row(j) for _, j in plain])
            for (index, _), job in zip(plain, inserted, strict=True):
                results[index] = job
        groups: dict[str, list[tuple[int, NewJob]]] = {}
        for index, new_job in enumerate(new_jobs):
            if new_job.job_key is not None:
                groups.setdefault(new_job.job_key, []).append((index, new_job))
        if groups:
            self._add_keyed(conn, groups, results)
        return [job for job in results if job is not None]

    def _new_row(self, new_job: NewJob, *, run_at: datetime | None = None) -> dict[str, Any]:
        return {
            "id": uuid7(),
            "task_identifier": new_job.task_identifier,
            "payload": new_job.payload,
            "priority": new_job.priority,
            "queue_name": new_job.queue_name,
            "run_at_value": run_at or new_job.run_at,
            "attempts": 0,
            "max_attempts": new_job.max_attempts,
            "job_key": new_job.job_key,
            "job_key_mode": new_job.job_key_mode,
            "flags": list(new_job.flags),
            "rate_limit_key": new_job.rate_limit_key,
        }

    def _computed_values(self) -> dict[str, ColumnElement[Any]]:
        """Columns of a new job computed in SQL: the database clock, and the wake-up."""
        now = self.dialect.now()
        return {
            "run_at": func.coalesce(bindparam("run_at_value", type_=UTCDateTime()), now),
            "created_at": now,
            "updated_at": now,
            **self.dialect.wake_up_values(),
        }

    @functools.cached_property
    def _insert_statement(self) -> Any:
        # Built once: constructing and cache-keying it dominated a single enqueue.
        return jobs.insert().values(self._computed_values())

    @functools.cached_property
    def _insert_returning_statement(self) -> Any:
        return self._insert_statement.returning(*jobs.c, sort_by_parameter_order=True)

    def _insert_plain(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Job]:
        if len(rows) >= COPY_THRESHOLD and self.dialect.bulk_loads:
            return self._copy_plain(conn, rows)
        statement = self._insert_statement
        by_id: dict[uuid.UUID, Any]
        if conn.dialect.insert_executemany_returning_sort_by_parameter_order:
            by_id = {}
            returning = self._insert_returning_statement
            for part in chunks(rows):
                by_id.update((row.id, row) for row in self.run(conn, returning, list(part)))
        else:
            for part in chunks(rows):
                self.run(conn, statement, list(part))
            by_id = self._select_jobs(conn, [r["id"] for r in rows])
        return [job_from_row(by_id[r["id"]]) for r in rows]

    def _copy_plain(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Job]:
        """Bulk-load keyless jobs with the dialect's fastest path, timed by one clock read."""
        now = self.now(conn)
        columns = [*COPIED_COLUMNS]
        values = [
            (
                row["id"],
                row["task_identifier"],
                row["payload"],
                row["priority"],
                row["queue_name"],
                row["run_at_value"] or now,
                row["max_attempts"],
                row["flags"],
                row["rate_limit_key"],
                now,
                now,
            )
            for row in rows
        ]
        self.dialect.copy_rows(conn, jobs, columns, values, self.schema)
        return [self._job_from_new_row(row, now) for row in rows]

    def _add_keyed(
        self,
        conn: Connection,
        groups: dict[str, list[tuple[int, NewJob]]],
        results: list[Job | None],
    ) -> None:
        """Apply each key's requests in order against the row holding the key.

        Concurrent enqueues of the same key are resolved by inserting with
        "skip on conflict": a key someone else inserted meanwhile is simply
        processed again against that row, so no unique violation escapes.
        """
        pending = sorted(groups)
        for round_number in range(10):
            if not pending:
                return
            pending = self._apply_keys(
                conn, {k: groups[k] for k in pending}, results, retry=round_number > 0
            )
        raise RuntimeError("job key contention did not settle after 10 rounds")

    def _apply_keys(
        self,
        conn: Connection,
        groups: dict[str, list[tuple[int, NewJob]]],
        results: list[Job | None],
        *,
        retry: bool = False,
    ) -> list[str]:
        keys = list(groups)
        existing: dict[str, Any] = {}
        for part in chunks(keys):
            if retry:
                # The insert that conflicted row-locked each key's holder, so a
                # locking read by key finds it without waiting (a plain read may
                # still show an older holder under REPEATABLE READ).
                locked = (
                    select(jobs)
                    .where(jobs.c.job_key.in_(list(part)))
                    .order_by(jobs.c.id)
                    .with_for_update()
                )
                existing.update((row.job_key, row) for row in self.run(conn, locked))
                continue
            # Find the key holders without locking, then lock them by primary key.
            # Locking through the unique job_key index instead makes InnoDB
            # deadlock when concurrent replaces delete and re-insert one key. A
            # holder that changed meanwhile counts as absent: its key's insert
            # then conflicts, and the next round looks again.
            found = select(jobs.c.id).where(jobs.c.job_key.in_(list(part)))
            ids = sorted(self.run(conn, found).scalars())
            if not ids:
                continue
            locked = select(jobs).where(jobs.c.id.in_(ids)).order_by(jobs.c.id).with_for_update()
            existing.update(
                (row.job_key, row)
                for row in self.run(conn, locked)
                if row.job_key is not None and row.job_key in groups
            )

        detach_exhausted: list[uuid.UUID] = []
        detach_running: list[uuid.UUID] = []
        deletes: list[uuid.UUID] = []
        preserved: dict[uuid.UUID, NewJob] = {}
        inserts: dict[str, dict[str, Any]] = {}
        produced: dict[int, uuid.UUID] = {}
        replaced_in_batch: dict[uuid.UUID, dict[str, Any]] = {}
        # Existing rows an earlier request of this batch returned, then replaced.
        vanished: dict[uuid.UUID, Job] = {}

        for key, requests in groups.items():
            row = existing.get(key)
            current: dict[str, Any] | None = None  # a row this batch will insert
            for index, new_job in requests:
                mode = new_job.job_key_mode
                if row is not None and row.locked_at is None and row.attempts >= row.max_attempts:
                    detach_exhausted.append(row.id)  # exhausted counts as absent
                    row = None
                if row is None and current is None:
                    current = self._new_row(new_job)
                elif row is not None and row.locked_at is not None:
                    if mode == "unsafe_dedupe":
                        produced[index] = row.id
                        continue
                    detach_running.append(row.id)  # keeps running, never retried
                    row = None
                    current = self._new_row(new_job)
                elif mode == "unsafe_dedupe":
                    pass
                elif mode == "replace":
                    if row is not None:
                        deletes.append(row.id)
                        vanished[row.id] = self._as_preserved(row, preserved.pop(row.id, None))
                        row = None
                    elif current is not None:
                        replaced_in_batch[current["id"]] = current
                    current = self._new_row(new_job)
                elif row is not None:  # preserve_run_at on an available row
                    preserved[row.id] = new_job
                else:
                    assert current is not None
                    current.update(
                        {
                            k: v
                            for k, v in self._new_row(new_job).items()
                            if k not in ("id", "run_at_value", "job_key_mode")
                        }
                    )
                produced[index] = row.id if row is not None else current["id"]  # type: ignore[index]
            if current is not None and row is None:
                inserts[key] = current

        self._detach_keys(conn, detach_exhausted, running=False)
        self._detach_keys(conn, detach_running, running=True)
        for doomed in chunks(deletes):
            self.run(conn, delete(jobs).where(jobs.c.id.in_(list(doomed))))
        self._preserve_run_at(conn, preserved)

        inserted: set[Any] = set()
        for batch in chunks(list(inserts.values())):
            inserted |= self._insert_skipping_key_conflicts(conn, batch)
        conflicted = {key for key, row in inserts.items() if row["id"] not in inserted}

        settled = {
            index: job_id
            for key, requests in groups.items()
            if key not in conflicted
            for index, _ in requests
            for job_id in (produced[index],)
        }
        # These rows are locked by this transaction already; a locking read sees
        # holders committed after a REPEATABLE READ snapshot was taken.
        rows_by_id = self._select_jobs(conn, sorted(set(settled.values())), locking=True)
        for index, job_id in settled.items():
            if job_id in rows_by_id:
                results[index] = job_from_row(rows_by_id[job_id])
            elif job_id in vanished:
                results[index] = vanished[job_id]
            else:
                results[index] = self._unsaved_job(conn, replaced_in_batch[job_id])
        return sorted(conflicted)

    def _insert_skipping_key_conflicts(
        self, conn: Connection, rows: Sequence[dict[str, Any]]
    ) -> set[uuid.UUID]:
        """Insert keyed rows, skipping keys that exist; return the ids actually inserted."""
        statement = self.dialect.insert_skipping_conflicts(jobs, "job_key", self._computed_values())
        if self.dialect.skip_insert_returns_ids:
            return set(self.run(conn, statement.returning(jobs.c.id), list(rows)).scalars())
        self.run(conn, statement, list(rows))
        return set(self._select_jobs(conn, [row["id"] for row in rows]))

    def _unsaved_job(self, conn: Connection, row: dict[str, Any]) -> Job:
        """A job replaced later in the same batch: built from its row, never stored."""
        return self._job_from_new_row(row, self.now(conn))

    @staticmethod
    def _job_from_new_row(row: dict[str, Any], now: datetime) -> Job:
        """The job a freshly inserted row describes, ``now`` being its insertion time."""
        return Job(
            id=row["id"],
            task_identifier=row["task_identifier"],
            payload=row["payload"],
            priority=row["priority"],
            queue_name=row["queue_name"],
            run_at=row["run_at_value"] or now,
            attempts=0,
            max_attempts=row["max_attempts"],
            last_error=None,
            created_at=now,
            updated_at=now,
            job_key=row["job_key"],
            job_key_mode=row["job_key_mode"],
            flags=tuple(row["flags"]),
            locked_at=None,
            locked_by=None,
            revision=0,
            rate_limit_key=row["rate_limit_key"],
            status="available",
        )

    @staticmethod
    def _as_preserved(row: Any, new_job: NewJob | None) -> Job:
        """An existing row as a ``preserve_run_at`` update of it (if any) leaves it."""
        job = job_from_row(row)
        if new_job is None:
            return job
        return replace(
            job,
            task_identifier=new_job.task_identifier,
            payload=new_job.payload,
            queue_name=new_job.queue_name,
            priority=new_job.priority,
            max_attempts=new_job.max_attempts,
            flags=new_job.flags,
            rate_limit_key=new_job.rate_limit_key,
            revision=job.revision + 1,
        )

    def _detach_keys(self, conn: Connection, ids: Sequence[uuid.UUID], *, running: bool) -> None:
        values: dict[str, Any] = {
            "job_key": None,
            "job_key_mode": None,
            "revision": jobs.c.revision + 1,
            "updated_at": self.dialect.now(),
        }
        if running:
            values["max_attempts"] = jobs.c.attempts  # its next failure exhausts it
        for part in chunks(list(ids)):
            self.run(conn, update(jobs).where(jobs.c.id.in_(list(part))).values(values))

    def _preserve_run_at(self, conn: Connection, updates: Mapping[uuid.UUID, NewJob]) -> None:
        """Update available rows in place but keep their ``run_at``: a few rows per statement."""
        now = self.dialect.now()
        for part in chunks(list(updates), CHUNK // 2):
            fields: dict[str, dict[uuid.UUID, Any]] = {
                name: {job_id: getattr(updates[job_id], name) for job_id in part}
                for name in (
                    "task_identifier",
                    "payload",
                    "queue_name",
                    "priority",
                    "max_attempts",
                    "rate_limit_key",
                )
            }
            fields["flags"] = {job_id: list(updates[job_id].flags) for job_id in part}
            values: dict[str, Any] = {
                name: self._per_row(jobs.c.id, jobs.c[name], per_row)
                for name, per_row in fields.items()
            }
            values["revision"] = jobs.c.revision + 1
            values["updated_at"] = now
            self.run(conn, update(jobs).where(jobs.c.id.in_(list(part))).values(values))

    # -- claim ----------------------------------------------------------------

    def claim_jobs(
        self,
        conn: Connection,
        worker_id: str,
        *,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        batch_size: int,
        retention_ms: int,
    ) -> list[Job]:
        """Lock up to ``batch_size`` jobs for ``worker_id`` and open a history row for each.

        At most one job per named queue is taken, and only from queues nobody
        holds; no rate-limit key gets more jobs than its bucket has tokens.
        Each round row-locks (SKIP LOCKED) only as many candidates as are still
        wanted, so a claim never hides claimable jobs it will not take from
        concurrent claimers: the candidates that fall out (a queue's second job,
        a key short of tokens, a queue someone else holds) are ones nobody could
        claim now anyway. A few more rounds look past those. The statement
        count does not depend on ``batch_size``.
        """
        chosen: list[Any] = []
        seen: list[uuid.UUID] = []
        free_queues: set[str] = set()
        closed_queues: set[str] = set()  # taken by this claim, or held by another
        taken_queues: set[str] = set()
        buckets: dict[str, tuple[int, bool]] = {}
        closed_keys: set[str] = set()  # out of tokens, or locked by another claim
        spent: Counter[str] = Counter()
        for round_number in range(CLAIM_ROUNDS):
            wanted = batch_size - len(chosen)
            further = None
            if round_number > 0:
                closed_keys |= {k for k, (tokens, _) in buckets.items() if spent[k] >= tokens}
                further = self._further_candidates(seen, closed_queues, closed_keys)
            candidates = self._claim_candidates(
                conn, task_identifiers, forbidden_flags, wanted, further
            )
            seen += [c.id for c in candidates]
            new_queues = {c.queue_name for c in candidates if c.queue_name is not None}
            new_queues -= free_queues | closed_queues
            free = self._lock_free_queues(conn, sorted(new_queues))
            free_queues |= free
            closed_queues |= new_queues - free
            new_keys = {c.rate_limit_key for c in candidates if c.rate_limit_key is not None}
            new_keys -= buckets.keys() | closed_keys
            # The first round waits for buckets, in key order so that claims never
            # deadlock; later rounds skip the buckets another claim holds.
            locked = self._lock_buckets(conn, sorted(new_keys), skip_locked=round_number > 0)
            buckets.update(locked)
            if round_number > 0:
                closed_keys |= new_keys - locked.keys()
            for candidate in candidates:
                if len(chosen) == batch_size:
                    break
                queue, key = candidate.queue_name, candidate.rate_limit_key
                if queue is not None and (queue not in free_queues or queue in taken_queues):
                    continue
                # A key whose bucket this claim could not lock (another claim
                # holds it) gives no token; taking the job would overrun it.
                if key is not None and (key not in buckets or spent[key] >= buckets[key][0]):
                    continue
                chosen.append(candidate)
                if queue is not None:
                    taken_queues.add(queue)
                    closed_queues.add(queue)
                if key is not None:
                    spent[key] += 1
            if len(chosen) == batch_size or len(candidates) < wanted:
                break
        self._spend_tokens(conn, buckets, spent)
        if not chosen:
            return []
        chosen.sort(key=lambda c: (c.priority, c.run_at, c.id))
        return self._lock_jobs(conn, worker_id, chosen, taken_queues, retention_ms)

    @staticmethod
    def _further_candidates(
        seen: Sequence[uuid.UUID], closed_queues: set[str], closed_keys: set[str]
    ) -> ColumnElement[bool]:
        """What a later claim round looks for: jobs not seen, in open queues, of open keys."""
        return and_(
            jobs.c.id.not_in(list(seen)),
            or_(jobs.c.queue_name.is_(None), jobs.c.queue_name.not_in(sorted(closed_queues))),
            or_(jobs.c.rate_limit_key.is_(None), jobs.c.rate_limit_key.not_in(sorted(closed_keys))),
        )

    def claimable(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
    ) -> ColumnElement[bool]:
        """The condition a job must meet to be claimed now."""
        now = self.dialect.now()
        locked_queue = exists().where(
            job_queues.c.queue_name == jobs.c.queue_name, job_queues.c.locked_at.is_not(None)
        )
        empty_bucket = exists().where(
            rate_limits.c.key == jobs.c.rate_limit_key,
            rate_limits.c.available_tokens <= 0,
            rate_limits.c.next_refill_at > now,
        )
        conditions: list[ColumnElement[bool]] = [
            jobs.c.locked_at.is_(None),
            jobs.c.attempts < jobs.c.max_attempts,
            jobs.c.run_at <= now,
            or_(jobs.c.queue_name.is_(None), ~locked_queue),
            or_(jobs.c.rate_limit_key.is_(None), ~empty_bucket),
        ]
        if task_identifiers is not None:
            conditions.append(jobs.c.task_identifier.in_(list(task_identifiers)))
        if forbidden_flags:
            conditions.append(~self.dialect.has_any_flag(jobs.c.flags, forbidden_flags))
        return and_(*conditions)

    def claim_candidates_statement(
        self,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int,
        further: ColumnElement[bool] | None = None,
    ) -> Select[Any]:
        """The claim's candidate query: claimable jobs in claim order, row-locked, SKIP LOCKED."""
        condition = self.claimable(task_identifiers, forbidden_flags)
        if further is not None:
            condition = and_(condition, further)
        return (
            select(
                jobs.c.id, jobs.c.queue_name, jobs.c.rate_limit_key, jobs.c.priority, jobs.c.run_at
            )
            .where(condition)
            .order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=jobs)
        )

    def _claim_candidates(
        self,
        conn: Connection,
        task_identifiers: Sequence[str] | None,
        forbidden_flags: Sequence[str] | None,
        limit: int,
        further: ColumnElement[bool] | None = None,
    ) -> list[Any]:
        statement = self.claim_candidates_statement(
            task_identifiers, forbidden_flags, limit, further
        )
        return list(self.run(conn, statement))

    def _lock_free_queues(self, conn: Connection, names: Sequence[str]) -> set[str]:
        """Row-lock the named queues that nobody holds; return their names.

        A queue another claimer is locking right now is skipped, and one it
        locked meanwhile fails the re-checked ``locked_at IS NULL``.
        """
        if not names:
            return set()
        statement = (
            select(job_queues.c.queue_name)
            .where(job_queues.c.queue_name.in_(list(names)), job_queues.c.locked_at.is_(None))
            .order_by(job_queues.c.queue_name)
            .with_for_update(skip_locked=True)
        )
        free = set(self.run(conn, statement).scalars())
        unseen = sorted(set(names) - free)
        if unseen:
            # A queue row may be missing (removed by GC as its first job was
            # enqueued); recreate it so the job is claimable next time.
            present = select(job_queues.c.queue_name).where(job_queues.c.queue_name.in_(unseen))
            missing = set(unseen) - set(self.run(conn, present).scalars())
            if missing:
                self.ensure_queues(conn, missing)
        return free

    def _lock_buckets(
        self, conn: Connection, keys: Sequence[str], *, skip_locked: bool = False
    ) -> dict[str, tuple[int, bool]]:
        """Lock the buckets of ``keys`` (in key order); tokens each can give and if it refills."""
        if not keys:
            return {}
        due = rate_limits.c.next_refill_at <= self.dialect.now()
        statement = (
            select(rate_limits.c.key, rate_limits.c.capacity, rate_limits.c.available_tokens, due)
            .where(rate_limits.c.key.in_(list(keys)))
            .order_by(rate_limits.c.key)
            .with_for_update(skip_locked=skip_locked)
        )
        return {
            key: (capacity if refills else tokens, bool(refills))
            for key, capacity, tokens, refills in self.run(conn, statement)
        }

    def _spend_tokens(
        self, conn: Connection, buckets: Mapping[str, tuple[int, bool]], spent: Counter[str]
    ) -> None:
        """Refill due buckets and take the spent tokens, in one statement."""
        changed = [k for k, (_, refills) in buckets.items() if refills or spent[k]]
        if not changed:
            return
        now = self.dialect.now()
        refilled = [k for k in changed if buckets[k][1]]
        remaining = {k: buckets[k][0] - spent[k] for k in changed}
        values: dict[str, Any] = {
            "available_tokens": case(remaining, value=rate_limits.c.key),
        }
        if refilled:
            is_refilled = rate_limits.c.key.in_(refilled)
            values["last_refill_at"] = case((is_refilled, now), else_=rate_limits.c.last_refill_at)
            values["next_refill_at"] = case(
                (is_refilled, self.dialect.add_ms(now, rate_limits.c.interval_ms)),
                else_=rate_limits.c.next_refill_at,
            )
        self.run(conn, update(rate_limits).where(rate_limits.c.key.in_(changed)).values(values))

    def _lock_jobs(
        self,
        conn: Connection,
        worker_id: str,
        chosen: Sequence[Any],
        queues: set[str],
        retention_ms: int,
    ) -> list[Job]:
        now = self.dialect.now()
        ids = [c.id for c in chosen]
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(
                locked_at=now,
                locked_by=worker_id,
                correlation_id=self._new_correlations(ids),
                attempts=jobs.c.attempts + 1,
                revision=jobs.c.revision + 1,
                updated_at=now,
            )
        )
        rows = self._update_returning_jobs(conn, statement, ids)
        if queues:
            self.run(
                conn,
                update(job_queues)
                .where(job_queues.c.queue_name.in_(sorted(queues)))
                .values(locked_at=now, locked_by=worker_id, updated_at=now),
            )
        claimed = [job_from_row(rows[job_id], with_correlation=True) for job_id in ids]
        self._open_history(conn, worker_id, claimed, retention_ms)
        return claimed

    def _new_correlations(self, ids: Sequence[uuid.UUID]) -> ColumnElement[uuid.UUID]:
        """A fresh claim id per job: made by the database where it can, else sent per row."""
        made = self.dialect.new_uuid()
        if made is not None:
            return made
        return case({job_id: uuid.uuid4() for job_id in ids}, value=jobs.c.id)

    def _open_history(
        self, conn: Connection, worker_id: str, claimed: Sequence[Job], retention_ms: int
    ) -> None:
        """One ``started`` row per claimed job, copied by the database from the row it locked.

        INSERT ... SELECT keeps the payloads and per-row parameters off the
        wire: the history row is made of the job's columns and the claim's
        clock (``locked_at``), so it needs nothing from Python but the ids.
        """
        waited = self.dialect.ms_between(jobs.c.run_at, jobs.c.locked_at)
        columns: dict[str, ColumnElement[Any]] = {
            "id": jobs.c.correlation_id,
            "job_id": jobs.c.id,
            "correlation_id": jobs.c.correlation_id,
            "task_identifier": jobs.c.task_identifier,
            "payload": jobs.c.payload,
            "queue_name": jobs.c.queue_name,
            "priority": jobs.c.priority,
            "flags": jobs.c.flags,
            "rate_limit_key": jobs.c.rate_limit_key,
            "worker_id": jobs.c.locked_by,
            "status": literal("started"),
            "started_at": jobs.c.locked_at,
            "queue_time_ms": case(
                (waited < 0, literal(0)),
                (waited > 2**31 - 1, literal(2**31 - 1)),
                else_=waited,
            ),
            "attempt_number": jobs.c.attempts,
            "created_at": jobs.c.locked_at,
            "expires_at": self.dialect.add_ms(jobs.c.locked_at, retention_ms),
        }
        source = select(*(value.label(name) for name, value in columns.items()))
        for part in chunks([job.id for job in claimed]):
            self.run(
                conn,
                job_history.insert().from_select(
                    list(columns), source.where(jobs.c.id.in_(list(part)))
                ),
            )

    def heartbeat(
        self, conn: Connection, worker_id: str, correlation_ids: Sequence[uuid.UUID]
    ) -> int:
        """Refresh the lock time of running jobs so lock expiry never takes them away."""
        if not correlation_ids:
            return 0
        statement = (
            update(jobs)
            .where(jobs.c.correlation_id.in_(list(correlation_ids)), jobs.c.locked_by == worker_id)
            .values(locked_at=self.dialect.now())
        )
        return int(self.run(conn, statement).rowcount)

    def release_jobs(self, conn: Connection, worker_id: str, claimed: Sequence[Job]) -> list[Job]:
        """Give back claimed jobs that were never run, refunding their attempt.

        Their history rows are removed: the attempt did not happen.
        """
        owned = self._owned(conn, worker_id, claimed)
        if not owned:
            return []
        ids = [row.id for row in owned]
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(
                locked_at=None,
                locked_by=None,
                correlation_id=None,
                attempts=case((jobs.c.attempts > 0, jobs.c.attempts - 1), else_=0),
                revision=jobs.c.revision + 1,
                updated_at=self.dialect.now(),
            )
        )
        rows = self._update_returning_jobs(conn, statement, ids)
        self._unlock_queues(conn, {row.queue_name for row in owned if row.queue_name})
        correlations = [row.correlation_id for row in owned]
        self.run(
            conn,
            delete(job_history).where(
                job_history.c.correlation_id.in_(correlations), job_history.c.status == "started"
            ),
        )
        return [job_from_row(rows[job_id]) for job_id in ids]

    def held_jobs(self, conn: Connection, worker_id: str) -> list[Job]:
        """Every job ``worker_id`` holds, with the correlation id of its claim.

        A worker whose claim committed but whose connection broke before the
        answer arrived holds jobs it does not know about; this finds them.
        """
        statement = select(jobs).where(jobs.c.locked_by == worker_id).order_by(jobs.c.id)
        return [job_from_row(row, with_correlation=True) for row in self.run(conn, statement)]

    # -- cron state -------------------------------------------------------------

    def ensure_crontabs(self, conn: Connection, identifiers: Sequence[str]) -> None:
        """Create a state row for each identifier not seen before (``known_since`` now)."""
        now = self.dialect.now()
        rows = [
            {"identifier": i, "known_since": now, "created_at": now, "updated_at": now}
            for i in sorted(set(identifiers))
        ]
        for part in chunks(rows):
            self.run(conn, self.dialect.upsert(known_crontabs, part, ["identifier"], None))

    def crontab_states(
        self, conn: Connection, identifiers: Sequence[str]
    ) -> dict[str, tuple[datetime, datetime | None]]:
        """``known_since`` and ``last_execution`` of each identifier that has a row."""
        statement = select(
            known_crontabs.c.identifier,
            known_crontabs.c.known_since,
            known_crontabs.c.last_execution,
        ).where(known_crontabs.c.identifier.in_(list(identifiers)))
        return {row[0]: (row[1], row[2]) for row in self.run(conn, statement)}

    def claim_cron_slot(
        self, conn: Connection, identifier: str, previous: datetime | None, slot: datetime
    ) -> bool:
        """Move ``last_execution`` from ``previous`` to ``slot``; False if someone else did.

        The compare-and-set is what lets any number of schedulers run: only
        the one whose UPDATE matches the value it read fires the slot.
        """
        seen = (
            known_crontabs.c.last_execution.is_(None)
            if previous is None
            else known_crontabs.c.last_execution == previous
        )
        statement = (
            update(known_crontabs)
            .where(known_crontabs.c.identifier == identifier, seen)
            .values(last_execution=slot, updated_at=self.dialect.now())
        )
        return int(self.run(conn, statement).rowcount) == 1

    # -- outcomes -------------------------------------------------------------

    def _owned(self, conn: Connection, worker_id: str, claimed: Sequence[Job]) -> list[Any]:
        """Lock and return the rows of claimed jobs the worker still holds under that claim."""
        correlations = [job.correlation_id for job in claimed if job.correlation_id is not None]
        if not correlations:
            return []
        statement = (
            select(
                jobs.c.id,
                jobs.c.correlation_id,
                jobs.c.queue_name,
                jobs.c.attempts,
                jobs.c.max_attempts,
                jobs.c.task_identifier,
            )
            .where(jobs.c.correlation_id.in_(correlations), jobs.c.locked_by == worker_id)
            .order_by(jobs.c.id)
            .with_for_update()
        )
        return list(self.run(conn, statement))

    def finish_jobs(
        self,
        conn: Connection,
        worker_id: str,
        outcomes: Sequence[Outcome],
        retry: RetryPolicy,
    ) -> list[FinishedJob]:
        """Record how attempts ended: job change and history row in one transaction.

        Only jobs the worker still owns under the claim's correlation id are
        touched; the others are left out of the result. Completed jobs are
        deleted; failed and partially successful ones are rescheduled with
        backoff, or exhausted at their last attempt. Constant statement count.
        """
        owned = {
            row.correlation_id: row
            for row in self._owned(conn, worker_id, [o.job for o in outcomes])
        }
        mine: list[Outcome] = []
        owned_once: dict[Any, Any] = {}
        for outcome in outcomes:
            row = owned.get(outcome.job.correlation_id)
            # A claim counts once per call, and only for the job it was made on.
            if row is not None and row.id == outcome.job.id:
                mine.append(outcome)
                del owned[row.correlation_id]
                owned_once[row.correlation_id] = row
        owned = owned_once
        if not mine:
            return []
        now = self.dialect.now()
        done = [o for o in mine if o.kind == "completed"]
        retried = [o for o in mine if o.kind != "completed"]
        if done:
            self.run(conn, delete(jobs).where(jobs.c.id.in_([o.job.id for o in done])))
        new_rows: dict[uuid.UUID, Any] = {}
        exhausted: set[uuid.UUID] = set()
        if retried:
            delays: dict[uuid.UUID, int] = {}
            errors: dict[uuid.UUID, str | None] = {}
            for outcome in retried:
                row = owned[outcome.job.correlation_id]
                delays[row.id] = retry.delay_ms(row.attempts)
                if row.attempts >= row.max_attempts or outcome.exhaust:
                    exhausted.add(row.id)
                if outcome.kind == "failed":
                    errors[row.id] = error_text(outcome.error)[0]
                else:
                    errors[row.id] = PARTIAL_AT_MAX_MESSAGE if row.id in exhausted else None
            ids = list(delays)
            values: dict[str, Any] = {
                "last_error": case(errors, value=jobs.c.id),
                "run_at": self.dialect.add_ms(now, case(delays, value=jobs.c.id)),
                "locked_at": None,
                "locked_by": None,
                "correlation_id": None,
                "revision": jobs.c.revision + 1,
                "updated_at": now,
            }
            forced = [o.job.id for o in retried if o.exhaust]
            if forced:
                # As permanently_fail_jobs does: the attempt count reaches the limit.
                values["attempts"] = case(
                    (jobs.c.id.in_(forced), jobs.c.max_attempts), else_=jobs.c.attempts
                )
            statement = update(jobs).where(jobs.c.id.in_(ids)).values(values)
            new_rows = self._update_returning_jobs(conn, statement, ids)
        self._unlock_queues(
            conn, {owned[o.job.correlation_id].queue_name for o in mine} - {None}, worker_id
        )
        self._close_history(conn, mine)
        self.touch_tasks(conn, (o.job.task_identifier for o in mine))
        finished = []
        for outcome in mine:
            if outcome.kind == "completed":
                finished.append(FinishedJob(outcome, outcome.job, False))
            else:
                row = new_rows[outcome.job.id]
                finished.append(FinishedJob(outcome, job_from_row(row), row.id in exhausted))
        return finished

    def _close_history(self, conn: Connection, outcomes: Sequence[Outcome]) -> None:
        """Close the ``started`` rows of these attempts with their outcomes, in one statement."""
        by_correlation = {o.job.correlation_id: o for o in outcomes}
        columns: dict[str, dict[Any, Any]] = {
            "status": {},
            "execution_time_ms": {},
            "error_message": {},
            "error_stack": {},
            "completed_steps": {},
            "failed_steps": {},
            "retry_from_step": {},
            "partial_results": {},
        }
        for correlation, outcome in by_correlation.items():
            message, stack = error_text(outcome.error) if outcome.kind == "failed" else (None, None)
            partial = outcome.partial
            row = {
                "status": outcome.kind,
                "execution_time_ms": outcome.execution_time_ms,
                "error_message": message,
                "error_stack": stack,
                "completed_steps": list(partial.completed_steps) if partial else None,
                "failed_steps": list(partial.failed_steps) if partial else None,
                "retry_from_step": partial.retry_from_step if partial else None,
                "partial_results": partial.results if partial else None,
            }
            for name, value in row.items():
                columns[name][correlation] = value
        values: dict[str, Any] = {"completed_at": self.dialect.now()}
        for name, per_row in columns.items():
            values[name] = self._per_row(job_history.c.correlation_id, job_history.c[name], per_row)
        self.close_history_rows(conn, list(by_correlation), values)

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
        self, conn: Connection, names: Iterable[str | None], holder: str | None = None
    ) -> None:
        """Free named queues (only those held by ``holder`` when given)."""
        wanted = sorted({n for n in names if n is not None})
        if not wanted:
            return
        condition: ColumnElement[bool] = job_queues.c.queue_name.in_(wanted)
        if holder is not None:
            condition = and_(condition, job_queues.c.locked_by == holder)
        self.run(
            conn,
            update(job_queues)
            .where(condition)
            .values(locked_at=None, locked_by=None, updated_at=self.dialect.now()),
        )

    # -- taking locks away ----------------------------------------------------

    def _take_locks(
        self, conn: Connection, rows: Sequence[Any], reason: str
    ) -> dict[uuid.UUID, Any]:
        """Unlock jobs someone else holds: free their queues, close their attempts as failed.

        A job at its last attempt becomes exhausted (status is derived).
        ``rows`` are locked job rows with ``id``, ``correlation_id`` and ``queue_name``.
        """
        if not rows:
            return {}
        now = self.dialect.now()
        ids = [row.id for row in rows]
        result: dict[uuid.UUID, Any] = {}
        for part in chunks(ids):
            statement = (
                update(jobs)
                .where(jobs.c.id.in_(list(part)))
                .values(
                    locked_at=None,
                    locked_by=None,
                    correlation_id=None,
                    revision=jobs.c.revision + 1,
                    updated_at=now,
                )
            )
            result.update(self._update_returning_jobs(conn, statement, part))
        self._unlock_queues(conn, (row.queue_name for row in rows))
        self.close_history_rows(
            conn,
            [row.correlation_id for row in rows if row.correlation_id is not None],
            {"status": "failed", "completed_at": now, "error_message": reason},
        )
        return result

    def _locked_rows(
        self,
        conn: Connection,
        condition: ColumnElement[bool],
        *,
        limit: int | None = None,
        skip_locked: bool = False,
    ) -> list[Any]:
        statement = (
            select(jobs.c.id, jobs.c.correlation_id, jobs.c.queue_name)
            .where(jobs.c.locked_at.is_not(None), condition)
            .with_for_update(skip_locked=skip_locked)
        )
        if limit is None:
            statement = statement.order_by(jobs.c.id)
        else:
            # A bounded batch walks the locked_at index, oldest lock first. In id
            # order (or with id as a tie-break, which the index cannot give) every
            # batch would first read or sort all the locked jobs.
            statement = statement.order_by(jobs.c.locked_at).limit(limit)
        return list(self.run(conn, statement))

    def force_unlock_jobs(self, conn: Connection, worker_ids: Sequence[str] | None) -> list[Job]:
        """Unlock the jobs of these workers (None: every locked job)."""
        condition: ColumnElement[bool] = (
            jobs.c.locked_by.in_(list(worker_ids))
            if worker_ids is not None
            else jobs.c.id.is_not(None)
        )
        rows = self._locked_rows(conn, condition)
        unlocked = self._take_locks(conn, rows, FORCE_UNLOCK_MESSAGE)
        return [job_from_row(unlocked[row.id]) for row in rows]

    def force_unlock_queues(self, conn: Connection, names: Sequence[str] | None) -> list[JobQueue]:
        """Free these named queues (None: all locked ones) and unlock their running jobs."""
        condition: ColumnElement[bool] = job_queues.c.locked_at.is_not(None)
        if names is not None:
            condition = and_(condition, job_queues.c.queue_name.in_(list(names)))
        locked = list(
            self.run(
                conn,
                select(job_queues.c.queue_name)
                .where(condition)
                .order_by(job_queues.c.queue_name)
                .with_for_update(),
            ).scalars()
        )
        if not locked:
            return []
        running = self._locked_rows(conn, jobs.c.queue_name.in_(locked))
        self._take_locks(conn, running, FORCE_UNLOCK_MESSAGE)
        self._unlock_queues(conn, locked)
        return self.list_queues(conn, locked)

    def permanently_fail_jobs(
        self, conn: Connection, job_ids: Sequence[uuid.UUID], reason: str
    ) -> list[Job]:
        """Exhaust the listed jobs with ``reason``; a running one loses its lock and attempt."""
        if not job_ids:
            return []
        running = self._locked_rows(conn, jobs.c.id.in_(list(job_ids)))
        self._take_locks(conn, running, reason)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(list(job_ids)))
            .values(
                attempts=jobs.c.max_attempts,
                last_error=reason,
                revision=jobs.c.revision + 1,
                updated_at=self.dialect.now(),
            )
        )
        rows = self._update_returning_jobs(conn, statement, list(job_ids))
        return [job_from_row(rows[i]) for i in job_ids if i in rows]

    def reschedule_jobs(
        self,
        conn: Connection,
        job_ids: Sequence[uuid.UUID],
        *,
        run_at: datetime | None,
        priority: int | None,
        max_attempts: int | None,
    ) -> list[Job] | int:
        """Change run_at, priority or max_attempts of listed jobs.

        Returns the highest ``attempts`` above the new ``max_attempts`` instead
        of changing anything when the change would break ``attempts <= max_attempts``.
        """
        rows = list(
            self.run(
                conn,
                select(jobs.c.id, jobs.c.attempts)
                .where(jobs.c.id.in_(list(job_ids)))
                .order_by(jobs.c.id)
                .with_for_update(),
            )
        )
        if not rows:
            return []
        if max_attempts is not None:
            worst = max(row.attempts for row in rows)
            if worst > max_attempts:
                return int(worst)
        values: dict[str, Any] = {"revision": jobs.c.revision + 1, "updated_at": self.dialect.now()}
        if run_at is not None:
            values["run_at"] = run_at
        if priority is not None:
            values["priority"] = priority
        if max_attempts is not None:
            values["max_attempts"] = max_attempts
        ids = [row.id for row in rows]
        updated = self._update_returning_jobs(
            conn, update(jobs).where(jobs.c.id.in_(ids)).values(values), ids
        )
        return [job_from_row(updated[i]) for i in job_ids if i in updated]

    def replayable_failures(
        self,
        conn: Connection,
        *,
        from_time: datetime | None,
        to_time: datetime | None,
        task_identifier: str | None,
    ) -> list[HistoryRecord]:
        """Latest history rows of jobs whose final outcome was failure, in the window.

        The job must be exhausted or gone, and its newest history row ``failed``;
        the window applies to that row's ``started_at``.
        """
        newer = job_history.alias("newer")
        conditions: list[ColumnElement[bool]] = [
            job_history.c.status == "failed",
            ~exists().where(
                newer.c.job_id == job_history.c.job_id,
                or_(
                    newer.c.started_at > job_history.c.started_at,
                    and_(
                        newer.c.started_at == job_history.c.started_at,
                        newer.c.id > job_history.c.id,
                    ),
                ),
            ),
            ~exists().where(
                jobs.c.id == job_history.c.job_id, jobs.c.attempts < jobs.c.max_attempts
            ),
        ]
        if from_time is not None:
            conditions.append(job_history.c.started_at >= from_time)
        if to_time is not None:
            conditions.append(job_history.c.started_at <= to_time)
        if task_identifier is not None:
            conditions.append(job_history.c.task_identifier == task_identifier)
        statement = (
            select(job_history)
            .where(*conditions)
            .order_by(job_history.c.started_at, job_history.c.id)
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def replay_sources(
        self, conn: Connection, records: Sequence[HistoryRecord]
    ) -> dict[uuid.UUID, Any]:
        """Queue name, priority, flags and rate-limit key each replayed job originally had."""
        statement = select(
            job_history.c.correlation_id,
            job_history.c.queue_name,
            job_history.c.priority,
            job_history.c.flags,
            job_history.c.rate_limit_key,
        ).where(job_history.c.correlation_id.in_([r.correlation_id for r in records]))
        return {row.correlation_id: row for row in self.run(conn, statement)}

    # -- maintenance ------------------------------------------------------------

    def reset_locked_jobs(self, conn: Connection, lock_timeout_ms: int, limit: int) -> int:
        """Unlock up to ``limit`` jobs whose lock is older than the timeout; returns how many.

        Also frees queues locked longer than the timeout with no locked job in them.
        """
        threshold = self.dialect.add_ms(self.dialect.now(), -lock_timeout_ms)
        rows = self._locked_rows(conn, jobs.c.locked_at <= threshold, limit=limit, skip_locked=True)
        self._take_locks(conn, rows, EXPIRED_LOCK_MESSAGE)
        holder = exists().where(
            jobs.c.queue_name == job_queues.c.queue_name, jobs.c.locked_at.is_not(None)
        )
        self.run(
            conn,
            update(job_queues)
            .where(job_queues.c.locked_at <= threshold, ~holder)
            .values(locked_at=None, locked_by=None, updated_at=self.dialect.now()),
        )
        return len(rows)

    def gc_job_history(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` expired history rows; returns how many."""
        expired = (
            select(job_history.c.id)
            .where(job_history.c.expires_at < self.dialect.now())
            .order_by(job_history.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(self.run(conn, expired).scalars())
        for part in chunks(ids):
            self.run(conn, delete(job_history).where(job_history.c.id.in_(list(part))))
        return len(ids)

    def gc_job_queues(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` unlocked queues that hold no job; returns how many."""
        has_jobs = exists().where(jobs.c.queue_name == job_queues.c.queue_name)
        empty = (
            select(job_queues.c.queue_name)
            .where(job_queues.c.locked_at.is_(None), ~has_jobs)
            .order_by(job_queues.c.queue_name)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        names = list(self.run(conn, empty).scalars())
        if names:
            self.run(
                conn,
                delete(job_queues).where(
                    job_queues.c.queue_name.in_(names), job_queues.c.locked_at.is_(None), ~has_jobs
                ),
            )
        return len(names)

    def gc_task_identifiers(self, conn: Connection, keep_ms: int, limit: int) -> int:
        """Delete up to ``limit`` identifiers unused for ``keep_ms``, with no schema and no job."""
        has_jobs = exists().where(jobs.c.task_identifier == task_identifiers.c.identifier)
        stale = (
            select(task_identifiers.c.identifier)
            .where(
                task_identifiers.c.last_used < self.dialect.add_ms(self.dialect.now(), -keep_ms),
                task_identifiers.c.payload_schema.is_(None),
                ~has_jobs,
            )
            .order_by(task_identifiers.c.identifier)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        names = list(self.run(conn, stale).scalars())
        if names:
            self.run(
                conn,
                delete(task_identifiers).where(task_identifiers.c.identifier.in_(names), ~has_jobs),
            )
            self.forget_touches()
        return len(names)

    # -- reading ------------------------------------------------------------------

    def get_job(self, conn: Connection, job_id: uuid.UUID) -> Job | None:
        """One job, or None."""
        row = self.run(conn, select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else job_from_row(row)

    def list_jobs(
        self,
        conn: Connection,
        *,
        status: str | None,
        task_identifier: str | None,
        queue_name: str | None,
        limit: int,
    ) -> list[Job]:
        """Jobs in claim order, filtered by derived status, task and queue."""
        conditions: list[ColumnElement[bool]] = []
        if status == "locked":
            conditions.append(jobs.c.locked_at.is_not(None))
        elif status == "exhausted":
            conditions += [jobs.c.locked_at.is_(None), jobs.c.attempts >= jobs.c.max_attempts]
        elif status == "available":
            conditions += [jobs.c.locked_at.is_(None), jobs.c.attempts < jobs.c.max_attempts]
        if task_identifier is not None:
            conditions.append(jobs.c.task_identifier == task_identifier)
        if queue_name is not None:
            conditions.append(jobs.c.queue_name == queue_name)
        statement = (
            select(jobs)
            .where(*conditions)
            .order_by(jobs.c.priority, jobs.c.run_at, jobs.c.id)
            .limit(limit)
        )
        return [job_from_row(row) for row in self.run(conn, statement)]

    def job_history(self, conn: Connection, job_id: uuid.UUID) -> list[HistoryRecord]:
        """Every attempt of one job, newest first."""
        statement = (
            select(job_history)
            .where(job_history.c.job_id == job_id)
            .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def query_history(
        self,
        conn: Connection,
        *,
        from_time: datetime | None,
        to_time: datetime | None,
        task_identifier: str | None,
        status: str | None,
        limit: int,
    ) -> list[HistoryRecord]:
        """History rows by start time window, task and status, newest first."""
        conditions: list[ColumnElement[bool]] = []
        if from_time is not None:
            conditions.append(job_history.c.started_at >= from_time)
        if to_time is not None:
            conditions.append(job_history.c.started_at <= to_time)
        if task_identifier is not None:
            conditions.append(job_history.c.task_identifier == task_identifier)
        if status is not None:
            conditions.append(job_history.c.status == status)
        statement = (
            select(job_history)
            .where(*conditions)
            .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
            .limit(limit)
        )
        return [history_from_row(row) for row in self.run(conn, statement)]

    def list_queues(self, conn: Connection, names: Sequence[str] | None = None) -> list[JobQueue]:
        """Named queues with their job counts (counted now)."""
        counted = (
            select(func.count())
            .where(jobs.c.queue_name == job_queues.c.queue_name)
            .scalar_subquery()
        )
        statement = select(
            job_queues.c.queue_name,
            job_queues.c.locked_at,
            job_queues.c.locked_by,
            counted.label("job_count"),
        ).order_by(job_queues.c.queue_name)
        if names is not None:
            statement = statement.where(job_queues.c.queue_name.in_(list(names)))
        return [job_queue_from_row(row) for row in self.run(conn, statement)]

    def stats(self, conn: Connection) -> QueueStats:
        """Counts by status, per task and per named queue, and the oldest waiting job's age.

        Reads indexes, not the jobs table: all jobs per (task, queue) from
        ``ix_queuekit_jobs_task_queue``, locked ones from the ``locked_at``
        index, exhausted ones from their own index; available is the rest.
        The three counts are one statement, so they share one snapshot.
        """
        group = (jobs.c.task_identifier, jobs.c.queue_name)

        def counted(kind: str, *where: ColumnElement[bool]) -> Any:
            return (
                select(literal(kind).label("kind"), *group, func.count().label("n"))
                .where(*where)
                .group_by(*group)
            )

        statement = union_all(
            counted("all"),
            counted("locked", jobs.c.locked_at.is_not(None)),
            counted(
                "exhausted", jobs.c.locked_at.is_(None), jobs.c.attempts >= jobs.c.max_attempts
            ),
        )
        counts: dict[tuple[str, str | None], dict[str, int]] = {}
        for kind, task, queue, n in self.run(conn, statement):
            counts.setdefault((task, queue), {"all": 0, "locked": 0, "exhausted": 0})[kind] = n

        def empty() -> dict[str, int]:
            return {name: 0 for name in JOB_STATUSES}

        by_status = empty()
        by_task: dict[str, dict[str, int]] = {}
        by_queue: dict[str, dict[str, Any]] = {}
        for (task, queue), kinds in counts.items():
            group_counts = {
                "available": kinds["all"] - kinds["locked"] - kinds["exhausted"],
                "locked": kinds["locked"],
                "exhausted": kinds["exhausted"],
            }
            targets = [by_status, by_task.setdefault(task, empty())]
            if queue is not None:
                targets.append(by_queue.setdefault(queue, {**empty(), "is_locked": False}))
            for target in targets:
                for name, n in group_counts.items():
                    target[name] += n
        queue_locks = select(job_queues.c.queue_name, job_queues.c.locked_at)
        for name, locked_at in self.run(conn, queue_locks):
            entry = by_queue.setdefault(name, {**empty(), "is_locked": False})
            entry["is_locked"] = locked_at is not None
        oldest = self.run(
            conn,
            select(self.dialect.ms_between(func.min(jobs.c.run_at), self.dialect.now())).where(
                jobs.c.locked_at.is_(None),
                jobs.c.attempts < jobs.c.max_attempts,
                jobs.c.run_at <= self.dialect.now(),
            ),
        ).scalar()
        age = None if oldest is None else timedelta(milliseconds=max(int(oldest), 0))
        return QueueStats(by_status, by_task, by_queue, age)
