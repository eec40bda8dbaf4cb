"""The overview's charts read from history: attempts per time bucket, bounded.

One grouped statement per chart reads at most the newest :data:`CHART_ROWS`
attempts of the window, from an index that holds every column it needs
(``ix_queuekit_job_history_started_at``); a busier window is drawn from the
attempts started since the oldest one read, and :class:`Chart` says since when.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select

from queuekit.dialects.base import DialectSupport
from queuekit.models import job_history

#: Most attempts one chart reads; a busier window is drawn from its newest attempts.
CHART_ROWS = 100_000


@dataclass(frozen=True)
class Chart:
    """The buckets of a window and how many attempts they count; ``since`` is
    set when the window held more than :data:`CHART_ROWS` attempts and only
    those started since then were read."""

    buckets: list[Bucket]
    read: int
    since: datetime | None


@dataclass(frozen=True)
class Bucket:
    """One chart bucket of history: attempts by outcome and mean queue and run time."""

    start: datetime
    completed: int
    failed: int
    mean_queue_ms: float | None
    mean_run_ms: float | None


def read_chart(
    run: Callable[[Any], Any], dialect: DialectSupport, span: timedelta, width: timedelta
) -> Chart:
    """Buckets of ``width`` over the last ``span``, each statement executed by ``run``."""
    width_ms = int(width.total_seconds() * 1000)
    count = int(span / width)
    now = run(select(dialect.now())).scalar_one()
    # Buckets end at the next bucket boundary after now, so they do not shift
    # on every refresh.
    epoch = datetime(2000, 1, 1, tzinfo=now.tzinfo)
    end = epoch + (now - epoch) // width * width + width
    start = end - count * width
    inner = (
        select(
            job_history.c.started_at,
            job_history.c.status,
            job_history.c.queue_time_ms,
            job_history.c.execution_time_ms,
        )
        .where(job_history.c.started_at >= start, job_history.c.status != "started")
        .order_by(job_history.c.started_at.desc())
        .limit(CHART_ROWS)
        .subquery()
    )
    origin = literal(start, job_history.c.started_at.type)
    bucket = dialect.ms_between(origin, inner.c.started_at) // width_ms
    rows = select(bucket.label("bucket"), *inner.c).subquery()
    statement = select(
        rows.c.bucket,
        rows.c.status,
        func.count(),
        func.sum(rows.c.queue_time_ms),
        func.sum(rows.c.execution_time_ms),
        func.min(rows.c.started_at),
    ).group_by(rows.c.bucket, rows.c.status)
    sums: dict[int, list[float]] = {}
    read, earliest = 0, None
    for index, status, n, queue_ms, run_ms, first in run(statement):
        read += n
        earliest = first if earliest is None else min(earliest, first)
        slot = sums.setdefault(int(index), [0, 0, 0, 0, 0])
        slot[0 if status == "completed" else 1] += n
        slot[2] += float(queue_ms or 0)
        slot[3] += float(run_ms or 0)
        slot[4] += n
    buckets = []
    for index in range(count):
        c, f, q, r, n = sums.get(index, [0, 0, 0, 0, 0])
        buckets.append(
            Bucket(
                start + index * width, int(c), int(f), q / n if n else None, r / n if n else None
            )
        )
    return Chart(buckets, read, earliest if read >= CHART_ROWS else None)
