"""Tables for people that stay readable in any terminal, 80 columns included.

A :class:`FittedTable` knows which of its columns matter most. When the
terminal is too narrow for all of them, text columns wrap first; then the
least useful columns are dropped, and a caption names them (``--json``
always has every field). Columns with no value in any row are left out.
Job ids are shown short (see :mod:`queuekit.cli.short_ids`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from queuekit.cli.short_ids import short_ids

# rich is imported when a table is built, so that importing this module costs
# the command line's start-up nothing.
if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.table import Table

    from queuekit.types import HistoryRecord, Job, JobQueue, RateLimit

Justify = Literal["left", "right"]


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def when(moment: datetime | None) -> str:
    """A time for tables: UTC, to the second."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(delta: timedelta | None) -> str:
    """A duration for tables, e.g. ``3m 12s``."""
    if delta is None:
        return "-"
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{delta.total_seconds():.1f}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


def shorten(text: str | None, width: int = 60) -> str:
    """The first line of ``text``, cut to ``width`` characters."""
    if not text:
        return ""
    line = one_line(text)
    return line if len(line) <= width else line[: width - 1] + "…"


@dataclasses.dataclass
class Column:
    """One column: its header, its cells, and how it behaves when space runs out."""

    header: str
    cells: list[str]
    #: 0: always shown; otherwise dropped, highest first, when the table does not fit.
    drop_rank: int = 0
    #: Whether the cells may wrap onto several lines (else each stays on one line).
    wrap: bool = False
    justify: Justify = "left"
    #: The narrowest a wrapping column gets before columns are dropped instead.
    floor: int = 10


class FittedTable:
    """A rich renderable that builds its table for the width it is given."""

    def __init__(self, columns: Sequence[Column], title: str | None = None) -> None:
        self.columns = [c for c in columns if c.drop_rank == 0 or any(c.cells)]
        self.title = title

    def table(self, columns: Sequence[Column]) -> Table:
        """The rich table of ``columns``."""
        from rich import box
        from rich.table import Table

        table = Table(
            title=self.title,
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            show_edge=False,
            padding=(0, 1, 0, 0),
        )
        for column in columns:
            table.add_column(
                column.header,
                justify=column.justify,
                no_wrap=not column.wrap,
                overflow="fold",
                min_width=_min_width(column),
            )
        rows = len(columns[0].cells) if columns else 0
        for index in range(rows):
            table.add_row(*(column.cells[index] for column in columns))
        return table

    def fitted(self, console: Console, options: ConsoleOptions) -> tuple[Table, list[str]]:
        """The table of the most useful columns that fit, and the headers of those left out."""
        shown = list(self.columns)
        dropped: list[str] = []
        while True:
            table = self.table(shown)
            # Each column has one space of padding and a separator before the next one.
            # (rich's own measurement counts a long word as unbreakable, though it folds.)
            minimum = sum(_min_width(c) for c in shown) + 2 * len(shown) - 1
            droppable = [c for c in shown if c.drop_rank > 0]
            if minimum <= options.max_width or not droppable:
                return table, dropped
            victim = max(droppable, key=lambda c: c.drop_rank)
            shown.remove(victim)
            dropped.append(victim.header)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.text import Text

        table, dropped = self.fitted(console, options)
        yield table
        if dropped:
            yield Text(
                f"Not shown at this width: {', '.join(dropped)} (--json has every field).",
                style="dim",
            )


def _min_width(column: Column) -> int:
    """The width below which the column would be unreadable (and is dropped instead)."""
    natural = max([len(column.header), *(len(cell) for cell in column.cells)])
    if not column.wrap:
        return natural
    longest_word = max(len(word) for word in column.header.split())
    return max(min(natural, column.floor), longest_word)


def jobs_table(jobs: Sequence[Job], title: str | None = None) -> FittedTable:
    """Jobs as a table: short id, task, status, run at, attempts, lock holder, error..."""
    ids = short_ids(job.id for job in jobs)
    return FittedTable(
        [
            Column("id", [ids[job.id] for job in jobs]),
            Column("task", [job.task_identifier for job in jobs], wrap=True),
            Column("status", [job.status for job in jobs]),
            Column("run at (UTC)", [when(job.run_at) for job in jobs], wrap=True),
            Column("tries", [f"{job.attempts}/{job.max_attempts}" for job in jobs]),
            Column(
                "locked by", [job.locked_by or "" for job in jobs], drop_rank=1, wrap=True, floor=6
            ),
            Column("error", [shorten(job.last_error) for job in jobs], drop_rank=2, wrap=True),
            Column(
                "queue", [job.queue_name or "" for job in jobs], drop_rank=3, wrap=True, floor=6
            ),
            Column(
                "prio",
                [str(job.priority) if job.priority else "" for job in jobs],
                drop_rank=4,
                justify="right",
            ),
        ],
        title=title,
    )


def history_table(records: Sequence[HistoryRecord], title: str | None = None) -> FittedTable:
    """History rows as a table: when, which job, task, outcome, worker, time, error."""
    ids = short_ids(record.job_id for record in records)
    return FittedTable(
        [
            Column("started (UTC)", [when(r.started_at) for r in records], wrap=True),
            Column("job", [ids[r.job_id] for r in records]),
            Column("task", [r.task_identifier for r in records], wrap=True),
            Column("status", [r.status for r in records], wrap=True),
            Column("error", [shorten(r.error_message) for r in records], drop_rank=1, wrap=True),
            Column("worker", [r.worker_id or "" for r in records], drop_rank=2, wrap=True),
            Column(
                "ms",
                ["" if r.execution_time_ms is None else str(r.execution_time_ms) for r in records],
                drop_rank=3,
                justify="right",
            ),
            Column("try", [str(r.attempt_number) for r in records], drop_rank=4, justify="right"),
        ],
        title=title,
    )


def job_detail_table(job: Job) -> Table:
    """One job, field by field."""
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for field in dataclasses.fields(job):
        value = getattr(job, field.name)
        if field.name == "correlation_id":
            continue
        if isinstance(value, datetime):
            shown = when(value)
        elif field.name == "payload":
            shown = json.dumps(value, sort_keys=True)
        elif isinstance(value, tuple):
            shown = ", ".join(value)
        else:
            shown = "" if value is None else str(value)
        table.add_row(field.name, shown)
    return table


def failure_details(records: Sequence[HistoryRecord]) -> Iterator[str]:
    """Each failed attempt's full error and traceback, as lines of text."""
    for record in records:
        if record.error_message is None and record.error_stack is None:
            continue
        yield (
            f"Attempt {record.attempt_number} of job {record.job_id} ({record.status}, "
            f"{when(record.started_at)} UTC, worker {record.worker_id or '-'}):"
        )
        yield f"  {record.error_message or ''}"
        if record.error_stack:
            yield from (f"  {line}" for line in record.error_stack.rstrip().splitlines())


def rate_limit_table(limit: RateLimit) -> Table:
    """One token bucket."""
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("key", limit.key)
    table.add_row("capacity", str(limit.capacity))
    table.add_row("interval", age(limit.interval))
    table.add_row("available tokens", str(limit.available_tokens))
    table.add_row("last refill (UTC)", when(limit.last_refill_at))
    table.add_row("next refill (UTC)", when(limit.next_refill_at))
    return table


def queues_table(queues: Sequence[JobQueue]) -> Table:
    """Named queues with their locks."""
    from rich.table import Table

    table = Table(title="Named queues unlocked")
    for column in ("queue", "jobs"):
        table.add_column(column)
    for queue in queues:
        table.add_row(queue.queue_name, str(queue.job_count))
    return table
