"""Every read the dashboard makes, each one bounded so a page stays fast at millions of rows.

Bounds: counts stop at :data:`COUNT_CAP` (shown as ``10,000+``), lists are
keyset pages of :data:`PAGE_SIZE` (:mod:`queuekit.web.paging`, never OFFSET)
read in the order of an index, history is read inside a time window, charts
read a bounded number of attempts (:mod:`queuekit.web.history_chart`), and
every statement runs under a statement timeout. Results go through a
:class:`ResultCache` so that all open tabs share one query per refresh
interval.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    func,
    literal,
    select,
    union_all,
)

from queuekit.dialects.base import DialectSupport
from queuekit.errors import translate_db_errors
from queuekit.manager import JobManager
from queuekit.models import (
    job_history,
    job_queues,
    job_status_is,
    jobs,
    known_crontabs,
    rate_limits,
)
from queuekit.rows import history_from_row, job_from_row, rate_limit_from_row
from queuekit.types import HistoryRecord, Job, RateLimit
from queuekit.web.cache import ResultCache
from queuekit.web.history_chart import Chart, read_chart
from queuekit.web.paging import Page, keyset, keyset_by_time, page_of

T = TypeVar("T")

#: Counts stop here; a larger set shows as "10,000+".
COUNT_CAP = 10_000
#: The Tasks page's per-task waiting and exhausted counts stop here (up to 200 tasks).
TASK_COUNT_CAP = 1_000
#: Rows per list page.
PAGE_SIZE = 50
#: Longest a dashboard statement may run (milliseconds) before the server cancels it.
STATEMENT_TIMEOUT_MS = 3_000
#: Most rows of a small table (queues, rate limits, cron entries, tasks) listed.
SMALL_LIST = 200
#: Most attempts shown for one job.
ATTEMPTS_SHOWN = 100
#: History windows an operator can pick, with the chart bucket width of each.
WINDOWS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "24h": (timedelta(days=1), timedelta(minutes=30)),
    "7d": (timedelta(days=7), timedelta(hours=4)),
}
DEFAULT_WINDOW = "1h"
#: The job states the dashboard shows: due now, due later, running, out of attempts.
JOB_STATES = ("waiting", "scheduled", "running", "exhausted")


def prepare_read(dialect: DialectSupport, conn: Connection) -> None:
    """Set up a dashboard read transaction: begun, time-limited, reading through indexes."""
    dialect.begin_transaction(conn)
    dialect.limit_statement_time(conn, STATEMENT_TIMEOUT_MS)
    dialect.prefer_index_reads(conn)


@dataclass(frozen=True)
class Count:
    """A count that stopped at the cap, shown as ``10,000+`` when it did."""

    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


def state_condition(state: str, now: ColumnElement[datetime]) -> list[ColumnElement[bool]]:
    """The WHERE conditions of one dashboard job state."""
    if state == "waiting":
        return [job_status_is("available"), jobs.c.run_at <= now]
    if state == "scheduled":
        return [job_status_is("available"), jobs.c.run_at > now]
    if state == "running":
        return [job_status_is("locked")]
    if state == "exhausted":
        return [job_status_is("exhausted")]
    raise ValueError(f"unknown job state {state!r}; choose one of {', '.join(JOB_STATES)}")


def capped(
    condition: Sequence[ColumnElement[bool]], label: str, cap: int | None = None
) -> Select[Any]:
    """``label`` and the number of matching jobs, counting at most one past the cap
    (:data:`COUNT_CAP` unless given)."""
    cap = COUNT_CAP if cap is None else cap
    inner = (
        select(literal(1).label("one")).select_from(jobs).where(*condition).limit(cap + 1)
    ).subquery()
    return select(
        literal(label).label("label"), select(func.count()).select_from(inner).scalar_subquery()
    )


class Queries:
    """The dashboard's reads over one manager's database, cached and time-limited."""

    def __init__(self, manager: JobManager, cache: ResultCache) -> None:
        self.manager = manager
        self.cache = cache

    def read(self, key: Any, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a read transaction under the statement timeout, through the cache."""

        def run() -> T:
            dialect = self.manager.dialect
            with translate_db_errors(), self.manager.engine.connect() as conn:
                try:
                    with conn.begin():
                        prepare_read(dialect, conn)
                        return work(conn)
                finally:
                    if conn.invalidated is False:
                        dialect.clear_statement_time(conn)

        return self.cache.get(key, run)

    def run(self, conn: Connection, statement: Any) -> Any:
        """Execute with the manager's schema translation."""
        return self.manager.execute(conn, statement)

    def now(self) -> datetime:
        """The database clock (cached like everything else)."""

        def work(conn: Connection) -> datetime:
            moment: datetime = self.run(conn, select(self.manager.dialect.now())).scalar_one()
            return moment

        return self.read(("now",), work)

    def counts(
        self,
        key: Any,
        labelled: Mapping[str, Sequence[ColumnElement[bool]]],
        cap: int | None = None,
    ) -> dict[str, Count]:
        """Capped counts of several job sets in one statement, cached under ``key``."""
        if not labelled:
            return {}
        cap = COUNT_CAP if cap is None else cap

        def work(conn: Connection) -> dict[str, Count]:
            statement = union_all(*(capped(where, label, cap) for label, where in labelled.items()))
            found = {label: int(n) for label, n in self.run(conn, statement)}
            return {
                label: Count(min(found.get(label, 0), cap), found.get(label, 0) > cap)
                for label in labelled
            }

        return self.read(("counts", key), work)

    def state_counts(self, task: str | None = None) -> dict[str, Count]:
        """Capped job counts per dashboard state, optionally of one task."""
        now = self.manager.dialect.now()
        extra = [] if task is None else [jobs.c.task_identifier == task]
        return self.counts(
            ("states", task),
            {state: [*state_condition(state, now), *extra] for state in JOB_STATES},
        )

    def oldest_waiting(self) -> timedelta | None:
        """How long the oldest job due now has waited since its run_at (one index probe)."""
        dialect = self.manager.dialect

        def work(conn: Connection) -> timedelta | None:
            statement = select(dialect.ms_between(func.min(jobs.c.run_at), dialect.now())).where(
                *state_condition("waiting", dialect.now())
            )
            ms = self.run(conn, statement).scalar()
            return None if ms is None else timedelta(milliseconds=max(int(ms), 0))

        return self.read(("oldest",), work)

    def jobs_page(
        self,
        *,
        state: str | None,
        task: str | None,
        queue: str | None,
        flag: str | None,
        before: uuid.UUID | None,
        after: uuid.UUID | None,
        limit: int = PAGE_SIZE,
    ) -> Page[Job]:
        """A page of jobs, newest first, by keyset on the id.

        A filter matching more than :data:`COUNT_CAP` jobs reads jobs in id
        order (the primary key, or ``(task_identifier, id)``) until the page is
        full, which takes few rows when matches are common. A filter matching
        fewer reads all its matches through the index that finds them (a
        state's partial index, a queue's, a task's) and sorts at most
        :data:`COUNT_CAP` of them, instead of walking ids past rare matches.
        """
        where = self.job_filter(state=state, task=task, queue=queue, flag=flag)

        def work(conn: Connection) -> Page[Job]:
            statement = keyset(select(jobs), jobs.c.id, where, before, after, limit)
            if where and int(self.run(conn, capped(where, "matching")).one()[1]) <= COUNT_CAP:
                cursor = [jobs.c.id > after] if after else [jobs.c.id < before] if before else []
                matching = (
                    select(jobs.c.id.label("id"))
                    .where(*where, *cursor)
                    .limit(COUNT_CAP + 1)
                    .subquery()
                )
                # An alias outside, so that the filter's correlated subqueries
                # (SQLite's json_each of the flags) name the inner table alone.
                shown = jobs.alias("shown")
                found = select(shown).join(matching, matching.c.id == shown.c.id)
                statement = keyset(found, shown.c.id, [], before, after, limit)
            rows = self.run(conn, statement)
            return page_of([job_from_row(row) for row in rows], before, after, limit)

        return self.read(("jobs", state, task, queue, flag, before, after, limit), work)

    def job_filter(
        self, *, state: str | None, task: str | None, queue: str | None, flag: str | None
    ) -> list[ColumnElement[bool]]:
        """The WHERE conditions of a jobs filter (every value a bound parameter)."""
        where: list[ColumnElement[bool]] = []
        if state:
            where += state_condition(state, self.manager.dialect.now())
        if task:
            where.append(jobs.c.task_identifier == task)
        if queue:
            where.append(jobs.c.queue_name == queue)
        if flag:
            where.append(self.manager.dialect.has_any_flag(jobs.c.flags, [flag]))
        return where

    def matching_ids(self, where: Sequence[ColumnElement[bool]], cap: int) -> list[uuid.UUID]:
        """Ids of at most ``cap`` jobs matching a filter, newest first (bulk actions; uncached)."""
        statement = select(jobs.c.id).where(*where).order_by(jobs.c.id.desc()).limit(cap)
        with translate_db_errors(), self.manager.engine.connect() as conn:
            return [row[0] for row in self.run(conn, statement)]

    def most_attempts(self, job_ids: Sequence[uuid.UUID]) -> int:
        """The most attempts any of these jobs made (0 for none)."""
        if not job_ids:
            return 0
        statement = select(func.max(jobs.c.attempts)).where(jobs.c.id.in_(list(job_ids)))
        with translate_db_errors(), self.manager.engine.connect() as conn:
            return int(self.run(conn, statement).scalar() or 0)

    def job(self, job_id: uuid.UUID) -> Job | None:
        """One job (uncached: the detail page must show what is there now)."""
        with translate_db_errors(), self.manager.engine.connect() as conn:
            row = self.run(conn, select(jobs).where(jobs.c.id == job_id)).first()
        return None if row is None else job_from_row(row)

    def attempts(self, job_id: uuid.UUID) -> list[HistoryRecord]:
        """The newest attempts of one job, newest first."""
        statement = (
            select(job_history)
            .where(job_history.c.job_id == job_id)
            .order_by(job_history.c.started_at.desc(), job_history.c.id.desc())
            .limit(ATTEMPTS_SHOWN)
        )
        with translate_db_errors(), self.manager.engine.connect() as conn:
            return [history_from_row(row) for row in self.run(conn, statement)]

    def history_page(
        self,
        *,
        window: str,
        status: str | None,
        task: str | None,
        before: uuid.UUID | None,
        after: uuid.UUID | None,
    ) -> Page[HistoryRecord]:
        """A page of attempts started inside the window, newest first.

        History ids are random (an attempt's id is its claim id), so the
        keyset is ``(started_at, id)``, which the ``started_at`` indexes serve
        in order; the cursor stays the row's id.
        """
        span = WINDOWS[window][0]
        dialect = self.manager.dialect
        where: list[ColumnElement[bool]] = [
            job_history.c.started_at
            >= dialect.add_ms(dialect.now(), -int(span.total_seconds() * 1000))
        ]
        if status:
            where.append(job_history.c.status == status)
        if task:
            where.append(job_history.c.task_identifier == task)

        def work(conn: Connection) -> Page[HistoryRecord]:
            statement = keyset_by_time(select(job_history), where, before, after, PAGE_SIZE)
            rows = [history_from_row(row) for row in self.run(conn, statement)]
            return page_of(rows, before, after, PAGE_SIZE)

        return self.read(("history", window, status, task, before, after), work)

    def chart(self, window: str) -> Chart:
        """Attempts per bucket over the window, from history (one grouped statement)."""
        span, width = WINDOWS[window]
        dialect = self.manager.dialect
        return self.read(
            ("chart", window),
            lambda conn: read_chart(
                lambda statement: self.run(conn, statement), dialect, span, width
            ),
        )

    def queues(self) -> list[dict[str, Any]]:
        """Named queues with their lock, lock age and capped job count."""
        dialect = self.manager.dialect

        def work(conn: Connection) -> list[dict[str, Any]]:
            statement = (
                select(
                    job_queues.c.queue_name,
                    job_queues.c.locked_at,
                    job_queues.c.locked_by,
                    dialect.ms_between(job_queues.c.locked_at, dialect.now()).label("lock_ms"),
                )
                .order_by(job_queues.c.queue_name)
                .limit(SMALL_LIST)
            )
            return [dict(row._mapping) for row in self.run(conn, statement)]

        found = self.read(("queues",), work)
        names = [row["queue_name"] for row in found]
        counts = self.counts(("queues", *names), {n: [jobs.c.queue_name == n] for n in names})
        return [{**row, "jobs": counts[row["queue_name"]]} for row in found]

    def rate_limits(self) -> list[RateLimit]:
        """Rate-limit buckets by key."""
        statement = select(rate_limits).order_by(rate_limits.c.key).limit(SMALL_LIST)
        return self.read(
            ("rate_limits",),
            lambda conn: [rate_limit_from_row(r) for r in self.run(conn, statement)],
        )

    def crontabs(self) -> list[dict[str, Any]]:
        """Known cron entries with their last fired slot."""
        statement = select(known_crontabs).order_by(known_crontabs.c.identifier).limit(SMALL_LIST)
        return self.read(
            ("cron",), lambda conn: [dict(r._mapping) for r in self.run(conn, statement)]
        )

    def tasks(self) -> list[dict[str, Any]]:
        """Task identifiers with their pause state and capped counts per job state.

        Waiting and exhausted jobs are counted per task from the indexes
        leading with the task; running ones in one pass over the locked jobs
        (few: as many as the workers run), grouped by task.
        """
        from queuekit.models import task_identifiers

        columns = [
            task_identifiers.c.identifier,
            task_identifiers.c.last_used,
            task_identifiers.c.paused_at,
        ]
        statement = select(*columns).order_by(task_identifiers.c.identifier).limit(SMALL_LIST)
        found = self.read(
            ("tasks",), lambda conn: [dict(r._mapping) for r in self.run(conn, statement)]
        )
        now = self.manager.dialect.now()
        wanted = {
            f"{state}:{index}": [
                *state_condition(state, now),
                jobs.c.task_identifier == row["identifier"],
            ]
            for index, row in enumerate(found)
            for state in ("waiting", "exhausted")
        }
        counts = self.counts(
            ("tasks", *(row["identifier"] for row in found)), wanted, TASK_COUNT_CAP
        )
        running = self.running_by_task()
        return [
            {
                **row,
                "waiting": counts[f"waiting:{index}"],
                "running": running.get(row["identifier"], Count(0, running_capped(running))),
                "exhausted": counts[f"exhausted:{index}"],
            }
            for index, row in enumerate(found)
        ]

    def running_by_task(self) -> dict[str, Count]:
        """Running jobs per task, from at most :data:`COUNT_CAP` of them (then each
        count is a lower bound, shown with a ``+``)."""

        def work(conn: Connection) -> dict[str, Count]:
            locked = (
                select(jobs.c.task_identifier)
                .where(job_status_is("locked"))
                .limit(COUNT_CAP + 1)
                .subquery()
            )
            statement = select(locked.c.task_identifier, func.count()).group_by(
                locked.c.task_identifier
            )
            found = {task: int(n) for task, n in self.run(conn, statement)}
            capped = sum(found.values()) > COUNT_CAP
            return {task: Count(n, capped) for task, n in found.items()}

        return self.read(("running by task",), work)


def running_capped(running: Mapping[str, Count]) -> bool:
    """Whether the running counts stopped at the cap (so a task without any is "0+")."""
    return any(count.capped for count in running.values())
